"""codegen.render on hand-built IR (no sqlc, no database): decoders per result shape,
where SQLite reads run, docstrings per backend, and code that compiles."""

from __future__ import annotations

import ast

import pytest

from codegen.model.ir import (
    Catalog,
    Column,
    Enum,
    Location,
    Param,
    PgType,
    Project,
    Query,
    QueryFile,
    ResultColumn,
    Table,
)
from codegen.render import render

LOC = Location("sql/queries/things.sql", 1, 1)
THINGS = Table(
    "things",
    (
        Column("id", PgType("int8"), True, "bigint"),
        Column("name", PgType("text"), True, "text"),
        Column("seen_at", PgType("timestamptz"), False, "timestamptz"),
    ),
    ("id",),
    (),
    (),
    (),
    LOC,
)
COLUMNS = (
    ResultColumn("id", PgType("int8"), False),
    ResultColumn("name", PgType("text"), False),
    ResultColumn("seen_at", PgType("timestamptz"), True),
)
ID = Param(1, "id", PgType("int8"), False)


def query(name: str, cmd: str, pg: str, sqlite: str, **kw: object) -> Query:
    fields: dict[str, object] = {
        "params": (ID,),
        "columns": COLUMNS,
        "readonly": True,
        "model_table": "things",
    }
    fields.update(kw)
    return Query(name, cmd, LOC, (), pg, sqlite, **fields)  # type: ignore[arg-type]


def module(*queries: Query) -> str:
    project = Project(
        Catalog((THINGS,), (), ()),
        (),
        (QueryFile("things", LOC.file, queries),),
        {"sqlc": "v0", "sqlglot": "0"},
    )
    return render(project)["aragora_db/things.py"]


def body(text: str, function: str) -> str:
    return text.split(f"def {function}(")[1].split("\n\n\n")[0]


def test_queries_returning_one_shape_share_one_decoder_per_backend() -> None:
    text = module(
        query("GetThing", ":one", "SELECT * FROM things WHERE id = $1", "SELECT ... ?1"),
        query("ListThings", ":many", "SELECT * FROM things WHERE id > $1", "SELECT ... ?1"),
        query(
            "Touch",
            ":one",
            "UPDATE things SET seen_at = now() WHERE id = $1 RETURNING *",
            "UPDATE ... ?1 RETURNING *",
            readonly=False,
        ),
    )
    assert text.count("def _thing_from_pg(r: DbRow) -> Thing:") == 1
    assert text.count("def _thing_from_sqlite(r: DbRow) -> Thing:") == 1
    assert text.count("_thing_from_pg(r)") == 3  # the two :one queries, the :many stream
    assert "list(map(_thing_from_pg, rows))" in text
    pg, lite = body(text, "_thing_from_pg"), body(text, "_thing_from_sqlite")
    # the SQLite decoder converts the timestamp; the PostgreSQL one takes asyncpg's value
    assert "decode_timestamptz(r[2])" in lite and "decode_timestamptz" not in pg
    # the row constructors stand only in the decoders
    assert text.count("Thing(r[0]") == 2
    compile(text, "things.py", "exec")


def test_only_single_row_reads_run_inline_on_sqlite() -> None:
    text = module(
        query("GetThing", ":one", "SELECT * FROM things WHERE id = $1", "SELECT 1"),
        query("Touch", ":one", "UPDATE things SET id = $1 RETURNING *", "UPDATE 1", readonly=False),
        query("ListThings", ":many", "SELECT * FROM things WHERE id > $1", "SELECT 2"),
    )
    sqlite_repo = text.split("class SqliteThingsRepository")[1]
    assert "self._db.read(ThingsSyncRepository.get_thing, self._sync, self._read, id=id)" in (
        " ".join(sqlite_repo.split())
    )
    assert "self._db.run(self._sync.touch, id=id)" in " ".join(sqlite_repo.split())
    assert "self._db.run(self._sync.list_things, id=id)" in " ".join(sqlite_repo.split())
    assert sqlite_repo.count("self._db.read(") == 1


def test_each_api_documents_the_sql_it_runs() -> None:
    text = module(
        query("GetThing", ":one", "SELECT name FROM things WHERE id = $1", "SELECT name ?1 x")
    )
    abstract = text.split("class ThingsRepository")[1].split("class PostgresThingsRepository")[0]
    sync = text.split("class ThingsSyncRepository")[1].split("class SqliteThingsRepository")[0]
    assert "SQL (PostgreSQL)::" in abstract and "id = $1" in abstract
    assert "SQL (SQLite)::" in sync and "SELECT name ?1 x" in sync and "$1" not in sync
    assert "Returns:" in abstract and "Returns:" not in sync


def test_scalars_decode_inline_without_a_decoder() -> None:
    text = module(
        query(
            "CountThings",
            ":one",
            "SELECT count(*) FROM things",
            "SELECT count(*) FROM things",
            params=(),
            columns=(ResultColumn("count", PgType("int8"), False),),
            model_table=None,
        )
    )
    assert "DbRow" not in text and "value: int = r[0]" in text
    compile(text, "things.py", "exec")


@pytest.mark.parametrize(
    "sql",
    [
        'DROP TABLE "X"',
        '"""',
        '""""',
        'a""',
        "x\\",
        'a\\"',
        "line\r\nend",
        "nul\x00byte",
        '"',
        "",
    ],
)
def test_migration_literals_read_back_exactly(sql: str) -> None:
    from codegen.render.schema import literal

    assert ast.literal_eval(literal(sql)) == sql


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("users", "users"),
        ("action", "action"),  # a keyword SQLite takes as a bare name
        ("order", '"order"'),
        ("select", '"select"'),
        ("InvoiceLine", '"InvoiceLine"'),
        ("Line Note", '"Line Note"'),
        ('it"s', '"it""s"'),
    ],
)
def test_sqlite_names_quoted_when_sqlite_needs_it(name: str, quoted: str) -> None:
    from codegen.dialects.sqlite_ddl import quote

    assert quote(name) == quoted


def test_a_model_result_with_an_enum_imports_its_lookup() -> None:
    """A query file whose only use of an enum is a whole-table result: the decoders read
    the enum's lookup table, so the module imports it (it raised NameError on every call)."""
    moods = Table(
        "moods",
        (
            Column("id", PgType("int8"), True, "bigint"),
            Column("m", PgType("mood"), True, "mood"),
        ),
        ("id",),
        (),
        (),
        (),
        LOC,
    )
    project = Project(
        Catalog((moods,), (), (Enum("mood", ("happy", "sad")),)),
        (),
        (
            QueryFile(
                "moods",
                "sql/queries/moods.sql",
                (
                    Query(
                        "AllMoods",
                        ":many",
                        LOC,
                        (),
                        "SELECT * FROM moods",
                        "SELECT * FROM moods",
                        params=(),
                        columns=(
                            ResultColumn("id", PgType("int8"), False),
                            ResultColumn("m", PgType("mood"), False),
                        ),
                        readonly=True,
                        model_table="moods",
                    ),
                ),
            ),
        ),
        {"sqlc": "v0", "sqlglot": "0"},
    )
    text = render(project)["aragora_db/moods.py"]
    imported = text.split("from aragora_db.models import", 1)[1].split("\n\n")[0]
    assert "MOOD_VALUES" in imported and "MOOD_VALUES[r[1]]" in text
