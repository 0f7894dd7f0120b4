"""codegen.model.build on typed sqlc records (no sqlc run): names, types, hints for the
SQLite stage, result shapes, and problems reported with their place."""

from __future__ import annotations

from typing import Any

from codegen.errors import CodegenError, Problems
from codegen.model.build import build_queries
from codegen.model.ir import Catalog, Column, Location, PgType, Query, Table
from codegen.model.sqlc import SqlcRequest

LOC = Location("sql/schema/0001_init.sql", 1, 1)
ITEMS = Table(
    "items",
    (
        Column("id", PgType("int8"), True),
        Column("name", PgType("text"), True),
        Column("note", PgType("text"), False),
    ),
    ("id",),
    (),
    (),
    (),
    LOC,
)
CATALOG = Catalog((ITEMS,), (), ())
FILE = "items.sql"
LOCATIONS = {(FILE, "Q"): ("sql/queries/items.sql", 7, "-- name: Q :one\nSELECT 1;\n")}


def column(name: str, type_name: str, *, not_null: bool = True, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": {"name": type_name}, "not_null": not_null, **extra}


def request(text: str, cmd: str = ":one", **raw: Any) -> SqlcRequest:
    query = {"name": "Q", "cmd": cmd, "filename": FILE, "text": text, **raw}
    return SqlcRequest.parse({"sqlc_version": "v1.31.1", "queries": [query]})


def build(req: SqlcRequest) -> tuple[list[Query], Problems]:
    problems = Problems()
    files = build_queries(req, CATALOG, LOCATIONS, "sql/queries", problems)
    return [q for f in files for q in f.queries], problems


def test_sqlc_json_becomes_typed_records_with_defaults_for_what_it_leaves_out() -> None:
    req = SqlcRequest.parse(
        {
            "queries": [
                {
                    "name": "Q",
                    "cmd": ":many",
                    "filename": FILE,
                    "text": "SELECT 1",
                    "params": [
                        {"number": 2, "column": {"name": "b", "type": {"name": "int4"}}},
                        {"number": 1, "column": {"name": "a", "is_array": True}},
                    ],
                }
            ]
        }
    )
    (q,) = req.queries
    assert req.sqlc_version == "" and q.columns == () and q.comments == ()
    assert [p.number for p in q.params] == [1, 2]  # in order of number
    assert q.params[0].column.array_dims == 1 and q.params[0].column.type_name == ""
    assert q.insert_into_table is None


def test_a_table_shaped_result_maps_to_the_tables_model() -> None:
    (q,), problems = build(
        request(
            "SELECT id, name, note FROM items WHERE id = $1",
            params=[{"number": 1, "column": column("id", "int8", table={"name": "items"})}],
            columns=[
                column("id", "int8", table={"name": "items"}),
                column("name", "text", table={"name": "items"}),
                column("note", "text", not_null=False, table={"name": "items"}),
            ],
        )
    )
    assert not problems
    assert q.model_table == "items" and q.readonly and q.sqlite_sql == ""
    assert q.source_sql == "SELECT id, name, note FROM items WHERE id = $1"
    assert q.hints.not_null >= {"id", "name"} and "note" not in q.hints.not_null


def test_parameter_names_are_unique_and_slices_are_lists() -> None:
    (q,), problems = build(
        request(
            "SELECT id FROM items WHERE id IN ($1) AND (id > $2 OR id < $3)",
            cmd=":many",
            params=[
                {"number": 1, "column": column("ids", "int8", is_sqlc_slice=True)},
                {"number": 2, "column": column("id", "int8")},
                {"number": 3, "column": column("id", "int8")},
            ],
            columns=[column("id", "int8")],
        )
    )
    assert not problems
    assert [p.name for p in q.params] == ["ids", "id", "id_2"]
    assert q.params[0].type == PgType("int8", 1) and q.params[0].is_slice
    assert q.hints.list_params == frozenset({1})  # the SQLite rule binds it as JSON
    assert "= ANY($1)" in q.postgres_sql


def test_locking_reads_and_writes_are_not_readonly() -> None:
    (locking,), _ = build(
        request("SELECT id FROM items FOR UPDATE", columns=[column("id", "int8")])
    )
    (write,), _ = build(
        request("DELETE FROM items WHERE id = 1 RETURNING id", columns=[column("id", "int8")])
    )
    assert not locking.readonly and not write.readonly


def test_problems_carry_the_querys_place() -> None:
    _, unsupported = build(request("SELECT 1", cmd=":stream"))
    (problem,) = unsupported
    assert (problem.file, problem.line) == ("sql/queries/items.sql", 7)
    assert "command :stream is not supported" in problem.message
    _, duplicate = build(
        request("SELECT id, id FROM items", columns=[column("id", "int8"), column("id", "int8")])
    )
    assert any("duplicate result column 'id'" in p.message for p in duplicate)
    _, empty = build(request("DELETE FROM items", cmd=":many"))
    assert any(":many needs a statement that returns columns" in p.message for p in empty)


def test_the_collector_raises_once_with_every_problem_sorted() -> None:
    problems = Problems()
    problems.add("b.sql", 2, 1, "second")
    problems.add("a.sql", 9, 4, "first")
    try:
        problems.raise_if_any()
    except CodegenError as exc:
        assert [str(p) for p in exc.problems] == ["a.sql:9:4: first", "b.sql:2:1: second"]
    else:
        raise AssertionError("raise_if_any raised nothing")
    Problems().raise_if_any()  # nothing collected: nothing raised


def test_list_parameters_are_named_after_the_column_they_are_compared_with() -> None:
    from codegen.model.build import _compared_lists

    assert _compared_lists("SELECT id FROM t WHERE id = ANY($1::bigint[])") == {1: "ids"}
    assert _compared_lists("SELECT 1 FROM t WHERE t.tag <> ALL($2::text[]) AND x = $1") == {
        2: "tags"
    }
    assert _compared_lists("SELECT 1 FROM t WHERE status = ANY($1)") == {1: "status"}
    assert _compared_lists("SELECT 1 FROM t WHERE x = $1") == {}
