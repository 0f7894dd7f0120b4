"""``aragora-repos rotate-keys``: seal every encrypted column's values under the current
column key, online, in batches, resumable.

Rotation runs while the application works: it is started with the new key as
``ARAGORA_ENCRYPTION_KEY`` and the old one in ``ARAGORA_ENCRYPTION_PREVIOUS_KEYS``, the
same ring the application runs with meanwhile, so every value opens whichever key sealed
it. Each batch is one short transaction: it reads up to ``batch`` values not yet under
the current key (the key id is bytes 2-5 of a sealed value), in row key order after the
last row done, locks them (``FOR UPDATE`` on PostgreSQL; SQLite's writer lock), and
writes each back sealed again only if it is still the value read, so a write the
application made meanwhile is never overwritten. A kill loses at most the batch in
flight, which rolls back whole; running it again picks up what is left, as the values
already under the current key are not selected. When it reports nothing left, the old
key can be dropped from the ring.

Which columns are encrypted comes from the applied migrations' markers
(``-- aragora:encrypted``), so the database's own version decides, not the code's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from aragora_repos.backends import Backend
from aragora_repos.errors import UnknownKey
from aragora_repos.migrations import Applied, Crypt, Dialect, Migration, _quoter


def encrypted_columns(
    migrations: Sequence[Migration], applied: Mapping[int, Applied]
) -> list[Crypt]:
    """The encrypted columns of a database at its applied migrations, in marking order."""
    columns: dict[tuple[str, str], Crypt] = {}
    for m in sorted(migrations, key=lambda m: m.version):
        if m.version not in applied:
            continue
        for crypt in m.up.crypts:
            if crypt.seal:
                columns[(crypt.table, crypt.column)] = crypt
            else:
                columns.pop((crypt.table, crypt.column), None)
    return list(columns.values())


@dataclass
class Rotation:
    """Rows sealed again, per ``table.column``, and those already under the current key."""

    key_id: str
    resealed: dict[str, int] = field(default_factory=dict)
    batches: int = 0

    def render(self) -> str:
        lines = [f"current column key: {self.key_id}"]
        if not self.resealed:
            lines.append("no encrypted columns")
        lines += [f"  {name}: {n} value(s) sealed again" for name, n in self.resealed.items()]
        return "\n".join(lines)


def _select_sql(crypt: Crypt, dialect: Dialect, after: bool) -> str:
    q = _quoter(dialect)
    keys = ", ".join(q(k) for k in crypt.row_key)
    col = q(crypt.column)
    n = len(crypt.row_key)
    if dialect == "postgres":
        key_id = f"substring({col} from 2 for 4) <> $1"
        marks = ", ".join(f"${i + 3}" for i in range(n))
        limit, lock = "$2", " FOR UPDATE"
    else:
        key_id = f"substr({col}, 2, 4) <> ?1"
        marks = ", ".join(f"?{i + 3}" for i in range(n))
        limit, lock = "?2", ""
    where = f"{col} IS NOT NULL AND {key_id}"
    if after:
        where += f" AND ({keys}) > ({marks})"
    return (
        f"SELECT {keys}, {col} FROM {q(crypt.table)} WHERE {where} "
        f"ORDER BY {keys} LIMIT {limit}{lock}"
    )


def _update_sql(crypt: Crypt, dialect: Dialect) -> str:
    """Compare-and-set: the new value, the row key, then the value read."""
    q = _quoter(dialect)
    mark = "$" if dialect == "postgres" else "?"
    n = len(crypt.row_key)
    where = " AND ".join(f"{q(k)} = {mark}{i + 2}" for i, k in enumerate(crypt.row_key))
    return (
        f"UPDATE {q(crypt.table)} SET {q(crypt.column)} = {mark}1 "
        f"WHERE {where} AND {q(crypt.column)} = {mark}{n + 2}"
    )


async def rotate_keys(
    backend: Backend,
    migrations: Sequence[Migration],
    *,
    batch: int = 500,
    on_batch: Callable[[str, int], None] | None = None,
) -> Rotation:
    """Seal every encrypted value not under the current key again under it.

    Raises:
        UnknownKey: no current key, or a value sealed under a key the ring lacks (named
            with its row; rotation stops there, having committed the batches before).
        TamperedValue: a value does not authenticate.
    """
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    keys = backend.keys
    current = keys.current_id
    if current is None:
        raise UnknownKey(
            "cannot rotate keys: no column key is configured (set ARAGORA_ENCRYPTION_KEY to "
            "the new key and ARAGORA_ENCRYPTION_PREVIOUS_KEYS to the old ones)"
        )
    report = Rotation(current.hex())
    dialect = backend.dialect
    for crypt in encrypted_columns(migrations, await backend.applied()):
        name = f"{crypt.table}.{crypt.column}"
        report.resealed[name] = 0
        after: tuple[object, ...] | None = None
        update = _update_sql(crypt, dialect)
        n = len(crypt.row_key)
        while True:
            async with backend.transaction():
                sql = _select_sql(crypt, dialect, after is not None)
                rows = await backend.fetch(sql, (current, batch, *(after or ())))
                if not rows:
                    break
                args = []
                for row in rows:
                    key, value = tuple(row[:n]), bytes(row[n])
                    new = keys.reseal(value, crypt.table, crypt.column, key)
                    args.append((new, *key, value))
                await backend.executemany(update, args)
            after = tuple(rows[-1][:n])
            report.resealed[name] += len(rows)
            report.batches += 1
            if on_batch is not None:
                on_batch(name, len(rows))
    return report
