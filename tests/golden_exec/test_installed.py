"""The distribution as another project gets it: the wheel holds the runtime
(``aragora_repos``) and the generator under a name of its own (``aragora_repos_codegen``),
no top-level ``codegen`` and not Aragora's generated package (``aragora-db`` is a
distribution of its own, ``packaging/aragora-db``). Installed alone in a directory, with this
repository off the path, the ``aragora-repos`` entry point generates a project's package
from its ``sqlc.yaml`` and runs its migrations; the package runs on both backends; without
the generator, ``generate`` says what to install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.pg_server import fresh_database

ROOT = Path(__file__).resolve().parent.parent.parent
CONFIG = """version: "2"
sql:
  - name: "notes_db"
    engine: "postgresql"
    schema: "sql/schema"
    queries: "sql/queries"
    gen:
      json:
        out: "build/sqlc"
        filename: "request.json"
"""
SCHEMA = """-- migrate:up
CREATE TABLE notes (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL);
-- migrate:down
DROP TABLE notes;
"""
QUERIES = """-- name: AddNote :one
INSERT INTO notes (body) VALUES ($1) RETURNING id;

-- name: ListNotes :many
SELECT id, body FROM notes ORDER BY id;
"""
RUN = """
import asyncio, os, sys
from pathlib import Path
import aragora_repos, notes_db
from aragora_repos import Config, Secret
for name in ("codegen", "aragora_db"):
    try:
        __import__(name)
    except ImportError:
        continue
    sys.exit(f"{name} is importable")
async def main():
    dsn = os.environ.get("NOTES_DSN")
    config = (
        Config(backend="postgres", dsn=Secret(dsn), pool_max=2) if dsn
        else Config(data_dir=Path(os.environ["ARAGORA_DATA_DIR"]))
    )
    db = await notes_db.connect(config)
    await db.migrate()
    await db.notes.add_note(body="it's\\n")
    print(aragora_repos.__file__, [n.body for n in await db.notes.list_notes()])
    await db.close()
asyncio.run(main())
"""


def _wheel(source: Path, out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    return next(out.glob("*.whl"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("installed")
    wheel = _wheel(ROOT, work / "dist")
    site = work / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    return site


def _python(site: Path, project: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """This interpreter without site-packages' .pth files (so not this repository's
    editable install): the installed wheel, the dependencies' folder, the project's
    generated code."""
    deps = sysconfig.get_paths()["purelib"]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    environ.update(
        PYTHONPATH=os.pathsep.join([str(site), deps, str(project / "generated")]),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), environ.get("PATH", "")]),
        **env,
    )
    return subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=project,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )


ENTRY = "import sys; from aragora_repos.cli.entry import main; sys.exit(main({argv!r}))"


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "notes-app"
    (project / "sql" / "schema").mkdir(parents=True)
    (project / "sql" / "queries").mkdir(parents=True)
    (project / "sqlc.yaml").write_text(CONFIG)
    (project / "sql" / "schema" / "0001_notes.sql").write_text(SCHEMA)
    (project / "sql" / "queries" / "notes.sql").write_text(QUERIES)
    return project


def test_the_wheel_holds_clean_names_only(installed: Path, tmp_path: Path) -> None:
    tops = {p.name for p in installed.iterdir() if not p.name.endswith(".dist-info")}
    assert tops - {"bin"} == {"aragora_repos", "aragora_repos_codegen"}
    assert (installed / "aragora_repos_codegen" / "templates" / "queries.py.j2").exists()
    db_wheel = _wheel(ROOT / "packaging" / "aragora-db", tmp_path / "db")
    names = {n.split("/")[0] for n in zipfile.ZipFile(db_wheel).namelist()}
    assert {n for n in names if not n.endswith(".dist-info")} == {"aragora_db"}


@pytest.mark.postgres
def test_another_project_generates_and_runs_with_the_installed_runtime(
    installed: Path, tmp_path: Path, postgres_dsn: str
) -> None:
    project = _project(tmp_path)
    generated = _python(installed, project, ENTRY.format(argv=["generate"]))
    assert generated.returncode == 0, generated.stderr
    assert (project / "generated" / "notes_db" / "notes.py").exists()
    checked = _python(installed, project, ENTRY.format(argv=["generate", "--check"]))
    assert checked.returncode == 0, checked.stderr

    data = str(tmp_path / "data")
    lite = _python(installed, project, RUN, ARAGORA_DATA_DIR=data)
    assert lite.returncode == 0, lite.stderr
    assert str(installed) in lite.stdout and '["it\'s\\n"]' in lite.stdout
    with fresh_database(postgres_dsn) as dsn:
        pg = _python(installed, project, RUN, NOTES_DSN=dsn)
        assert pg.returncode == 0, pg.stderr
        assert '["it\'s\\n"]' in pg.stdout
    status = _python(
        installed, project, ENTRY.format(argv=["migrate", "status"]), ARAGORA_DATA_DIR=data
    )
    assert status.returncode == 0, status.stderr
    assert "0001_notes" in status.stdout


def test_a_runtime_without_the_generator_says_what_to_install(
    installed: Path, tmp_path: Path
) -> None:
    runtime_only = tmp_path / "runtime-only"
    shutil.copytree(installed, runtime_only, ignore=shutil.ignore_patterns("aragora_repos_codegen"))
    project = _project(tmp_path)
    out = _python(runtime_only, project, ENTRY.format(argv=["generate"]))
    assert out.returncode == 2
    assert "pip install 'aragora-repos[codegen]'" in out.stderr
    missing = _python(runtime_only, project, ENTRY.format(argv=["migrate", "status"]))
    assert missing.returncode == 2 and "cannot import the generated package 'notes_db'" in (
        missing.stderr
    )
