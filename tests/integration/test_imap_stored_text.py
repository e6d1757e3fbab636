"""SEARCH TEXT/BODY over the search text the indexer stores (servers/imap/searchtext.py):
the first SEARCH TEXT after delivery reads it instead of decoding every message, and every
answer is the one text derived on demand gives (a message the indexer has not been through,
a store written before). A real server over sockets, a real SQLite file."""

from __future__ import annotations

import base64
import sqlite3
import time
from pathlib import Path

import pytest

import postroom.servers.imap.messages as messages
from postroom.protocols.imap import mime
from postroom.servers.imap.core import CACHE_KEY
from postroom.servers.imap.messages import MessageCache
from postroom.store.base import Envelope
from tests.helpers import RunningServer, running_server
from tests.integration.imap_wire import Wire


def _msg(head: str, body: bytes, ctype: str = "text/plain; charset=utf-8", extra: str = "") -> bytes:
    return (
        f"From: Ann <ann@example.org>\r\nTo: bob@example.org\r\n{head}\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: {ctype}\r\n{extra}\r\n"
    ).encode() + body


def _b64(text: str, charset: str = "utf-8") -> bytes:
    return base64.encodebytes(text.encode(charset)).replace(b"\n", b"\r\n")


# Mail whose search text is not its bytes: RFC 2047 words in several charsets, quoted-
# printable with soft breaks, base64, multipart with an HTML part and attachments (a PDF,
# whose bytes are not text, and a text/plain one, which is), message/rfc822, 8-bit text in
# KOI8-R, Shift_JIS and an unknown charset, decomposed Unicode, a folded header field.
CORPUS = [
    # uid 1: encoded words (Latin-1 Q, UTF-8 B)
    _msg(
        "From: =?iso-8859-1?q?J=F6rg_M=FCller?= <jm@example.com>\r\n"
        "Subject: =?utf-8?b?" + base64.b64encode("Café Zürich".encode()).decode() + "?=",
        b"meeting notes\r\n",
    ),
    # uid 2: quoted-printable, a soft line break inside a word
    _msg(
        "Subject: qp",
        b"Gro=C3=9Fe Stra=C3=9Fe zan=\r\nzibar =E2=82=AC\r\n",
        extra="Content-Transfer-Encoding: quoted-printable\r\n",
    ),
    # uid 3: base64 UTF-8
    _msg(
        "Subject: b64", _b64("Привет, мир! Résumé attached."), extra="Content-Transfer-Encoding: base64\r\n"
    ),
    # uid 4: multipart/alternative
    _msg(
        "Subject: alt",
        b"--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlain okapi\r\n--a\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<b>HTML okapi</b> \xc3\xbcn\xc3\xafcode\r\n--a--\r\n",
        'multipart/alternative; boundary="a"',
    ),
    # uid 5: attachments: a PDF (not text) and a text/plain one, both base64
    _msg(
        "Subject: attached",
        b"--m\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--m\r\n"
        b'Content-Type: application/pdf; name="r.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + _b64("%PDF hidden kangaroo")
        + b'--m\r\nContent-Type: text/plain; charset=iso-8859-1; name="n.txt"\r\n'
        b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment\r\n\r\n"
        + _b64("giraffe déjà vu", "iso-8859-1")
        + b"--m--\r\n",
        'multipart/mixed; boundary="m"',
    ),
    # uid 6: KOI8-R body, a windows-1252 encoded word
    _msg(
        "Subject: =?windows-1252?q?caf=E9_=80uro?=",
        "привет из москвы\r\n".encode("koi8-r"),
        "text/plain; charset=koi8-r",
    ),
    # uid 7: Shift_JIS
    _msg("Subject: sjis", "日本語のテキスト\r\n".encode("shift_jis"), "text/plain; charset=shift_jis"),
    # uid 8: message/rfc822 inside: its body is body text, its header is not
    _msg(
        "Subject: Fwd: inner",
        b"--f\r\nContent-Type: text/plain\r\n\r\nforwarded below\r\n--f\r\nContent-Type: message/rfc822\r\n\r\n"
        b"Subject: secret header\r\nFrom: x@y\r\n\r\ninner walrus\r\n--f--\r\n",
        'multipart/mixed; boundary="f"',
    ),
    # uid 9: decomposed é (e + U+0301), capital sharp s
    _msg("Subject: nfc", "cafe\u0301 noir, GROẞ\r\n".encode()),
    # uid 10: an unknown charset (read as UTF-8)
    _msg("Subject: unknown", "naïve text\r\n".encode(), "text/plain; charset=x-no-such-charset"),
    # uid 11: plain ASCII, a folded header field
    _msg("Subject: plain\r\nX-Note: folded zanzi\r\n bar here", b"nothing to see\r\n"),
]

# (criteria, UIDs): the answers of text derived on demand, which the stored text must give
SEARCHES: list[tuple[str, str]] = [
    ('TEXT "müller"', "1"),
    ('BODY "müller"', ""),
    ('TEXT "MÜLLER"', "1"),
    ('TEXT "zürich"', "1"),
    ('TEXT "zanzibar"', "2"),
    ('TEXT "zanzi bar"', "11"),
    ('TEXT "strasse"', "2"),
    ('BODY "große"', "2"),
    ('TEXT "€"', "2 6"),
    ('BODY "привет"', "3 6"),
    ('TEXT "résumé"', "3"),
    ('TEXT "日本語"', "7"),
    ('BODY "okapi"', "4"),
    ('TEXT "ünïcode"', "4"),
    ('TEXT "giraffe déjà"', "5"),
    ('TEXT "kangaroo"', ""),
    ('TEXT "walrus"', "8"),
    ('TEXT "secret header"', ""),
    ('TEXT "café"', "1 6 9"),
    ('BODY "café"', "9"),
    ('BODY "gross"', "2 9"),
    ('TEXT "naïve"', "10"),
    ('TEXT "ann@example.org"', "1 2 3 4 5 6 7 8 9 10 11"),
    ('HEADER Subject "zürich"', "1"),
    ('HEADER X-Note "zanzi bar"', "11"),
    ('SUBJECT "€uro"', "6"),
    ('OR BODY "naïve" TEXT "jm@example"', "1 10"),
    ('NOT BODY "okapi"', "1 2 3 5 6 7 8 9 10 11"),
    ('UID 5:* BODY "e"', "5 8 10 11"),
]


def search(w: Wire, criteria: str) -> bytes:
    data = criteria.encode()
    if not data.isascii():
        # the non-ASCII string as a literal (IMAP quoted strings are 7-bit)
        head, _, rest = criteria.partition('"')
        needle, _, tail = rest.partition('"')
        raw = needle.encode()
        data = head.encode() + b"{%d+}\r\n" % len(raw) + raw + tail.encode()
    [line] = w.ok(b"UID SEARCH CHARSET UTF-8 " + data)
    return line


def want(uids: str) -> bytes:
    return b"* SEARCH" + (b" " + uids.encode() if uids else b"") + b"\r\n"


def deliver_all(s: RunningServer, raws: list[bytes]) -> None:
    for raw in raws:
        s.call(s.app.store.deliver(Envelope("ann@example.org", ("bob@example.org",)), raw))
    assert s.app.store.wait_indexed(60)


def stored_texts(db: Path) -> int:
    with sqlite3.connect(db) as c:
        n: int = c.execute("SELECT count(*) FROM imap_text").fetchone()[0]
        return n


def wait_stored(db: Path, n: int) -> None:
    """Until the indexer has stored the search text of ``n`` messages (it does so after
    their text index, when the server has an IMAP listener)."""
    deadline = time.monotonic() + 30
    while stored_texts(db) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored_texts(db) == n


def cache_of(s: RunningServer) -> MessageCache:
    cache = s.app.extras[CACHE_KEY]
    assert isinstance(cache, MessageCache)
    return cache


def test_the_first_search_text_reads_the_text_the_indexer_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the indexer has been through new mail, a first SEARCH TEXT or BODY neither parses
    nor decodes a message: it reads the stored text. (Before, the indexer stored none and the
    first SEARCH TEXT derived the text of every message it could not rule out from its bytes.)"""
    db = tmp_path / "store.db"
    derived: list[int] = []
    parsed: list[str] = []
    real_text, real_parsed = messages.search_text, MessageCache.parsed

    def count_text(part: mime.Part, headers: dict[str, list[str]] | None = None) -> tuple[str, int]:
        derived.append(1)
        return real_text(part, headers)

    def count_parse(self: MessageCache, id: str, data: bytes) -> mime.Part:
        parsed.append(id)
        return real_parsed(self, id, data)

    monkeypatch.setattr(messages, "search_text", count_text)
    monkeypatch.setattr(MessageCache, "parsed", count_parse)
    with running_server(db=str(db)) as s:
        deliver_all(s, CORPUS)
        wait_stored(db, len(CORPUS))
        with Wire(*s.addr("imap")) as w:
            w.ok('LOGIN "bob@example.org" x')
            w.ok("EXAMINE INBOX")
            assert search(w, 'TEXT "müller"') == want("1")
            assert search(w, 'BODY "привет"') == want("3 6")
            assert search(w, 'TEXT "zanzi bar"') == want("11")
        assert derived == [] and parsed == []


@pytest.mark.parametrize("chunk", [1000, 3])
def test_stored_and_derived_text_give_the_same_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Every SEARCH over tricky mail answers alike from the text the indexer stored, from
    text derived on demand (no stored rows: a message not derived yet, a store written
    before), and from memory; chunk boundaries anywhere."""
    import postroom.servers.imap.selected as selected

    monkeypatch.setattr(selected, "SEARCH_CHUNK", chunk)
    db = tmp_path / "store.db"
    with running_server(db=str(db)) as s:
        deliver_all(s, CORPUS)
        wait_stored(db, len(CORPUS))
        with Wire(*s.addr("imap")) as w:
            w.ok('LOGIN "bob@example.org" x')
            w.ok("EXAMINE INBOX")
            cache = cache_of(s)
            for how in ("stored", "derived on demand", "memory"):
                if how != "memory":
                    cache.forget(None)
                if how == "derived on demand":
                    with sqlite3.connect(db) as c:
                        c.execute("DELETE FROM imap_text")
                for criteria, uids in SEARCHES:
                    assert search(w, criteria) == want(uids), (how, criteria)
                    if how == "derived on demand":
                        assert cache.writes.drain(30)
                        cache.forget(None)  # derived again by the next search


def test_the_indexer_stores_the_text_of_mail_that_has_other_imap_data_already(tmp_path: Path) -> None:
    """Mail whose ENVELOPE and header fields the IMAP server derived (a client APPENDed or
    FETCHed it before the indexer got to it), or that a store written before holds with
    such rows and no search text, gets its search text from the indexer too: here after a
    restart, which walks the store again."""
    db = tmp_path / "store.db"
    with running_server(db=str(db)) as s:
        deliver_all(s, CORPUS)
        wait_stored(db, len(CORPUS))
    with sqlite3.connect(db) as c:
        c.execute("DELETE FROM imap_text")
        assert c.execute("SELECT count(*) FROM imap_meta").fetchone() == (len(CORPUS),)
    with running_server(db=str(db)) as s:
        wait_stored(db, len(CORPUS))
