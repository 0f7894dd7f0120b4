"""Encrypted columns: the key ring and the sealed form of a value.

A column marked ``-- aragora:encrypted <table> (<column>)`` in a migration is stored as
bytes on both backends (``bytea``, ``BLOB``); the generated code seals what it writes and
opens what it reads, so the application sees the type the column was declared with.

A sealed value is ``01 | key id (4 bytes) | nonce (12) | AES-256-GCM ciphertext and
tag``. The associated data binds it to its table, column and row key (by default the
primary key), so a value copied to another row, column or table does not open: GCM
authenticates the associated data with the ciphertext (NIST SP 800-38D §5.2.1). A fresh
random nonce per value keeps a key well inside GCM's limit of 2^32 random nonces
(SP 800-38D §8.3) for any table this project holds.

A column marked ``deterministic`` (one looked up by its value, such as a share link's
token) is sealed with AES-SIV instead (RFC 5297, under a key derived from the column key
with HKDF): ``02 | key id | synthetic IV and ciphertext``, bound to its table and column
only, so equal values under one key seal alike and ``WHERE token = $1`` finds a row by
the parameter's sealed form. It reveals which rows hold equal values and nothing else
(RFC 5297 §1.3.2).

The current key (``ARAGORA_ENCRYPTION_KEY``, base64 of 32 bytes) seals; earlier keys
(``ARAGORA_ENCRYPTION_PREVIOUS_KEYS``) only open, until ``aragora-repos rotate-keys`` has
sealed every value under the current one. A key's id is derived from the key itself, so
a value names the key that opens it and nothing needs to be configured twice.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import overload
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from aragora_repos.errors import ConfigError, DataError, TamperedValue, UnknownKey
from aragora_repos.types import JSON

VERSION = 1
DETERMINISTIC = 2
"""The first byte of a value sealed with AES-SIV (a ``deterministic`` column)."""
HEADER = 1 + 4 + 12
"""Bytes before the ciphertext: version, key id, nonce."""
OVERHEAD = HEADER + 16
"""What sealing adds to a value: the header and GCM's tag."""
DETERMINISTIC_OVERHEAD = 1 + 4 + 16
"""What deterministic sealing adds: version, key id and SIV's synthetic IV."""
DETERMINISTIC_MAX = 2048
"""The longest value a deterministic column takes, in bytes: sealed, it stays under
PostgreSQL's btree entry limit (about 2,700 bytes), and SQLite refuses the same."""
_AAD = b"aragora-repos column v1\x00"

RowKey = Sequence[object]
"""The values of a row's key columns, in order (text, integers or UUIDs)."""


def key_id(key: bytes) -> bytes:
    """The 4-byte id a value sealed under ``key`` records (an HMAC of the key, so the id
    says nothing about it)."""
    return hmac.new(key, b"aragora-repos column key id", hashlib.sha256).digest()[:4]


def _siv_key(key: bytes) -> bytes:
    """The AES-256-SIV key (64 bytes) of a column key: separate from the GCM key, so one
    key never serves two ciphers."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=64, salt=None, info=b"aragora-repos deterministic v1"
    )
    return hkdf.derive(key)


def _row_bytes(row: RowKey) -> bytes:
    parts: list[bytes] = []
    for value in row:
        if isinstance(value, bool) or value is None:
            raise DataError(f"cannot encrypt: a row key value is {value!r}")
        if isinstance(value, int):
            item = b"i" + str(value).encode()
        elif isinstance(value, str | UUID):
            item = b"s" + str(value).encode("utf-8", "surrogatepass")
        else:
            raise DataError(f"cannot encrypt: a row key value is a {type(value).__name__}")
        parts.append(len(item).to_bytes(4, "big") + item)
    return b"".join(parts)


def associated_data(table: str, column: str, row: RowKey) -> bytes:
    """What a sealed value is bound to: its table, column and row key."""
    return b"".join((_AAD, table.encode(), b"\x00", column.encode(), b"\x00", _row_bytes(row)))


class KeyRing:
    """The current column key and the earlier ones still readable; never shows a key.

    Generated repositories call :meth:`seal_text` and friends as they write a marked
    column and the ``open_*`` methods as they read one. An empty ring (no key
    configured) reads and writes SQL NULL only: sealing or opening a value raises
    :class:`~aragora_repos.errors.UnknownKey` naming the column and the variable to set.
    """

    __slots__ = ("_current", "_current_id", "_keys", "_sivs")

    def __init__(self, current: bytes | None = None, previous: Iterable[bytes] = ()) -> None:
        """``current`` seals and opens; ``previous`` keys only open. Each is 32 bytes."""
        self._keys: dict[bytes, AESGCM] = {}
        self._sivs: dict[bytes, AESSIV] = {}
        self._current: AESGCM | None = None
        self._current_id = b""
        for i, key in enumerate([*([current] if current is not None else []), *previous]):
            if len(key) != 32:
                raise ConfigError(f"invalid column key: expected 32 bytes, got {len(key)}")
            kid = key_id(key)
            if kid in self._keys:
                continue  # the same key twice (current also listed as previous)
            self._keys[kid] = AESGCM(key)
            self._sivs[kid] = AESSIV(_siv_key(key))
            if i == 0 and current is not None:
                self._current, self._current_id = self._keys[kid], kid

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KeyRing:
        """``ARAGORA_ENCRYPTION_KEY`` (or the file ``ARAGORA_ENCRYPTION_KEY_FILE`` names)
        and ``ARAGORA_ENCRYPTION_PREVIOUS_KEYS`` (comma-separated), each base64 of 32
        bytes.

        Raises:
            ConfigError: a key is not base64 of 32 bytes, or both forms of the current
                key are set; the message names the variable, never the key.
        """
        text = env.get("ARAGORA_ENCRYPTION_KEY", "").strip()
        path = env.get("ARAGORA_ENCRYPTION_KEY_FILE", "").strip()
        if text and path:
            raise ConfigError(
                "set one of ARAGORA_ENCRYPTION_KEY and ARAGORA_ENCRYPTION_KEY_FILE, not both"
            )
        if path:
            try:
                text = open(path, encoding="ascii").read().strip()  # noqa: SIM115
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not base64 text"
                raise ConfigError(
                    f"cannot read ARAGORA_ENCRYPTION_KEY_FILE {path}: {reason}"
                ) from None
            if not text:
                raise ConfigError(f"invalid ARAGORA_ENCRYPTION_KEY_FILE: {path} is empty")
        current = _decode_key(text, "ARAGORA_ENCRYPTION_KEY") if text else None
        previous = [
            _decode_key(part.strip(), "ARAGORA_ENCRYPTION_PREVIOUS_KEYS")
            for part in env.get("ARAGORA_ENCRYPTION_PREVIOUS_KEYS", "").split(",")
            if part.strip()
        ]
        if previous and current is None:
            raise ConfigError(
                "ARAGORA_ENCRYPTION_PREVIOUS_KEYS is set but ARAGORA_ENCRYPTION_KEY is not: "
                "the current key seals every new value"
            )
        return cls(current, previous)

    @property
    def current_id(self) -> bytes | None:
        """The id new values record, or None when no key is configured."""
        return self._current_id or None

    @property
    def ids(self) -> frozenset[bytes]:
        """Every key id this ring opens."""
        return frozenset(self._keys)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __repr__(self) -> str:
        current = self._current_id.hex() if self._current_id else "none"
        return f"KeyRing(current={current}, keys={len(self._keys)})"

    __str__ = __repr__

    # --- bytes ---------------------------------------------------------------------------

    def seal(
        self,
        plaintext: bytes,
        table: str,
        column: str,
        row: RowKey,
        *,
        deterministic: bool = False,
    ) -> bytes:
        """The sealed form of ``plaintext`` for ``table.column`` of the row ``row``; with
        ``deterministic`` (``row`` is then empty), the same for every row."""
        if self._current is None:
            raise UnknownKey(
                f"cannot encrypt {table}.{column}: no column key is configured "
                "(set ARAGORA_ENCRYPTION_KEY to base64 of 32 random bytes)"
            )
        if deterministic:
            return self._seal_siv(self._current_id, plaintext, table, column)
        nonce = os.urandom(12)
        sealed = self._current.encrypt(nonce, plaintext, associated_data(table, column, row))
        return b"".join((b"\x01", self._current_id, nonce, sealed))

    def _seal_siv(self, kid: bytes, plaintext: bytes, table: str, column: str) -> bytes:
        if len(plaintext) > DETERMINISTIC_MAX:
            raise DataError(
                f"cannot encrypt {table}.{column}: a deterministic value is at most "
                f"{DETERMINISTIC_MAX} bytes (it is a key, and ciphertext does not compress to "
                f"fit an index entry); this one is {len(plaintext)}"
            )
        sealed = self._sivs[kid].encrypt(plaintext, [associated_data(table, column, ())])
        return b"".join((b"\x02", kid, sealed))

    def lookup(self, plaintext: bytes, table: str, column: str) -> list[bytes]:
        """``plaintext`` sealed deterministically under each key of the ring, the current
        one first, and the current one again last when there are earlier keys: what a
        lookup by value tries in turn until one finds a row. A row not yet sealed again
        under the current key (during ``rotate-keys``) is found under its own key; one that
        rotation moves while the earlier tries run is found by the last."""
        if self._current is None:
            self.seal(plaintext, table, column, (), deterministic=True)  # raises
        tries = [self._seal_siv(kid, plaintext, table, column) for kid in self._sivs]
        return [*tries, tries[0]] if len(tries) > 1 else tries

    def open(self, value: bytes, table: str, column: str, row: RowKey) -> bytes:
        """The plaintext of a sealed value of ``table.column`` in row ``row``.

        Raises:
            UnknownKey: the value was sealed under a key this ring does not hold.
            TamperedValue: the value was changed, or belongs to another row or column.
        """
        raw = bytes(value)
        kind = raw[0] if raw else 0
        if (kind == VERSION and len(raw) >= OVERHEAD) or (
            kind == DETERMINISTIC and len(raw) >= DETERMINISTIC_OVERHEAD
        ):
            kid = raw[1:5]
        else:
            raise TamperedValue(
                f"cannot decrypt {table}.{column} of row {_show(row)}: "
                "the value is not in the encrypted form"
            )
        if kid not in self._keys:
            raise UnknownKey(
                f"cannot decrypt {table}.{column} of row {_show(row)}: it was encrypted "
                f"under key {kid.hex()}, which is neither ARAGORA_ENCRYPTION_KEY nor in "
                "ARAGORA_ENCRYPTION_PREVIOUS_KEYS"
            )
        try:
            if kind == DETERMINISTIC:
                return self._sivs[kid].decrypt(raw[5:], [associated_data(table, column, ())])
            aad = associated_data(table, column, row)
            return self._keys[kid].decrypt(raw[5:HEADER], raw[HEADER:], aad)
        except InvalidTag:
            raise TamperedValue(
                f"cannot decrypt {table}.{column} of row {_show(row)}: the value was altered "
                "or belongs to another row or column"
            ) from None

    def reseal(self, value: bytes, table: str, column: str, row: RowKey) -> bytes:
        """``value`` sealed again under the current key, the same way (for rotation)."""
        deterministic = bytes(value[:1]) == b"\x02"
        plaintext = self.open(value, table, column, () if deterministic else row)
        return self.seal(plaintext, table, column, row, deterministic=deterministic)

    # --- typed forms, called by generated code ------------------------------------------
    # ``seal_*`` seal what a statement writes (``deterministic`` for a column marked so,
    # with an empty row key); ``lookup_*`` the value a statement compares a deterministic
    # column with, under every key; ``open_*`` what it reads. SQL NULL stays NULL.

    @overload
    def seal_text(
        self, value: str, table: str, column: str, row: RowKey, *, deterministic: bool = ...
    ) -> bytes: ...
    @overload
    def seal_text(
        self, value: None, table: str, column: str, row: RowKey, *, deterministic: bool = ...
    ) -> None: ...
    def seal_text(
        self,
        value: str | None,
        table: str,
        column: str,
        row: RowKey,
        *,
        deterministic: bool = False,
    ) -> bytes | None:
        if value is None:
            return None
        data = _text_bytes(value, table, column)
        return self.seal(data, table, column, row, deterministic=deterministic)

    def lookup_text(self, value: str | None, table: str, column: str) -> Iterable[bytes | None]:
        if value is None:
            return [None]
        return list(self.lookup(_text_bytes(value, table, column), table, column))

    def open_text(self, value: bytes, table: str, column: str, row: RowKey) -> str:
        return self.open(value, table, column, row).decode("utf-8")

    def seal_json(
        self, value: JSON, table: str, column: str, row: RowKey, *, deterministic: bool = False
    ) -> bytes | None:
        """JSON ``None`` is SQL NULL, as for a plain json column."""
        if value is None:
            return None
        data = _json_bytes(value, table, column)
        return self.seal(data, table, column, row, deterministic=deterministic)

    def lookup_json(self, value: JSON, table: str, column: str) -> Iterable[bytes | None]:
        if value is None:
            return [None]
        return list(self.lookup(_json_bytes(value, table, column), table, column))

    def open_json(self, value: bytes, table: str, column: str, row: RowKey) -> JSON:
        loaded: JSON = json.loads(self.open(value, table, column, row))
        return loaded

    @overload
    def seal_bytes(
        self, value: bytes, table: str, column: str, row: RowKey, *, deterministic: bool = ...
    ) -> bytes: ...
    @overload
    def seal_bytes(
        self, value: None, table: str, column: str, row: RowKey, *, deterministic: bool = ...
    ) -> None: ...
    def seal_bytes(
        self,
        value: bytes | None,
        table: str,
        column: str,
        row: RowKey,
        *,
        deterministic: bool = False,
    ) -> bytes | None:
        if value is None:
            return None
        return self.seal(bytes(value), table, column, row, deterministic=deterministic)

    def lookup_bytes(self, value: bytes | None, table: str, column: str) -> Iterable[bytes | None]:
        if value is None:
            return [None]
        return list(self.lookup(bytes(value), table, column))

    def open_bytes(self, value: bytes, table: str, column: str, row: RowKey) -> bytes:
        return self.open(value, table, column, row)


def _text_bytes(value: str, table: str, column: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(
            f"cannot encrypt {table}.{column}: the text is not valid UTF-8 (a lone surrogate)"
        ) from None


def _json_bytes(value: JSON, table: str, column: str) -> bytes:
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise DataError(f"cannot encrypt {table}.{column}: not JSON: {exc}") from None


NO_KEYS = KeyRing()
"""The ring with no key: NULL reads and writes only."""


def _decode_key(text: str, variable: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"invalid {variable}: not base64") from None
    if len(key) != 32:
        raise ConfigError(f"invalid {variable}: expected base64 of 32 bytes, got {len(key)}")
    return key


def _show(row: RowKey) -> str:
    return "(" + ", ".join(repr(str(v)) if isinstance(v, UUID) else repr(v) for v in row) + ")"


def new_key() -> str:
    """A fresh key, base64 as ``ARAGORA_ENCRYPTION_KEY`` takes it."""
    return base64.b64encode(os.urandom(32)).decode("ascii")
