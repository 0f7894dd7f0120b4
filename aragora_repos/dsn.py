"""PostgreSQL DSNs: parsed once, strictly, by this module alone.

Both libpq forms are read: the URI (``postgresql://user:password@host:port/db?k=v``) and
the keyword form (``host=h user=u password='p w'``, libpq-connect.html §34.1.1). A DSN
is rebuilt as a percent-encoded URI before any driver sees it, so a driver never
raises on it with the DSN (or a password mistaken for a port) in its message.

Nothing here echoes a DSN that could not be parsed: an unencoded ``/ ? # @`` in a
password moves the password into the host, path or query of a naive parse, so any
message built from such a parse could show it. Errors name only what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from aragora_repos.errors import ConfigError

SCHEMES = ("postgresql", "postgres")
#: Query parameters whose values are secrets.
SECRET_PARAMS = frozenset({"password", "sslpassword"})
#: Parameters shown with their values in a redacted DSN; every other one is counted only
#: (a password with an unencoded ``&`` splits into a parameter named by its tail).
SHOWN_PARAMS = frozenset(
    {"sslmode", "application_name", "target_session_attrs", "connect_timeout", "sslrootcert"}
)
#: libpq keywords accepted in the keyword form (libpq-connect.html §34.1.2).
KEYWORDS = frozenset(
    {
        "host", "hostaddr", "port", "dbname", "user", "password", "passfile",
        "channel_binding", "connect_timeout", "client_encoding", "options",
        "application_name", "fallback_application_name", "keepalives", "keepalives_idle",
        "keepalives_interval", "keepalives_count", "tcp_user_timeout", "sslmode",
        "sslcert", "sslkey", "sslpassword", "sslrootcert", "sslcrl", "sslcrldir", "sslsni",
        "ssl_min_protocol_version", "ssl_max_protocol_version", "gssencmode",
        "krbsrvname", "target_session_attrs", "service", "load_balance_hosts",
    }
)  # fmt: skip
_ENCODE_HINT = (
    "percent-encode '/', '?', '#', '@', ':', '&' and spaces in the user name and "
    "password (e.g. '/' as %2F, '@' as %40)"
)
_KEYWORD_PAIR = re.compile(r"\s*([A-Za-z_]+)\s*=\s*")


class DsnError(ConfigError):
    """A DSN cannot be parsed; the message never contains any part of it."""


@dataclass(frozen=True, slots=True, repr=False)
class Dsn:
    """A parsed DSN. ``repr`` and ``str`` are redacted."""

    scheme: str
    user: str | None
    password: str | None
    hosts: tuple[tuple[str, int | None], ...]
    database: str | None
    params: tuple[tuple[str, str], ...]

    def param(self, key: str) -> str | None:
        found = None
        for k, v in self.params:
            if k.lower() == key:
                found = v
        return found

    def secrets(self) -> tuple[str, ...]:
        """Every secret value this DSN holds (for scrubbing text that may contain one)."""
        out = [self.password] if self.password else []
        out += [v for k, v in self.params if k.lower() in SECRET_PARAMS and v]
        return tuple(out)

    def uri(self) -> str:
        """The DSN as a percent-encoded URI: the one form drivers are given."""
        userinfo = ""
        if self.user is not None:
            userinfo = quote(self.user, safe="")
        if self.password is not None:
            userinfo += ":" + quote(self.password, safe="")
        hosts = ",".join(
            (f"[{h}]" if ":" in h else quote(h, safe=".-_~")) + (f":{p}" if p is not None else "")
            for h, p in self.hosts
        )
        out = f"{self.scheme}://" + (f"{userinfo}@" if userinfo else "") + hosts
        if self.database is not None:
            out += "/" + quote(self.database, safe="")
        if self.params:
            out += "?" + "&".join(
                f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in self.params
            )
        return out

    def redacted(self) -> str:
        """For messages and reprs: user, host, port, database and harmless parameters."""
        userinfo = ""
        if self.user is not None:
            userinfo = self.user + (":***" if self.password is not None else "")
        elif self.password is not None:
            userinfo = ":***"
        hosts = ",".join(
            (f"[{h}]" if ":" in h else h) + (f":{p}" if p is not None else "")
            for h, p in self.hosts
        )
        out = f"{self.scheme}://" + (f"{userinfo}@" if userinfo else "") + hosts
        if self.database is not None:
            out += "/" + self.database
        shown = [f"{k}={v}" for k, v in self.params if k.lower() in SHOWN_PARAMS]
        shown += [f"{k}=***" for k, v in self.params if k.lower() in SECRET_PARAMS]
        hidden = len(self.params) - len(shown)
        if hidden:
            shown.append(f"({hidden} more)")
        return out + ("?" + "&".join(shown) if shown else "")

    def __repr__(self) -> str:
        return f"Dsn({self.redacted()!r})"

    __str__ = redacted


def parse_dsn(text: str) -> Dsn:
    """Parse a URI or keyword DSN.

    Raises:
        DsnError: saying what is wrong, without any part of the DSN. It is raised afresh
            from this frame with the text deleted, so no frame of its traceback holds the
            DSN (error reporters record frame locals).
    """
    try:
        return _parse(text)
    except DsnError as exc:
        message = str(exc)
    del text
    raise DsnError(message)


def _parse(text: str) -> Dsn:
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        return _parse_uri(text)
    if _KEYWORD_PAIR.match(text):
        return _parse_keywords(text)
    raise DsnError(
        "cannot parse the DSN: expected postgresql://user@host:port/db or "
        "'host=... user=... dbname=...'"
    )


def _unquote(part: str, what: str) -> str:
    try:
        return unquote(part, errors="strict")
    except UnicodeDecodeError:
        raise DsnError(
            f"cannot parse the DSN: its {what} is not valid UTF-8 once decoded"
        ) from None


def _parse_uri(text: str) -> Dsn:
    scheme, rest = text.split("://", 1)
    if scheme.lower() not in SCHEMES:
        raise DsnError("cannot parse the DSN: expected the scheme postgresql:// or postgres://")
    if "#" in rest:
        raise DsnError(f"cannot parse the DSN: it contains '#'; {_ENCODE_HINT}")
    if any(c in rest for c in "\x00\r\n"):
        raise DsnError(f"cannot parse the DSN: it contains a line break or NUL; {_ENCODE_HINT}")
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    if "@" in tail:
        raise DsnError(f"cannot parse the DSN: a '@' follows the host part; {_ENCODE_HINT}")
    user = password = None
    if "@" in authority:
        userinfo, hostspec = authority.rsplit("@", 1)
        raw_user, sep, raw_password = userinfo.partition(":")
        user = _unquote(raw_user, "user name") if raw_user else None
        password = _unquote(raw_password, "password") if sep else None
    else:
        hostspec = authority
    hosts = tuple(_host(h) for h in hostspec.split(",")) if hostspec else ()
    path, _, query = tail.partition("?")
    database = _unquote(path[1:], "database name") if len(path) > 1 else None
    params: list[tuple[str, str]] = []
    for item in query.split("&") if query else ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DsnError(
                f"cannot parse the DSN: a query parameter without 'name=value'; {_ENCODE_HINT}"
            )
        params.append((_unquote(key, "parameter name"), _unquote(value, "parameter value")))
    return _with_query_parts(Dsn(scheme.lower(), user, password, hosts, database, tuple(params)))


def _host(spec: str) -> tuple[str, int | None]:
    if spec.startswith("["):
        end = spec.find("]")
        if end < 0:
            raise DsnError("cannot parse the DSN: an IPv6 host opens '[' without a closing ']'")
        host, after = spec[1:end], spec[end + 1 :]
        if after and not after.startswith(":"):
            raise DsnError("cannot parse the DSN: unexpected text after an IPv6 host's ']'")
        port_text = after[1:] if after else None
    else:
        if "[" in spec or "]" in spec:
            raise DsnError("cannot parse the DSN: a '[' or ']' outside an IPv6 host")
        host, sep, port_text_ = spec.partition(":")
        port_text = port_text_ if sep else None
        host = _unquote(host, "host")
    return host, _port(port_text)


def _port(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
        raise DsnError(
            f"cannot parse the DSN: the port is not a number from 1 to 65535 (an unencoded "
            f"':' or '/' in the password does this); {_ENCODE_HINT}"
        )
    return int(text)


def _with_query_parts(dsn: Dsn) -> Dsn:
    """``?user=``, ``?password=``, ``?dbname=``, ``?host=``, ``?port=`` as libpq reads them."""
    user, password, database, hosts = dsn.user, dsn.password, dsn.database, dsn.hosts
    rest: list[tuple[str, str]] = []
    for key, value in dsn.params:
        k = key.lower()
        if k == "user":
            user = value
        elif k == "password":
            password = value
        elif k == "dbname":
            database = value
        elif k == "host":
            hosts = tuple((h, hosts[0][1] if hosts else None) for h in value.split(","))
        elif k == "port":
            port = _port(value)
            hosts = tuple((h, port) for h, _ in hosts) or (("", port),)
        else:
            rest.append((key, value))
    return Dsn(dsn.scheme, user, password, hosts, database, tuple(rest))


def _parse_keywords(text: str) -> Dsn:
    pairs: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _KEYWORD_PAIR.match(text, pos)
        if match is None:
            raise DsnError("cannot parse the DSN: expected key=value pairs separated by spaces")
        key = match.group(1).lower()
        if key not in KEYWORDS:
            raise DsnError("cannot parse the DSN: a key that libpq does not know")
        pos = match.end()
        if text[pos : pos + 1] == "'":
            value, pos = _quoted(text, pos + 1)
        else:
            end = pos
            while end < len(text) and not text[end].isspace():
                end += 1
            value, pos = text[pos:end].replace("\\\\", "\\"), end
        pairs[key] = value
    port = _port(pairs.pop("port", None))
    hosts = tuple((h, port) for h in pairs.pop("host", "").split(",") if h) or (
        (("", port),) if port is not None else ()
    )
    return Dsn(
        "postgresql",
        pairs.pop("user", None),
        pairs.pop("password", None),
        hosts,
        pairs.pop("dbname", None),
        tuple(pairs.items()),
    )


def _quoted(text: str, pos: int) -> tuple[str, int]:
    out: list[str] = []
    while pos < len(text):
        c = text[pos]
        if c == "\\" and pos + 1 < len(text):
            out.append(text[pos + 1])
            pos += 2
        elif c == "'":
            return "".join(out), pos + 1
        else:
            out.append(c)
            pos += 1
    raise DsnError("cannot parse the DSN: a quoted value has no closing quote")


def redact_dsn(text: str) -> str:
    """A DSN fit for a message: parsed and shown without secrets, or, when it cannot be
    parsed, not shown at all."""
    try:
        return parse_dsn(text).redacted()
    except ConfigError:
        return "<dsn hidden: it could not be parsed>"


def scrub(message: str, secrets: tuple[str, ...]) -> str:
    """``message`` with each secret (raw and percent-encoded) replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 3:
            for form in {secret, quote(secret, safe=""), quote(secret)}:
                message = message.replace(form, "***")
    return message
