"""export-audit / verify-audit on both backends: an export verifies, in JSON Lines and CSV,
with hostile values; an edited, removed, moved or forged entry and a cut-short file are
each found and placed; compared with the database, retention's removals and entries added
since are named."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pytest

from aragora_db import Database
from aragora_db.audit import AppendAuditEventsParams
from aragora_repos.tools.audit_export import AuditError, export_audit, verify_against, verify_file

NOW = datetime.now(UTC).replace(microsecond=123456)
HOSTILE = ["plain", "quote \" and '", "new\nline", "\\N", "\\starts", "", "ünï ✓ \U0001f600", ","]


async def _fill(db: Database) -> None:
    await db.audit.append_audit_events(
        [
            AppendAuditEventsParams(
                timestamp=NOW - timedelta(days=10 - i),
                user_id=None if i % 2 else f"u{i}",
                org_id="o",
                action=value,
                resource_type="t",
                resource_id=value,
                details={"i": i, "v": value, "nested": {"b": 1, "a": [1, 2]}},
                ip_address=None,
                user_agent=value,
            )
            for i, value in enumerate(HOSTILE)
        ]
    )


@pytest.mark.parametrize("format", ["jsonl", "csv"])
async def test_an_export_verifies_and_tampering_is_found(
    db: Database, tmp_path: Path, format: Literal["jsonl", "csv"]
) -> None:
    await _fill(db)
    path = tmp_path / f"audit.{format}"
    since, until = NOW - timedelta(days=30), NOW + timedelta(days=1)
    done = await export_audit(db, path, since=since, until=until, format=format)
    assert done.entries == len(HOSTILE)
    assert path.stat().st_mode & 0o077 == 0
    report = verify_file(path)
    assert report.entries == len(HOSTILE)
    assert await verify_against(db, report) == []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if format == "csv":  # one edited cell; the chain's other cases are the same code
        bad = tmp_path / "edited.csv"
        bad.write_text(path.read_text(encoding="utf-8").replace("plain", "plain!", 1))
        with pytest.raises(AuditError, match=r"entry 1 .* was changed"):
            verify_file(bad)
        return
    first, entries, trailer = lines[0], lines[1:-1], lines[-1]
    cases = {
        "was changed": [
            first,
            *entries[:2],
            entries[2].replace('"action":"', '"action":"x'),
            *entries[3:],
            trailer,
        ],
        "chain breaks": [first, *entries[:2], *entries[3:], trailer],
        "moved": [first, entries[1], entries[0], *entries[2:], trailer],
        "cut short": [first, *entries],
        "forged": [first, *entries, entries[-1], trailer],
    }
    for name, tampered in cases.items():
        bad = tmp_path / f"{name}.jsonl"
        bad.write_text("".join(tampered), encoding="utf-8")
        with pytest.raises(AuditError) as caught:
            verify_file(bad)
        message = str(caught.value)
        expect = {
            "was changed": "entry 3",
            "chain breaks": "entry 3",
            "moved": "entry 1",
            "cut short": "cut short",
            "forged": "chain breaks",
        }[name]
        assert expect in message, (name, message)


async def test_the_database_compared_with_an_export(db: Database, tmp_path: Path) -> None:
    await _fill(db)
    path = tmp_path / "audit.jsonl"
    since, until = NOW - timedelta(days=30), NOW + timedelta(days=1)
    await export_audit(db, path, since=since, until=until)
    report = verify_file(path)
    oldest = report.ids[0]
    cutoff = NOW - timedelta(days=9, hours=12)  # retention takes the first entry only
    async with db.transaction():
        await db.backend.allow_retention(cutoff)
        assert await db.audit.delete_audit_events_before(cutoff=cutoff, lim=10) == 1
    added = await db.audit.append_audit_event(
        user_id=None,
        org_id="o",
        action="later",
        resource_type="t",
        resource_id=None,
        details={},
        ip_address=None,
        user_agent=None,
    )
    differences = await verify_against(db, report)
    assert differences == [f"entry {oldest} is missing", f"entry {added} is not in the export"]


def test_the_cli_exports_and_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aragora_db.__main__ import main as cli_main

    monkeypatch.setenv("ARAGORA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ARAGORA_DB_BACKEND", "sqlite")
    out, err = io.StringIO(), io.StringIO()
    path = tmp_path / "a.csv"
    with redirect_stdout(out), redirect_stderr(err):
        assert cli_main(["migrate", "up"]) == 0
        assert (
            cli_main(
                [
                    "export-audit",
                    "--since",
                    "2020-01-01",
                    "--until",
                    "2100-01-01",
                    "--format",
                    "csv",
                    "--output",
                    str(path),
                ]
            )
            == 0
        )
        assert cli_main(["verify-audit", str(path), "--against-database"]) == 0
        path.write_text(path.read_text().replace('""entries"":0', '""entries"":1'))
        assert cli_main(["verify-audit", str(path)]) == 1
        assert (
            cli_main(
                ["export-audit", "--since", "yesterday", "--until", "x", "--output", str(path)]
            )
            == 2
        )
    assert "trailer says 1 entries" in err.getvalue()
    assert "expected an ISO time" in err.getvalue()
