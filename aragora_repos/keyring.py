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
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aragora_repos.errors import ConfigError, DataError, TamperedValue, UnknownKey
from aragora_repos.types import JSON

VERSION = 1
HEADER = 1 + 4 + 12
"""Bytes before the ciphertext: version, key id, nonce."""
OVERHEAD = HEADER + 16
"""What sealing adds to a value: the header and GCM's tag."""
_AAD = b"aragora-repos column v1\x00"

RowKey = Sequence[object]
"""The values of a row's key columns, in order (text, integers or UUIDs)."""


def key_id(key: bytes) -> bytes:
    """The 4-byte id a value sealed under ``key`` records (an HMAC of the key, so the id
    says nothing about it)."""
    return hmac.new(key, b"aragora-repos column key id", hashlib.sha256).digest()[:4]


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

    __slots__ = ("_current", "_current_id", "_keys")

    def __init__(self, current: bytes | None = None, previous: Iterable[bytes] = ()) -> None:
        """``current`` seals and opens; ``previous`` keys only open. Each is 32 bytes."""
        self._keys: dict[bytes, AESGCM] = {}
        self._current: AESGCM | None = None
        self._current_id = b""
        for i, key in enumerate([*([current] if current is not None else []), *previous]):
            if len(key) != 32:
                raise ConfigError(f"invalid column key: expected 32 bytes, got {len(key)}")
            kid = key_id(key)
            if kid in self._keys:
                continue  # the same key twice (current also listed as previous)
            self._keys[kid] = AESGCM(key)
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

    def seal(self, plaintext: bytes, table: str, column: str, row: RowKey) -> bytes:
        """The sealed form of ``plaintext`` for ``table.column`` of the row ``row``."""
        if self._current is None:
            raise UnknownKey(
                f"cannot encrypt {table}.{column}: no column key is configured "
                "(set ARAGORA_ENCRYPTION_KEY to base64 of 32 random bytes)"
            )
        nonce = os.urandom(12)
        sealed = self._current.encrypt(nonce, plaintext, associated_data(table, column, row))
        return b"".join((b"\x01", self._current_id, nonce, sealed))

    def open(self, value: bytes, table: str, column: str, row: RowKey) -> bytes:
        """The plaintext of a sealed value of ``table.column`` in row ``row``.

        Raises:
            UnknownKey: the value was sealed under a key this ring does not hold.
            TamperedValue: the value was changed, or belongs to another row or column.
        """
        raw = bytes(value)
        if len(raw) < OVERHEAD or raw[0] != VERSION:
            raise TamperedValue(
                f"cannot decrypt {table}.{column} of row {_show(row)}: "
                "the value is not in the encrypted form"
            )
        kid = raw[1:5]
        aead = self._keys.get(kid)
        if aead is None:
            raise UnknownKey(
                f"cannot decrypt {table}.{column} of row {_show(row)}: it was encrypted "
                f"under key {kid.hex()}, which is neither ARAGORA_ENCRYPTION_KEY nor in "
                "ARAGORA_ENCRYPTION_PREVIOUS_KEYS"
            )
        try:
            return aead.decrypt(raw[5:HEADER], raw[HEADER:], associated_data(table, column, row))
        except InvalidTag:
            raise TamperedValue(
                f"cannot decrypt {table}.{column} of row {_show(row)}: the value was altered "
                "or belongs to another row or column"
            ) from None

    def reseal(self, value: bytes, table: str, column: str, row: RowKey) -> bytes:
        """``value`` sealed again under the current key (for rotation)."""
        return self.seal(self.open(value, table, column, row), table, column, row)

    # --- typed forms, called by generated code ------------------------------------------

    @overload
    def seal_text(self, value: str, table: str, column: str, row: RowKey) -> bytes: ...
    @overload
    def seal_text(self, value: None, table: str, column: str, row: RowKey) -> None: ...
    def seal_text(self, value: str | None, table: str, column: str, row: RowKey) -> bytes | None:
        if value is None:
            return None
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError:
            raise DataError(
                f"cannot encrypt {table}.{column}: the text is not valid UTF-8 (a lone surrogate)"
            ) from None
        return self.seal(data, table, column, row)

    def open_text(self, value: bytes, table: str, column: str, row: RowKey) -> str:
        return self.open(value, table, column, row).decode("utf-8")

    def seal_json(self, value: JSON, table: str, column: str, row: RowKey) -> bytes | None:
        """JSON ``None`` is SQL NULL, as for a plain json column."""
        if value is None:
            return None
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            data = text.encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise DataError(f"cannot encrypt {table}.{column}: not JSON: {exc}") from None
        return self.seal(data, table, column, row)

    def open_json(self, value: bytes, table: str, column: str, row: RowKey) -> JSON:
        loaded: JSON = json.loads(self.open(value, table, column, row))
        return loaded

    @overload
    def seal_bytes(self, value: bytes, table: str, column: str, row: RowKey) -> bytes: ...
    @overload
    def seal_bytes(self, value: None, table: str, column: str, row: RowKey) -> None: ...
    def seal_bytes(self, value: bytes | None, table: str, column: str, row: RowKey) -> bytes | None:
        return None if value is None else self.seal(bytes(value), table, column, row)

    def open_bytes(self, value: bytes, table: str, column: str, row: RowKey) -> bytes:
        return self.open(value, table, column, row)


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
