"""Free-text search on both backends: the same matches and the same exact counts
(messages_count, messages_unread) through read changes, tags, deletion and mailboxes; on
PostgreSQL the one-tsquery listing (postgres_read.Reader._text_page) against the plain plan,
its narrow table's read flag (0020_message_text.sql) and that migration on older mail. And
has:attachment's counts (kept by triggers on PostgreSQL) through the same changes."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest

from postroom.store.base import MessagePage

from .conftest import Backend, message
from .test_search_inline import _attached

# name -> (subject, body, recipient)
MAIL = {
    "a": ("Invoice 42", "please pay the invoice", "alice@example.org"),
    "b": ("Invoice 43", "payment received, thanks", "alice@example.org"),
    "c": ("Quarterly report", "the quarterly report is attached", "bob@example.org"),
    "d": ("Lunch", "pizza or sushi, invoice later", "bob@example.org"),
    "e": ("Report draft", "quarterly numbers, no invoices", "alice@example.org"),
    "f": ("Zanzibar trip", "travel plans", "alice@example.org"),
}

QUERIES: list[tuple[str, set[str]]] = [
    ("invoice", {"a", "b", "d", "e"}),  # a prefix: "invoices" too
    ("invoic", {"a", "b", "d", "e"}),
    ("INVOICE", {"a", "b", "d", "e"}),
    ('"invoice"', {"a", "b", "d"}),  # a quoted phrase is whole words
    ("quarterly report", {"c", "e"}),  # both words, anywhere
    ('"quarterly report"', {"c"}),  # in a row
    ("invoice -payment", {"a", "d", "e"}),
    ("invoice -pay", {"d", "e"}),  # a negated word is a prefix too
    ("invoice -(pizza OR numbers)", {"a", "b"}),
    ("zanzibar OR pizza", {"d", "f"}),
    ("(zanzibar OR pizza) invoice", {"d"}),
    ("nonesuch", set()),
    ("invoice nonesuch", set()),
    ("-invoice", {"c", "f"}),  # no positive word: the plain plan
    ("invoice OR -pizza", {"a", "b", "c", "d", "e", "f"}),
    ("invoice subject:42", {"a"}),  # free text with another term: the plain plan
    ("invoice is:unread", {"b", "d", "e"}),
]


def _deliver(backend: Backend) -> dict[str, str]:
    ids = {
        k: backend.deliver(message(subject, body=body, to=rcpt), rcpt)
        for k, (subject, body, rcpt) in MAIL.items()
    }
    backend.store.set_read([ids["a"], ids["c"]], True)
    assert backend.store.wait_indexed(30)
    return ids


def _names(page: MessagePage, ids: dict[str, str]) -> list[str]:
    back = {v: k for k, v in ids.items()}
    return [back[m.id] for m in page.messages]


@pytest.mark.parametrize(("query", "expect"), QUERIES)
def test_free_text_matches_and_counts(backend: Backend, query: str, expect: set[str]) -> None:
    ids = _deliver(backend)
    page = backend.store.list_messages(query=query)
    assert set(_names(page, ids)) == expect
    assert _names(page, ids) == sorted(expect, reverse=True)  # newest first
    unread = expect - {"a", "c"}
    assert (page.total, page.unread) == (6, 4)
    assert (page.messages_count, page.messages_unread) == (len(expect), len(unread))


def test_counts_follow_read_tags_and_deletion(backend: Backend) -> None:
    ids = _deliver(backend)

    def counts(query: str = "invoice", mailbox: str | None = None) -> tuple[int, int]:
        page = backend.store.list_messages(query=query, mailbox=mailbox)
        return page.messages_count, page.messages_unread

    assert counts() == (4, 3)
    backend.store.set_read([ids["b"], ids["d"]], True)
    assert counts() == (4, 1) and counts("invoice -payment") == (3, 1)
    backend.store.set_read([ids["a"], ids["b"], ids["c"], ids["d"], ids["e"]], False)
    assert counts() == (4, 4) and counts("quarterly report") == (2, 2)
    backend.store.set_tags([ids["a"]], ["billing"])
    assert counts() == (4, 4)
    backend.store.set_read([ids["e"]], True)
    assert counts("invoice", "bob@example.org") == (1, 1)
    assert counts("invoice", "alice@example.org") == (3, 2)
    backend.store.delete_messages([ids["b"], ids["c"]])
    assert counts() == (3, 2) and counts("quarterly report") == (1, 0)
    assert counts("invoice", "alice@example.org") == (2, 1)
    late = backend.deliver(message("late invoice", body="overdue"))
    assert backend.store.wait_indexed(30)
    assert counts() == (4, 3)
    backend.store.set_read([late], True)
    assert counts() == (4, 2)
    backend.store.delete_messages(None)
    assert counts() == (0, 0)


def test_attachment_counts_follow_changes(backend: Backend) -> None:
    plain = backend.deliver(message("plain"))
    files = [backend.deliver(_attached(f"file {i}"), "bob@example.org") for i in range(3)]
    assert backend.store.wait_indexed(30)

    def counts(query: str = "has:attachment", mailbox: str | None = None) -> tuple[int, int, list[str]]:
        page = backend.store.list_messages(query=query, mailbox=mailbox, limit=2)
        return page.messages_count, page.messages_unread, [m.id for m in page.messages]

    assert counts() == (3, 3, [files[2], files[1]])
    backend.store.set_read([files[0], plain], True)
    assert counts() == (3, 2, [files[2], files[1]])
    assert counts("has:attachment is:unread") == (2, 2, [files[2], files[1]])
    backend.store.set_read(None, True)
    assert counts()[:2] == (3, 0)
    backend.store.set_read([files[1]], False)
    assert counts()[:2] == (3, 1)
    backend.store.delete_messages([files[1], plain])
    assert counts() == (2, 0, [files[2], files[0]])
    assert counts("has:attachment", "bob@example.org") == (2, 0, [files[2], files[0]])
    assert backend.store.list_messages(query="has:attachment", start=1, limit=5).messages[0].id == files[0]
    backend.store.delete_messages(None)
    assert counts() == (0, 0, [])
    again = backend.deliver(_attached("after emptying"))
    assert backend.store.wait_indexed(30)
    assert counts() == (1, 1, [again])


def test_pages_of_a_free_text_listing(backend: Backend) -> None:
    ids = _deliver(backend)
    pages = [backend.store.list_messages(query="invoice", start=s, limit=2) for s in (0, 2, 4)]
    assert [_names(p, ids) for p in pages] == [["e", "d"], ["b", "a"], []]
    assert all(p.messages_count == 4 for p in pages)
    page = backend.store.list_messages(query="invoice", mailbox="alice@example.org", start=1, limit=1)
    assert _names(page, ids) == ["b"] and (page.messages_count, page.messages_unread) == (3, 2)


@pytest.mark.parametrize("backend_name", ["postgresql"])
@pytest.mark.parametrize("walk", [0, 10**9])
def test_postgres_sparse_and_dense_pages_agree(
    backend: Backend, walk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether a page walks the ids newest first or sorts the collected matches
    (``WALK_ROWS``), it is the same page."""
    from postroom.store import postgres_read

    ids = _deliver(backend)
    monkeypatch.setattr(postgres_read, "WALK_ROWS", walk)
    for query, expect in QUERIES:
        for start in range(len(expect) + 1):
            page = backend.store.list_messages(query=query, start=start, limit=2)
            assert _names(page, ids) == sorted(expect, reverse=True)[start : start + 2], (query, start)


def _pg(backend: Backend, sql: str) -> list[tuple[Any, ...]]:
    store: Any = backend.store
    with store.db.read() as conn:
        return [tuple(r) for r in conn.execute(sql)]


@pytest.mark.parametrize("backend_name", ["postgresql"])
def test_postgres_text_rows_keep_the_read_flag(backend: Backend) -> None:
    """message_text holds one row per indexed message with the message's read flag, through
    every way read state changes, and none of deleted mail."""
    ids = _deliver(backend)
    same = "SELECT count(*) FROM message m JOIN message_text t ON t.id = m.id WHERE t.read = m.read"
    assert _pg(backend, same) == [(6,)] and _pg(backend, "SELECT count(*) FROM message_text") == [(6,)]
    backend.store.set_read(None, True)  # all of them
    assert _pg(backend, same) == [(6,)]
    backend.store.set_read([ids["b"]], False)
    backend.store.delete_messages([ids["f"]])
    assert _pg(backend, same) == [(5,)] and _pg(backend, "SELECT count(*) FROM message_text") == [(5,)]
    assert _pg(backend, "SELECT count(*) FROM message_text WHERE NOT read") == [(1,)]


@pytest.mark.parametrize("backend_name", ["postgresql"])
def test_postgres_migration_moves_the_text_of_older_mail(backend: Backend) -> None:
    """A database from before 0020 (the tsvector in message, message_count without the
    attachment counts): the migration moves the text, with the read flags, to message_text
    and counts the mail with attachments; the answers stay the same."""
    ids = _deliver(backend)
    ids["g"] = backend.deliver(_attached("a file"))
    assert backend.store.wait_indexed(30)
    before = {q: _names(backend.store.list_messages(query=q), ids) for q, _ in QUERIES}
    migrations = resources.files("postroom.store").joinpath("migrations/postgres")
    store: Any = backend.store
    store.db.write(
        lambda c, events: (
            c.execute("ALTER TABLE message ADD COLUMN tsv tsvector"),
            c.execute("UPDATE message m SET tsv = t.tsv FROM message_text t WHERE t.id = m.id"),
            c.execute("CREATE INDEX message_tsv ON message USING gin (tsv)"),
            c.execute(
                "DROP TABLE message_text; DROP FUNCTION message_text_read() CASCADE; "
                "DROP INDEX message_attached; DROP INDEX message_to_trgm; DROP TABLE message_count; "
                "DROP FUNCTION message_count_change() CASCADE; DROP FUNCTION message_count_insert() CASCADE; "
                "DROP FUNCTION message_count_delete() CASCADE; DROP FUNCTION message_count_add(bigint, bigint, bigint, bigint)"
            ),
            c.execute(migrations.joinpath("0018_message_counts.sql").read_text("utf-8").encode()),
            c.execute(migrations.joinpath("0020_message_text.sql").read_text("utf-8").encode()),
        )
    )
    assert _pg(backend, "SELECT count(*), count(*) FILTER (WHERE read) FROM message_text") == [(7, 2)]
    assert {q: _names(backend.store.list_messages(query=q), ids) for q, _ in QUERIES} == before
    page = backend.store.list_messages(query="has:attachment")
    assert (page.total, page.unread, page.messages_count, page.messages_unread) == (7, 5, 1, 1)


def test_postgres_takes_free_text_in_one_tsquery() -> None:
    """A query of free text only becomes one tsquery (the listing counts from message_text);
    any other query takes the plain plan."""
    from postroom.store.base import InvalidQuery
    from postroom.store.postgres_search import fulltext_query

    assert fulltext_query("invoice") == "'invoice':*"
    assert fulltext_query("invoice -payment") == "('invoice':*) & !('payment':*)"
    assert fulltext_query('"quarterly report" OR zanzibar') == "('quarterly' <-> 'report') | ('zanzibar':*)"
    for q in ("-invoice", "invoice OR -pizza", "invoice is:unread", "subject:x", "...", "  ", "header:a"):
        assert fulltext_query(q) is None, q
    with pytest.raises(InvalidQuery):
        fulltext_query('"unclosed')


def test_postgres_counts_has_attachment_alone_from_kept_counts() -> None:
    from postroom.store.postgres_search import attachment_only

    assert attachment_only("has:attachment") and attachment_only("  HAS:ATTACHMENT ")
    for q in (
        "-has:attachment",
        "has:attachment is:unread",
        "has:inline",
        "attachment",
        "has:attachment OR x",
    ):
        assert not attachment_only(q), q


@pytest.mark.parametrize("backend_name", ["postgresql"])
def test_postgres_statistics_follow_the_store_size(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """The indexing node ANALYZEs the searched tables once it has caught up and the store
    has doubled since their statistics were taken (the test server runs without autovacuum)."""
    import time

    from postroom.store import postgres

    monkeypatch.setattr(postgres, "ANALYZE_FROM", 4)
    tuples = "SELECT reltuples FROM pg_class WHERE oid = 'message_text'::regclass"

    def analyzed(at_least: float, wait: float = 10) -> float:
        """reltuples once it is at least ``at_least`` (or what it is after ``wait`` seconds)."""
        deadline = time.monotonic() + wait
        while (n := float(_pg(backend, tuples)[0][0])) < at_least and time.monotonic() < deadline:
            time.sleep(0.1)
        return n

    count = 0

    def deliver_up_to(n: int) -> None:
        nonlocal count
        while count < n:
            backend.deliver(message(f"m{count}"))
            count += 1
        assert backend.store.wait_indexed(30)

    deliver_up_to(3)
    assert analyzed(3, 1.5) == -1  # below ANALYZE_FROM: never analyzed
    deliver_up_to(5)
    first = analyzed(4)  # at 4 or 5, as the indexer caught up
    assert first in (4, 5)
    deliver_up_to(int(2 * first) - 1)
    assert analyzed(first + 1, 1.5) == first  # less than twice as many: the statistics stay
    deliver_up_to(int(2 * first) + 1)
    assert analyzed(2 * first) >= 2 * first


@pytest.mark.parametrize("backend_name", ["postgresql"])
def test_postgres_pending_gin_entries_are_merged(backend: Backend) -> None:
    """Once the indexer has caught up, no GIN index of the searched tables keeps a pending
    list (which every search would read whole; the test server runs without autovacuum)."""
    import time

    _deliver(backend)
    store: Any = backend.store
    with store.db.read() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
    pending = (
        "SELECT c.relname, (pgstatginindex(c.oid)).pending_pages FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
        "WHERE a.amname = 'gin' AND i.indrelid IN ('message'::regclass, 'message_text'::regclass) ORDER BY 1"
    )
    deadline = time.monotonic() + 10
    while any(n for _, n in _pg(backend, pending)) and time.monotonic() < deadline:
        time.sleep(0.1)
    rows = _pg(backend, pending)
    assert {name for name, _ in rows} >= {"message_text_tsv", "message_to_trgm", "message_subject_trgm"}
    assert all(n == 0 for _, n in rows), rows
