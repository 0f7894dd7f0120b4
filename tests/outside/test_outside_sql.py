"""Outside-style SQL: a bookshop schema and queries written as ordinary PostgreSQL
applications write them (tests/outside/sql). Generated in one pass; the statements with
no faithful SQLite form are refused, each for its stated reason; the rest generate, pass
mypy --strict, and give the same answers on SQLite and PostgreSQL for one sequence of
calls touching every one of them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pg_server import fresh_database

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
#: query -> the reason it is refused (a fragment of the message).
REFUSED: dict[str, str] = {}
DRIVER = r"""
import asyncio, json, sys, uuid
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
import shop_db
from shop_db.shop import AddAuthorsParams, AddOrderItemsParams
from aragora_repos import Config, Secret
from aragora_repos.errors import DataError

def plain(value):
    if hasattr(value, "__dataclass_fields__"):
        # created_at is now() at each backend's own moment: compared apart (an aware time)
        return {k: plain(getattr(value, k)) if k != "created_at" else getattr(value, k).tzinfo
                is not None for k in value.__dataclass_fields__}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # with its scale: 12.50 is not 12.5
    if isinstance(value, uuid.UUID):
        return str(value)
    if hasattr(value, "value"):
        return value.value
    return value

async def main(target):
    config = (Config(backend="postgres", dsn=Secret(target)) if target.startswith("postgresql")
              else Config(data_dir=Path(target)))
    db = await shop_db.connect(config)
    await db.migrate()
    s = db.shop
    out = {}
    def keep(name, value):
        out[name] = plain(value)
    a1 = await s.create_author(name="Ursula", bio=None, born=date(1929, 10, 21))
    a2 = await s.create_author(name="Émile", bio="écrivain", born=None)
    a3 = await s.create_author(name="bob", bio=None, born=None)
    keep("authors", [(a.name, a.born) for a in (a1, a2, a3)])
    keep("get_author", await s.get_author(id=a1.id))
    keep("add_authors", await s.add_authors([AddAuthorsParams(name="Zed", born=None),
                                             AddAuthorsParams(name="ada", born=date(2000, 1, 1))]))
    keep("list_authors", await s.list_authors())
    keep("bio_rows", await s.update_author_bio(bio="Earthsea", id=a1.id))
    b1 = await s.create_book(author_id=a1.id, title="A Wizard", isbn="111", price=Decimal("9.99"),
                             tags=["fantasy", "classic"], meta={"lang": "en", "pages": 183},
                             published_at=datetime(1968, 11, 1, 9, 30))
    b2 = await s.create_book(author_id=a1.id, title="The Dispossessed", isbn="222",
                             price=Decimal("12.50"), tags=["sf"], meta={"lang": "en"},
                             published_at=datetime(1974, 5, 1, 0, 0, 0, 123456))
    b3 = await s.create_book(author_id=a2.id, title="Nana", isbn=None, price=Decimal("7.25"),
                             tags=[], meta={"lang": "fr"}, published_at=None)
    keep("books", [(b.title, b.price, b.tags, b.meta, b.published_at) for b in (b1, b2, b3)])
    keep("by_isbn", await s.get_book_by_isbn(isbn="222"))
    keep("by_author", await s.books_by_author(id=a1.id))
    keep("by_ids", await s.books_by_ids(ids=[b3.id, b1.id, 999]))
    keep("search", await s.search_books(term="DIS"))
    keep("by_tag", await s.books_by_tag(tag="sf"))
    await s.set_book_tags(id=b3.id, tags=["naturalism", "sf"])
    keep("by_tag_after", await s.books_by_tag(tag="sf"))
    keep("lang", await s.book_language(meta="fr"))
    keep("between", await s.books_published_between(since=datetime(1960, 1, 1),
                                                    until=datetime(1974, 5, 1, 0, 0, 0, 123457)))
    keep("restock", await s.restock_all())
    c1 = uuid.UUID("00000000-0000-0000-0000-000000000001")
    c2 = uuid.UUID("00000000-0000-0000-0000-000000000002")
    keep("upsert", await s.upsert_customer(id=c1, email="a@x", display_name="A"))
    keep("upsert_again", await s.upsert_customer(id=c2, email="a@x", display_name="A2"))
    keep("upsert_b", await s.upsert_customer(id=c2, email="b@x", display_name=None))
    at = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
    o1 = await s.create_order(customer_id=c1, placed_at=at, note=None)
    o2 = await s.create_order(customer_id=c1, placed_at=datetime(2024, 2, 1, tzinfo=timezone.utc),
                              note="early")
    o3 = await s.create_order(customer_id=c2, placed_at=at, note=None)
    keep("orders", [(o.status,) for o in (o1, o2, o3)])
    await s.add_order_item(order_id=o1.id, book_id=b1.id, quantity=2, unit_price=Decimal("9.99"))
    keep("copy", await s.add_order_items([
        AddOrderItemsParams(order_id=o2.id, book_id=b2.id, quantity=1, unit_price=Decimal("12.50")),
        AddOrderItemsParams(order_id=o3.id, book_id=b1.id, quantity=5, unit_price=Decimal("9.00")),
    ]))
    keep("paid", [await s.mark_paid(id=o1.id), await s.mark_paid(id=o1.id)])
    keep("by_status", await s.count_orders_by_status())
    keep("since", await s.orders_placed_since(at=at))
    keep("numbers", await s.customer_order_numbers())
    keep("ranking", await s.author_ranking())
    keep("no_books", await s.authors_without_books())
    keep("top", await s.top_sellers(lim=2))
    keep("latest", await s.latest_order_per_customer())
    keep("cancelled", await s.cancel_old_orders(before=datetime(2024, 2, 15, tzinfo=timezone.utc)))
    keep("deleted", await s.delete_cancelled_orders())
    b4 = await s.create_book(author_id=a3.id, title="Cheap", isbn="444", price=Decimal("9.9"),
                             tags=["sf", "sf", "short"], meta={"lang": "en", "n": [1, {"x": True}]},
                             published_at=datetime(1968, 2, 29, 23, 59, 59, 999999))
    keep("with_tags", await s.books_with_tags(wanted=["sf"]))
    keep("with_tags_none", await s.books_with_tags(wanted=[]))
    keep("price_stats", await s.book_price_stats())
    keep("order_total", [await s.order_total(order_id=o.id) for o in (o1, o2, o3)])
    keep("cheaper", await s.books_cheaper_than(price=Decimal("10")))
    keep("cheaper_scale", await s.books_cheaper_than(price=Decimal("9.90")))
    keep("discounted", await s.discounted_prices())
    keep("by_author_prices", await s.price_by_author())
    keep("price_groups", await s.price_groups())
    keep("running", await s.running_total())
    keep("avg_quantity", await s.average_quantity())
    keep("set_price_rounds", await s.set_book_price(id=b4.id, price=Decimal("9.995")))
    keep("set_price_exponent", await s.set_book_price(id=b4.id, price=Decimal("1E+1")))
    try:
        await s.set_book_price(id=b4.id, price=Decimal("123456789.5"))
        keep("set_price_overflow", "accepted")
    except DataError as exc:
        keep("set_price_overflow", exc.sqlstate)
    # Past numeric's own range: asyncpg's binary encoder sent these as 0 (the price became
    # 0.00 on PostgreSQL, with no error) where SQLite refused them.
    for huge in ("1E+131072", "-9.5E+131072", "1E-16384"):
        try:
            await s.set_book_price(id=b4.id, price=Decimal(huge))
            keep(f"set_price_range {huge}", "accepted")
        except DataError as exc:
            keep(f"set_price_range {huge}", exc.sqlstate)
    keep("price_after", await s.set_book_price(id=b4.id, price=Decimal("0E+200000")))
    keep("meta", await s.books_by_meta(filter={"lang": "en"}))
    keep("meta_nested", await s.books_by_meta(filter={"n": [{"x": True}]}))
    keep("meta_type", await s.books_by_meta(filter={"n": [True]}))
    keep("meta_key", [await s.books_with_meta_key(key=k) for k in ("lang", "pages", "x")])
    keep("sharing", await s.books_sharing_tags(any_tags=["short", "nope"]))
    keep("within", await s.books_tagged_within(allowed=["sf", "short", "classic", "fantasy"]))
    keep("years", await s.published_years())
    keep("epochs", await s.order_epochs())
    keep("bulk", [(r.name, r.born) for r in await s.add_authors_bulk(
        names=["P", "Q", "R"], borns=[date(1900, 1, 2), date(1800, 12, 31)])])
    keep("in_order", await s.authors_in_order(ids=[a2.id, a1.id, 999]))
    await s.delete_author(id=a3.id)
    keep("after_delete", await s.list_authors())
    await db.close()
    print(json.dumps(out, sort_keys=True))

asyncio.run(main(sys.argv[1]))
"""


def _run(
    cwd: Path, *args: str, check: bool = True, check_dsn: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd / "build" / "src"), str(ROOT)])}
    env.pop("ARAGORA_CODEGEN_POSTGRES_DSN", None)
    if check_dsn:  # the generator also prepares every statement on PostgreSQL
        env["ARAGORA_CODEGEN_POSTGRES_DSN"] = check_dsn
    proc = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, check=False, cwd=cwd
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _without(text: str, names: set[str]) -> str:
    blocks = re.split(r"(?m)^(?=-- name: )", text)
    return "".join(b for b in blocks if not any(b.startswith(f"-- name: {n} ") for n in names))


@pytest.mark.postgres
def test_outside_sql_generates_types_and_agrees(tmp_path: Path, postgres_dsn: str) -> None:
    project = tmp_path / "outside"
    shutil.copytree(HERE / "sql", project / "sql")
    shutil.copy(HERE / "sqlc.yaml", project / "sqlc.yaml")
    queries = project / "sql" / "queries" / "shop.sql"
    names = re.findall(r"(?m)^-- name: (\w+) ", queries.read_text())

    first = _run(
        project,
        "-m",
        "codegen",
        "generate",
        "--root",
        str(project),
        check=False,
        check_dsn=postgres_dsn,
    )
    assert first.returncode == (1 if REFUSED else 0), first.stderr
    refused = {
        name: line
        for line in first.stderr.splitlines()
        if (m := re.search(r": query (\w+): cannot translate", line)) and (name := m.group(1))
    }
    assert set(refused) == set(REFUSED), first.stderr
    for name, reason in REFUSED.items():
        assert reason in refused[name], refused[name]

    queries.write_text(_without(queries.read_text(), set(REFUSED)))
    _run(project, "-m", "codegen", "generate", "--root", str(project))
    _run(project, "-m", "mypy", "--strict", "build/src/shop_db")
    (project / "driver.py").write_text(DRIVER)
    sqlite = json.loads(_run(project, "driver.py", str(tmp_path / "data")).stdout)
    with fresh_database(postgres_dsn) as dsn:
        postgres = json.loads(_run(project, "driver.py", dsn).stdout)
    # A few answers pinned, so that agreeing cannot mean both went wrong the same way.
    assert sqlite["set_price_rounds"] == "10.00"  # numeric(10, 2) rounds half away from 0
    assert sqlite["set_price_exponent"] == "10.00"
    assert sqlite["set_price_overflow"] == "22003"
    assert {k: v for k, v in sqlite.items() if k.startswith("set_price_range")} == {
        "set_price_range 1E+131072": "22003",
        "set_price_range -9.5E+131072": "22003",
        "set_price_range 1E-16384": "22003",
    }
    assert sqlite["price_after"] == "0.00"  # a zero of any exponent is 0
    assert [r["title"] for r in sqlite["cheaper_scale"]] == ["Nana"]  # 9.90 < 9.90 is false
    assert [r["third"] for r in sqlite["discounted"]][:1] == ["3.3300000000000000"]
    assert sqlite["meta_type"] == [] and len(sqlite["meta_nested"]) == 1
    assert sqlite["avg_quantity"] == {"average": "3.5000000000000000"}  # avg(int) is numeric
    differing = sorted(k for k in sqlite if sqlite[k] != postgres.get(k))
    assert differing == [], {k: (sqlite[k], postgres.get(k)) for k in differing}
    generated = len(names) - len(REFUSED)
    print(
        f"\noutside SQL: {len(names)} queries, {generated} generated, {len(REFUSED)} refused "
        f"({', '.join(f'{n}: {r}' for n, r in REFUSED.items())}); {len(sqlite)} checks agree"
    )
