"""Edge attacks on this round's copy, adopt and generator paths (RELIABILITY_TESTS §5):
links planted at every file adopt writes (T23), hostile table and column names in a
legacy file (T24), a canary password in the generator's PostgreSQL DSN (T22), and two
processes copying into one SQLite database at once (T21)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from aragora_db import MIGRATIONS, connect_sync
from aragora_db.schema import EXPECTED
from aragora_repos import Config
from aragora_repos.tools.adopt import adopt
from aragora_repos.tools.import_sqlite import import_sqlite
from aragora_repos.tools.migrate_data.sqlite_target import copy_into_sqlite
from tests.migrate_data import legacy

ROOT = Path(__file__).parent.parent.parent
WORK_FILES = (
    "staged.db",
    "staged.fingerprint",
    "stage.json",
    "copy.rejects.jsonl",
    "adopt.rejects.jsonl",
    "adopt.keymap.jsonl",
)


def test_links_planted_at_adopts_files_are_never_followed(tmp_path: Path) -> None:
    source = legacy.legacy_layout(tmp_path / "nomic")
    db = sqlite3.connect(source / "users.db")
    db.execute("UPDATE users SET role = 'emperor' WHERE id = 'u2'")  # a reject file too
    db.commit()
    db.close()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    work = tmp_path / "data" / "adopt"
    work.mkdir(parents=True, mode=0o700)
    for name in WORK_FILES:
        (work / name).symlink_to(victim)
    report = asyncio.run(adopt(source, Config(data_dir=tmp_path / "data"), MIGRATIONS, EXPECTED))
    assert report.exit_code() == 3 and report.accounted
    assert victim.read_text() == "keep me"
    for name in WORK_FILES:
        path = work / name
        assert not path.is_symlink(), name
    assert sum(1 for line in (work / "adopt.rejects.jsonl").read_text().splitlines()) == 1


def test_hostile_names_in_a_legacy_file_are_quoted_or_left_behind(tmp_path: Path) -> None:
    source = legacy.legacy_layout(tmp_path / "nomic")
    db = sqlite3.connect(source / "agora_memory.db")
    db.execute('CREATE TABLE "x""; DROP TABLE users; --" ("a""b" TEXT, "line\nbreak" TEXT)')
    db.execute("INSERT INTO \"x\"\"; DROP TABLE users; --\" VALUES ('1', '2')")
    db.execute('ALTER TABLE debates ADD COLUMN "it""s; --" TEXT')
    db.execute("UPDATE debates SET \"it\"\"s; --\" = 'x' WHERE id = 'd3'")
    db.commit()
    db.close()
    config = Config(data_dir=tmp_path / "data")
    report = asyncio.run(adopt(source, config, MIGRATIONS, EXPECTED, verify=True))
    assert report.accounted and report.exit_code() == 1  # left behind, and said so
    hostile = next(t for t in report.tables if t.table.startswith('x"'))
    assert hostile.target is None and hostile.left_behind == 1
    debates = next(t for t in report.tables if t.table == "debates")
    assert debates.left_behind_columns == {'it"s; --': 1}
    with connect_sync(config) as target:
        assert target.users.get_user_by_email(email="u1@example.com") is not None


def test_a_check_with_a_comment_is_left_out_of_an_imported_migration(tmp_path: Path) -> None:
    source = tmp_path / "commented.db"
    db = sqlite3.connect(source)
    db.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER "
        "CHECK (n > 0 /* ; DROP TABLE t */), m INTEGER CHECK (m > 0 -- trailing\n))"
    )
    db.commit()
    db.close()
    result = import_sqlite(source, tmp_path / "schema")
    up = result.sql.split("-- migrate:up")[1].split("-- migrate:down")[0]
    assert "DROP" not in up and "/*" not in up
    assert "-- trailing" not in up


def test_a_canary_in_the_generators_dsn_never_shows(tmp_path: Path) -> None:
    canary = "Canary-Codegen-91x"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ARAGORA_CODEGEN_POSTGRES_DSN": f"postgresql://u:{canary}@127.0.0.1:1/none",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "codegen", "check", "--root", str(ROOT)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "cannot reach PostgreSQL to check the statements" in proc.stderr
    assert canary not in proc.stdout + proc.stderr


COPY = """
import json, sys
from pathlib import Path
from aragora_db.schema import EXPECTED
from aragora_repos.tools.migrate_data.sqlite_target import copy_into_sqlite
report = copy_into_sqlite(Path(sys.argv[1]), Path(sys.argv[2]), EXPECTED, batch_size=50)
print(json.dumps({"errors": report.total_errors, "migrated": report.total_migrated}))
"""


def test_two_processes_copying_into_one_database_store_each_row_once(tmp_path: Path) -> None:
    source = legacy.legacy_layout(tmp_path / "nomic", n=400)
    config = Config(data_dir=tmp_path / "data")
    with connect_sync(config) as db:
        db.migrate()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", COPY, str(source / "users.db"), str(config.sqlite_file)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outputs]
    reports = [json.loads(out) for out, _ in outputs]
    raw = sqlite3.connect(config.sqlite_file)
    try:
        stored = sum(
            raw.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("users", "organizations", "audit_log", "usage_events")
        )
        assert raw.execute("SELECT count(*) FROM users").fetchone() == (400,)
        assert raw.execute("SELECT count(*) FROM audit_log").fetchone() == (800,)
    finally:
        raw.close()
    # The legacy audit rows without a resource type are rejected (adopt maps them), once
    # each; and both reports count every stored row once (they counted some twice when
    # the two copies kept their places in the same progress rows).
    assert [r["errors"] for r in reports] == [400, 400]
    assert [r["migrated"] for r in reports] == [stored, stored]
    again = copy_into_sqlite(source / "users.db", config.sqlite_file, EXPECTED, verify=True)
    assert again.verified is True
