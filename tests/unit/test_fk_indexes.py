"""The foreign-key index check: a key is covered when an index, the primary key or a
unique constraint starts with its columns (in any order among them), not by a partial
index or one that holds them later; a marked key is left alone; places are file:line:col."""

from __future__ import annotations

from codegen.analysis.schema import analyse_schema
from codegen.fk_indexes import marked, unindexed

SCHEMA = """-- migrate:up
CREATE TABLE parents (a TEXT, b TEXT, PRIMARY KEY (a, b));
CREATE TABLE covered (id TEXT PRIMARY KEY, a TEXT, b TEXT, FOREIGN KEY (a, b) REFERENCES parents);
CREATE INDEX covered_ba ON covered (b, a, id);
CREATE TABLE by_pk (a TEXT, b TEXT, x TEXT, PRIMARY KEY (a, b, x),
    FOREIGN KEY (a, b) REFERENCES parents);
CREATE TABLE later (id TEXT PRIMARY KEY, a TEXT, b TEXT, FOREIGN KEY (a, b) REFERENCES parents);
CREATE INDEX later_x ON later (id, a, b);
CREATE TABLE partial (id TEXT PRIMARY KEY, p TEXT REFERENCES partial (id));
CREATE INDEX partial_p ON partial (p) WHERE p IS NOT NULL;
CREATE TABLE quiet (id TEXT PRIMARY KEY, p TEXT REFERENCES quiet (id));
-- unindexed foreign key: quiet (p): a handful of rows
-- migrate:down
"""


def test_keys_without_a_leading_index_are_reported_where_their_table_is() -> None:
    files = {"0001_t.sql": SCHEMA}
    catalog, _ = analyse_schema(files)
    problems = unindexed(catalog, marked(files))
    assert [(p.file, p.line, p.message.split(" ->")[0]) for p in problems] == [
        ("0001_t.sql", 7, "foreign key later (a, b)"),
        ("0001_t.sql", 9, "foreign key partial (p)"),
    ]
    assert "CREATE INDEX ON later (a, b);" in problems[0].message
    # Without the mark, the last one is reported too.
    assert len(unindexed(catalog, set())) == 3
