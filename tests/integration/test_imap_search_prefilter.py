"""A first SEARCH TEXT/BODY decodes only the messages its prefilter cannot rule out
(protocols/imap/prefilter.py) and answers as before. A real server over sockets; SQLite,
or PostgreSQL with POSTROOM_TEST_DB=postgresql."""

from __future__ import annotations

import pytest

from postroom.protocols.imap import mime
from postroom.servers.imap.messages import MessageCache
from postroom.store.base import Envelope
from tests.helpers import running_server
from tests.integration.imap_wire import Wire


def message(i: int) -> bytes:
    word = "Zanzibar" if i % 5 == 2 else "harbour"
    subject = "=?utf-8?q?caf=C3=A9_zanzibar?=" if i % 7 == 3 else f"plain {i}"
    body = f"ships to {word} on day {i}\r\n"
    cte = ""
    if i % 6 == 4:  # quoted-printable: "zanzibar" only once decoded
        cte, body = "Content-Transfer-Encoding: quoted-printable\r\n", "zan=\r\nzibar by sea\r\n"
    return (
        f"From: a{i}@example.org\r\nTo: bob@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: <p{i}@x>\r\nContent-Type: text/plain; charset=utf-8\r\n{cte}\r\n{body}"
    ).encode()


def test_first_search_text_decodes_only_what_it_cannot_rule_out(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []
    real = MessageCache.parsed

    def spy(self: MessageCache, id: str, data: bytes) -> mime.Part:
        parsed.append(id)
        return real(self, id, data)

    monkeypatch.setattr(MessageCache, "parsed", spy)
    n = 30
    raws = [message(i) for i in range(n)]
    want = [i + 1 for i in range(n) if i % 5 == 2 or i % 7 == 3 or i % 6 == 4]
    plain_without = [i for i in range(n) if not (i % 5 == 2 or i % 7 == 3 or i % 6 == 4)]
    with running_server() as s:
        for raw in raws:
            s.call(s.app.store.deliver(Envelope("x@example.org", ("bob@example.org",)), raw))
        w = Wire(*s.addr("imap"))
        w.ok('LOGIN "bob@example.org" x')
        w.ok("EXAMINE INBOX")
        parsed.clear()
        single: list[str] = []  # messages read from the store one at a time
        store = s.app.store
        one = store.get_raw
        monkeypatch.setattr(store, "get_raw", lambda id: single.append(id) or one(id))
        got = w.ok('UID SEARCH TEXT "zanzibar"')[0]
        assert single == []  # read RAW_GROUP at a time (messages.py), not one by one
        assert got == b"* SEARCH " + " ".join(map(str, want)).encode() + b"\r\n"
        # every plain message without the word was ruled out from its bytes
        assert len(parsed) == n - len(plain_without)
        # again (those ruled out are looked at again, the rest come from the text cache),
        # and BODY, AND, NOT and OR answer as before
        assert w.ok('UID SEARCH TEXT "zanzibar"')[0] == got
        body = [i + 1 for i in range(n) if i % 5 == 2 or i % 6 == 4]
        assert (
            w.ok('UID SEARCH BODY "ZANZIBAR"')[0]
            == b"* SEARCH " + " ".join(map(str, body)).encode() + b"\r\n"
        )
        both = [u for u in want if u >= 10]
        assert (
            w.ok('UID SEARCH UID 10:* TEXT "zanzibar"')[0]
            == b"* SEARCH " + " ".join(map(str, both)).encode() + b"\r\n"
        )
        rest = [u for u in range(1, n + 1) if u not in want]
        assert (
            w.ok('UID SEARCH NOT TEXT "zanzibar"')[0]
            == b"* SEARCH " + " ".join(map(str, rest)).encode() + b"\r\n"
        )
        either = sorted({*want, 9})  # uid 9: From a8@example.org
        line = b"* SEARCH " + " ".join(map(str, either)).encode() + b"\r\n"
        assert w.ok('UID SEARCH OR TEXT "zanzibar" TEXT "a8@example"')[0] == line
        w.close()
