"""Projects at the generator's edges, generated and run: an enum used only through a
whole-table result (its lookup was not imported: NameError on every call), a schema with
no table (``__init__.py`` did not parse, with an empty error), and ``public.``-qualified
names in queries (refused on SQLite as "no such table"), and COMMENT ON text (with
quotes and backslashes) carried into the models' docstrings; views, created, replaced
and queried on both backends; :batchone and :batchmany."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.golden_exec.projects import run_ok, write_project
from tests.pg_server import fresh_database

CASES = {
    "enum_model": (
        """-- migrate:up
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE TABLE feelings (id BIGSERIAL PRIMARY KEY, m mood NOT NULL);
""",
        """-- name: AddFeeling :exec
INSERT INTO feelings (m) VALUES ('sad');

-- name: AllFeelings :many
SELECT * FROM feelings ORDER BY id;
""",
        "await db.q.add_feeling(); print([f.m.value for f in await db.q.all_feelings()])",
        "['sad']",
    ),
    "no_tables": (
        """-- migrate:up
COMMENT ON SCHEMA public IS 'nothing here yet';
""",
        """-- name: One :one
SELECT 1 AS one;
""",
        "print(await db.q.one())",
        "1",
    ),
    "comments": (
        "-- migrate:up\n"
        "CREATE TABLE notes (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL);\n"
        "COMMENT ON TABLE notes IS 'Notes people keep; a \"\"\" quote \\\\ and '' inside.';\n"
        "COMMENT ON COLUMN public.notes.body IS 'What the note says.';\n",
        "-- name: AllNotes :many\nSELECT * FROM notes;\n",
        "import edge_db.models as m, inspect; "
        "print(m.Note.__doc__, '|', inspect.getsource(m.Note).count('What the note says.'))",
        'Notes people keep; a """ quote \\\\ and \' inside. | 1',
    ),
    "views": (
        """-- migrate:up
CREATE TABLE people (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL,
                     active BOOLEAN NOT NULL DEFAULT TRUE,
                     seen_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE VIEW active_people AS
    SELECT id, name, seen_at FROM people WHERE active AND name ILIKE 'é%';
CREATE OR REPLACE VIEW active_people AS
    SELECT id, name, seen_at FROM people WHERE active AND name ILIKE 'É%';
-- migrate:down
DROP VIEW active_people;
DROP TABLE people;
""",
        """-- name: AddPerson :exec
INSERT INTO people (name, active) VALUES ($1, $2);

-- name: ActivePeople :many
SELECT * FROM active_people ORDER BY id;
""",
        "await db.q.add_person(name='émile', active=True); "
        "await db.q.add_person(name='Élise', active=False); "
        "await db.q.add_person(name='zed', active=True); "
        "print([(p.name, p.seen_at.tzinfo is not None) for p in await db.q.active_people()])",
        "[('émile', True)]",
    ),
    "coalesce_aggregates": (
        """-- migrate:up
CREATE TABLE scores (id BIGSERIAL PRIMARY KEY, n INTEGER NOT NULL, f DOUBLE PRECISION NOT NULL);
""",
        """-- name: AddScore :exec
INSERT INTO scores (n, f) VALUES ($1, $2);

-- name: Totals :one
SELECT coalesce(sum(n), 0) AS total, coalesce(sum(f), 0) AS ftotal,
       coalesce(max(id), 0) AS top, count(*) AS c
FROM scores;
""",
        "t0 = await db.q.totals(); await db.q.add_score(n=2, f=0.5); "
        "await db.q.add_score(n=3, f=0.25); t1 = await db.q.totals(); "
        "print([(type(v).__name__, v) for t in (t0, t1) for v in (t.total, t.ftotal, t.top)])",
        "[('int', 0), ('float', 0.0), ('int', 0), ('int', 5), ('float', 0.75), ('int', 2)]",
    ),
    "batches": (
        """-- migrate:up
CREATE TABLE names (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL);
""",
        """-- name: AddName :exec
INSERT INTO names (name) VALUES ($1);

-- name: GetNames :batchone
SELECT * FROM names WHERE id = $1;

-- name: IdsByName :batchmany
SELECT id FROM names WHERE name = $1 ORDER BY id;
""",
        "from edge_db.q import GetNamesParams as G, IdsByNameParams as I; "
        "[await db.q.add_name(name=n) for n in ('a', 'b', 'a')]; "
        "one = await db.q.get_names([G(id=2), G(id=9), G(id=1)]); "
        "many = await db.q.ids_by_name([I(name='a'), I(name='z'), I(name='b')]); "
        "print([None if r is None else r.name for r in one], many)",
        "['b', None, 'a'] [[1, 3], [], [2]]",
    ),
    "public_schema": (
        """-- migrate:up
CREATE TABLE public.foo (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL);
""",
        """-- name: AddFoo :exec
INSERT INTO public.foo (name) VALUES ($1);

-- name: Foos :many
SELECT public.foo.id, name FROM public.foo ORDER BY id;
""",
        "await db.q.add_foo(name='x'); print([(f.id, f.name) for f in await db.q.foos()])",
        "[(1, 'x')]",
    ),
}
SCRIPT = """
import asyncio, sys
from pathlib import Path
import edge_db
from aragora_repos import Config, Secret

async def main(target):
    config = (
        Config(backend="postgres", dsn=Secret(target))
        if target.startswith("postgresql")
        else Config(data_dir=Path(target))
    )
    db = await edge_db.connect(config)
    await db.migrate()
    try:
        {call}
    finally:
        await db.close()

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.postgres
@pytest.mark.parametrize("case", sorted(CASES))
def test_generates_and_runs_on_both_backends(case: str, tmp_path: Path, postgres_dsn: str) -> None:
    schema, queries, call, expected = CASES[case]
    root = write_project(tmp_path / case, "edge_db", schema, queries, "q")
    (root / "run.py").write_text(SCRIPT.replace("{call}", call))
    run_ok(root, "-m", "codegen", "generate", "--root", str(root))
    assert run_ok(root, "run.py", str(tmp_path / "data")).strip() == expected
    with fresh_database(postgres_dsn) as dsn:
        assert run_ok(root, "run.py", dsn).strip() == expected
