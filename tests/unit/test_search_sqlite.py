"""compile_query against the real schema (migrations) in SQLite: each term finds what it should."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.store.base import InvalidQuery
from postroom.store.index_write import write_header_rows
from postroom.store.indexer import TagRules, extract
from postroom.store.sqlite_schema import apply_migrations
from postroom.store.sqlite_search import (
    compile_query,
    fts_quote,
    header_matches,
    header_rows,
    register_functions,
)

MESSAGES = {
    1: (
        b"From: Alice Smith <alice@example.com>\r\nTo: Bob <bob@example.com>\r\nCc: carol@example.org\r\n"
        b"Subject: Quarterly invoice\r\nX-Mailer: Thunderbird 115\r\nX-Priority: 1\r\n\r\nThe invoice is attached.\r\n"
    ),
    2: (
        b"From: news@example.org\r\nTo: dave@example.net\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= newsletter\r\n"
        b"Content-Type: text/html\r\nX-Campaign: =?utf-8?q?Fr=C3=BChling?=\r\n\r\n<p>Spring <b>sale</b> news</p>\r\n"
    ),
    3: (
        b"From: robot@example.com\r\nTo: alice@example.com\r\nSubject: 100% done_ok\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nreport\r\n"
        b"--B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=report-2024.pdf\r\n\r\n"
        b"%PDF\r\n--B--\r\n"
    ),
}


@pytest.fixture(scope="module", params=["header block", "header index", "both"])
def db(request: pytest.FixtureRequest) -> Iterator[sqlite3.Connection]:
    """The messages in a migrated database; header: terms answered from each message's header
    block (not indexed yet), from the header_field index, or from both (message 2 not indexed)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    apply_migrations(conn)
    register_functions(conn)
    cctx = zstandard.ZstdCompressor()
    for mid, raw in MESSAGES.items():
        d = extract(raw)
        conn.execute(
            "INSERT INTO message(id, pid, created, subject, from_name, from_addr, to_json, cc_json, size, "
            "attachments, read, thread_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                mid,
                f"P{mid}",
                1_700_000_000 + mid * 86400,
                d.subject,
                *(("Alice Smith", "alice@example.com") if mid == 1 else ("", f"sender{mid}@example.com")),
                json.dumps([["Bob", "bob@example.com"]] if mid == 1 else [["", f"to{mid}@example.net"]]),
                json.dumps([["", "carol@example.org"]] if mid == 1 else []),
                len(raw) * (100 if mid == 3 else 1),
                d.attachments,
                int(mid == 2),
                "T1" if mid in (1, 3) else "T2",
            ),
        )
        conn.execute("INSERT INTO raw(id, data) VALUES (?, ?)", (mid, cctx.compress(raw)))
        if request.param == "header index" or (request.param == "both" and mid != 2):
            write_header_rows(conn, mid, header_rows(cctx.compress(raw)))
            conn.execute("UPDATE message SET hdr = 1 WHERE id = ?", (mid,))
        conn.execute(
            "INSERT INTO fts(rowid, subject, addresses, body, attachments) VALUES (?,?,?,?,?)",
            (mid, d.subject, d.addresses, d.body, d.attachment_names),
        )
    conn.execute("INSERT INTO tag(id, name) VALUES (1, 'Billing')")
    conn.execute("INSERT INTO message_tag(message, tag) VALUES (1, 1)")
    conn.execute("INSERT INTO mailbox(id, name, created) VALUES (1, 'dave@example.net', 0)")
    conn.execute("INSERT INTO folder(id, mailbox_id, name, uidvalidity) VALUES (1, 1, 'INBOX', 1)")
    conn.execute("INSERT INTO delivery(folder_id, uid, message) VALUES (1, 1, 2)")
    yield conn
    conn.close()


def run(db: sqlite3.Connection, text: str) -> set[int]:
    sql, params = compile_query(text)
    return {r[0] for r in db.execute(f"SELECT m.id FROM message m WHERE {sql}", params)}


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("", {1, 2, 3}),
        ("invoice", {1}),
        ("INVOICE", {1}),
        ("invo", {1}),
        ('"invoice is attached"', {1}),
        ('"invoice attached"', set()),
        ("sale", {2}),  # HTML text
        ("grüße", {2}),  # decoded subject
        ("report-2024.pdf", {3}),  # attachment name
        ("alice", {1, 3}),  # addresses are indexed
        ("from:alice", {1}),
        ("from:smith", {1}),
        ("to:bob@example.com", {1}),
        ("cc:carol", {1}),
        ("addressed:carol", {1}),
        ("subject:quarterly", {1}),
        ("subject:100%", {3}),  # LIKE wildcards are literal
        ("subject:done_ok", {3}),
        ("subject:y_i", set()),  # "_" is not a wildcard ("Quarterly invoice")
        ("tag:billing", {1}),  # tag names compare case-insensitively
        ("is:tagged", {1}),
        ("-is:tagged", {2, 3}),
        ("is:read", {2}),
        ("is:unread", {1, 3}),
        ("has:attachment", {3}),
        ("mailbox:Dave@Example.net", {2}),
        ("thread:T1", {1, 3}),
        ("larger:1k", {3}),
        ("smaller:1k", {1, 2}),
        ("header:X-Mailer=thunderbird", {1}),
        ("header:x-priority", {1}),
        ("header:X-Campaign=frühling", {2}),  # RFC 2047 decoded
        ("header:X-Mailer=outlook", set()),
        ("header:Content-Type=text/html", {2}),
        ("header:content-type", {2, 3}),
        ("header:subject=100%", {3}),  # LIKE wildcards are literal in header values too
        ("header:subject=0_d", set()),
        ("header:x-campaign=FRÜH header:subject=grüße", {2}),
        ("invoice OR sale", {1, 2}),
        ("(invoice OR sale) -from:alice", {2}),
        ("-(invoice OR sale)", {3}),
        ("after:2023-11-16", {2, 3}),
        ("before:2023-11-16", {1}),
        ("%", {3}),  # no letters: subject substring
    ],
)
def test_terms(db: sqlite3.Connection, text: str, ids: set[int]) -> None:
    assert run(db, text) == ids


@pytest.mark.parametrize(
    "text", ['"NEAR(a b)"', "a* OR b", "subject:x AND", "^start", "col:umn", "{subject}:x", "'", '"""']
)
def test_fts_syntax_cannot_be_injected(db: sqlite3.Connection, text: str) -> None:
    try:
        sql, params = compile_query(text)
    except InvalidQuery:
        return
    db.execute(f"SELECT count(*) FROM message m WHERE {sql}", params).fetchone()


def test_fts_quote() -> None:
    assert fts_quote('say "hi"', prefix=False) == '"say ""hi"""'
    assert fts_quote("x", prefix=True) == '"x"*'


def test_invalid_query() -> None:
    with pytest.raises(InvalidQuery, match="is:maybe"):
        compile_query("is:maybe")


def test_header_matches_unfolds() -> None:
    block = b"Subject: a\r\nX-Long: first\r\n second part\r\nX-Other: z"
    assert header_matches(block, "x-long", "first second")
    assert header_matches(block, "X-Other", None)
    assert not header_matches(block, "X-Missing", None)
    assert not header_matches(block, "Subject", "b")


def test_tag_rules(db: sqlite3.Connection) -> None:
    rules = TagRules(
        [{"query": "has:attachment", "tags": "reports, pdf"}, {"query": "from:alice", "tags": ["vip"]}]
    )
    assert rules.tags_for(db, 3) == ["reports", "pdf"]
    assert rules.tags_for(db, 1) == ["vip"]
    assert rules.tags_for(db, 2) == []
    from postroom.store.indexer import RuleError

    with pytest.raises(RuleError, match="tagging rule 1"):
        TagRules([{"query": "is:maybe", "tags": ["x"]}])
    with pytest.raises(RuleError, match="'tags'"):
        TagRules([{"query": "x", "tags": 3}])


TOKENS = [*"ab \"()-!:*^{}\\%_'é@.=", "OR", "NEAR", "from:", "header:", "is:read", "tag:", "larger:"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=15).map("".join))
def test_any_query_compiles_to_valid_sql_or_invalid_query(db: sqlite3.Connection, text: str) -> None:
    try:
        sql, params = compile_query(text)
    except InvalidQuery:
        return
    db.execute(f"SELECT count(*) FROM message m WHERE {sql}", params).fetchone()


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: =?utf-8?q?caf=C3=A9?=\r\nX-Long: a\r\n b\r\n\r\nbody\r\nX-Not: header\r\n",
        b"From: a@x\nTo: b@y\n\nbody",
        b"X-Only: headers, no body",
        b"X-Big: " + b"v" * 40_000 + b"\r\nX-After: yes\r\n\r\nbody",
        b"X-Huge: " + b"w" * 300_000 + b"\r\nX-Past: the scan limit\r\n\r\nbody",
    ],
)
def test_header_rows_of_the_message_as_stored_or_decompressed_are_the_same(raw: bytes) -> None:
    """The indexer reads the header fields from the message it has decompressed for parsing
    (packed=False); the background pass from the stored frame: the same rows either way."""
    from postroom.store.rawcodec import compress

    rows = header_rows(raw, packed=False)
    assert rows == header_rows(compress(raw)) == header_rows(zstandard.ZstdCompressor().compress(raw))
    assert rows and rows[0][0] in ("subject", "from", "x-only", "x-big", "x-huge")
