"""header:Name=value on both backends: the same answers from each one's header index (SQLite's
header_field, 0011; PostgreSQL's header_field, 0016), the same rows in it, and on PostgreSQL
the rows of mail stored before the index existed."""

from __future__ import annotations

import sqlite3
from importlib import resources
from typing import Any

import pytest

from postroom.store.sqlite_search import header_rows

from .conftest import Backend, message

QUERIES: list[tuple[str, set[str]]] = [
    ("header:List-Id=list3", {"a", "d"}),
    ("header:LIST-ID=<List3.Example", {"a", "d"}),  # names and values ignore case
    ("header:List-Id", {"a", "b", "d"}),
    ("header:X-Tag=t2", {"b"}),  # X-Tag twice, both match: listed once
    ("header:x-tag", {"b", "c"}),
    ("header:X-Campaign=frühling", {"c"}),  # RFC 2047 decoded
    ("header:X-Note=100%_", {"d"}),  # LIKE's wildcards are plain characters
    ("header:X-Note=1000", set()),
    ('header:X-Note="two lines"', {"c"}),  # unfolded
    ("header:List-Id=nonesuch", set()),
    ("header:X-Absent", set()),
    ("-header:List-Id=list3", {"b", "c"}),
    ("header:List-Id=list3 OR header:x-tag", {"a", "b", "c", "d"}),
    ("header:List-Id=list3 subject:second", set()),
    ("header:List-Id=list3 subject:fourth", {"d"}),
]


def _deliver_four(backend: Backend) -> dict[str, str]:
    ids = {
        "a": backend.deliver(message("first", extra="List-Id: <list3.example.com>\r\n")),
        "b": backend.deliver(
            message("second", extra="List-Id: <list4.example.com>\r\nX-Tag: t2\r\nX-Tag: T2-again\r\n")
        ),
        "c": backend.deliver(
            message(
                "third",
                extra="X-Campaign: =?utf-8?q?Fr=C3=BChling-1?=\r\nX-Tag: t1\r\nX-Note: two\r\n lines\r\n",
            ),
            "bob@example.org",
        ),
        "d": backend.deliver(
            message("fourth", extra="List-Id: <LIST3.example.com>\r\nX-Note: 100%_ off\r\n")
        ),
    }
    assert backend.store.wait_indexed(30)
    return ids


@pytest.mark.parametrize(("query", "expect"), QUERIES)
def test_header_search_gives_the_same_answers(backend: Backend, query: str, expect: set[str]) -> None:
    ids = _deliver_four(backend)
    names = {v: k for k, v in ids.items()}
    page = backend.store.list_messages(query=query)
    assert {names[m.id] for m in page.messages} == expect
    assert page.messages_count == page.messages_unread == len(expect)


def test_header_search_counts_read_mail_and_mailboxes(backend: Backend) -> None:
    ids = _deliver_four(backend)
    backend.store.set_read([ids["a"]], True)
    page = backend.store.list_messages(query="header:List-Id=list3")
    assert (page.messages_count, page.messages_unread) == (2, 1)
    assert [m.id for m in page.messages] == [ids["d"], ids["a"]]  # newest first
    page = backend.store.list_messages(query="header:x-tag", mailbox="bob@example.org")
    assert [m.id for m in page.messages] == [ids["c"]]
    backend.store.delete_messages([ids["d"]])
    page = backend.store.list_messages(query="header:List-Id=list3")
    assert (page.messages_count, page.messages_unread, [m.id for m in page.messages]) == (1, 0, [ids["a"]])


def _rows(backend: Backend) -> list[tuple[Any, ...]]:
    """Every header_field row as (message pid, seq, name, value)."""
    store: Any = backend.store
    sql = (
        "SELECT m.pid, h.seq, h.name, h.value FROM header_field h JOIN message m ON m.id = h.message "
        "ORDER BY m.pid, h.seq"
    )
    if backend.name == "sqlite":
        conn = sqlite3.connect(store.path)
        try:
            return [tuple(r) for r in conn.execute(sql)]
        finally:
            conn.close()
    with store.db.read() as conn:
        return [tuple(r) for r in conn.execute(sql)]


def test_the_index_holds_the_same_rows(backend: Backend) -> None:
    ids = _deliver_four(backend)
    want = sorted(
        (pid, seq, name, value)
        for pid in ids.values()
        for name, seq, value in header_rows(backend.store.get_raw(pid) or b"", packed=False)
    )
    assert len(want) > 20
    assert sorted(_rows(backend)) == want


@pytest.mark.parametrize("backend_name", ["postgresql"])  # PostgreSQL's migration only
def test_postgres_rows_of_mail_stored_before_the_index(backend: Backend) -> None:
    """A PostgreSQL database from before 0016 (no header_field, the header lines' trigram
    index): the migration writes the rows from the stored header lines."""
    from postroom.store.postgres_search import header_lines

    ids = _deliver_four(backend)
    before = _rows(backend)
    migration = resources.files("postroom.store").joinpath("migrations/postgres/0016_header_field.sql")
    store: Any = backend.store
    # the indexer drops a message's header lines once header_field holds its rows; before
    # 0016 every message kept them
    lines = [(header_lines(backend.store.get_raw(pid) or b""), pid) for pid in ids.values()]
    store.db.write(
        lambda c, events: (
            c.cursor().executemany("UPDATE message SET headers = %s WHERE pid = %s", lines),
            c.execute("DROP TABLE header_field"),
            c.execute("CREATE INDEX message_headers_trgm ON message USING gin (headers gin_trgm_ops)"),
            c.execute(migration.read_text("utf-8").encode()),
        )
    )
    assert _rows(backend) == before
    for query, expect in QUERIES:
        assert len(backend.store.list_messages(query=query).messages) == len(expect), query


@pytest.mark.parametrize("backend_name", ["postgresql"])
def test_postgres_drops_the_header_lines_of_indexed_mail(backend: Backend) -> None:
    """Once a message's header_field rows are written its header lines (only read for mail
    not indexed yet) are dropped from its row; header: still finds it."""
    _deliver_four(backend)
    store: Any = backend.store
    with store.db.read() as conn:
        assert conn.execute("SELECT count(*) FROM message WHERE headers <> ''").fetchone() == (0,)
    page = backend.store.list_messages(query="header:List-Id=list3")
    assert page.messages_count == 2


def test_postgres_takes_one_header_term_in_one_statement() -> None:
    """PostgreSQL lists a query of one header: term from its matching ids alone
    (postgres_read.Reader._header_page); any other query takes the plain plan."""
    from postroom.store.base import InvalidQuery
    from postroom.store.postgres_search import header_ids

    sql, params = header_ids("header:List-Id=list3") or ("", [])
    assert sql.startswith("SELECT h.message FROM header_field h") and params[:2] == ["list-id", "%list3%"]
    for q in ("-header:a=b", "header:a=b is:read", "header:a=b OR header:c", "alpha", "from:x", "  "):
        assert header_ids(q) is None, q
    with pytest.raises(InvalidQuery):
        header_ids("header:")
