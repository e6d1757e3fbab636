"""Hostile mail and queries over the real HTTP API and IMAP (issue 14 items 1, 5, 8).

A running postroom (in a thread, real sockets) receives each message over SMTP; every
view of it must answer, it must be indexed and searchable, and odd search queries get a
clear 400 (HTTP) or BAD/NO (IMAP), never a 500 or ``NO [SERVERBUG]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import RunningServer, running_server
from tests.integration._api_client import Api, q, smtp_send
from tests.integration.imap_wire import Wire

BAD_CHARSETS = ["idna", "punycode", "undefined", "x-no-such-charset", "unicode_escape", "base64"]


def charset_message(charset: str) -> bytes:
    return (
        (
            f"From: a@example.org\r\nTo: charsets@example.org\r\nSubject: charset {charset}\r\n"
            f"Content-Type: text/plain; charset={charset}\r\n\r\n"
        ).encode()
        + b"zebra\xc3\x28 "
        + charset.encode()
        + b"word\r\n"
    )


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with running_server() as s:
        yield s


@pytest.fixture(scope="module")
def api(server: RunningServer) -> Api:
    return Api(server)


@pytest.fixture(scope="module")
def charset_ids(server: RunningServer, api: Api) -> dict[str, str]:
    for cs in BAD_CHARSETS:
        smtp_send(server, charset_message(cs), ["charsets@example.org"])
    api.wait_indexed()
    found = api.get("/api/v1/search?query=" + q("to:charsets@example.org") + "&limit=50").json()
    return {m["Subject"].split()[-1]: m["ID"] for m in found["messages"]}


@pytest.mark.parametrize("charset", BAD_CHARSETS)
def test_bad_charset_every_view_answers(api: Api, charset_ids: dict[str, str], charset: str) -> None:
    mid = charset_ids[charset]
    r = api.get(f"/api/v1/message/{mid}")
    assert r.status == 200, r.text
    text = r.json()["Text"]
    assert text.startswith("zebra") and f"{charset}word" in text
    assert "\ufffd" in text  # the invalid byte is a replacement character, not an error
    for path in (f"/view/{mid}.txt", f"/api/v1/message/{mid}/headers", f"/api/v1/message/{mid}/raw"):
        assert api.get(path).status == 200, path
    summary = api.get("/api/v1/search?query=" + q(f"{charset}word")).json()
    assert [m["ID"] for m in summary["messages"]] == [mid]  # indexed
    assert summary["messages"][0]["Snippet"].startswith("zebra")


def test_bad_charset_imap_search_answers_for_the_mailbox(
    server: RunningServer, charset_ids: dict[str, str]
) -> None:
    assert len(charset_ids) == len(BAD_CHARSETS)
    with Wire(*server.addr("imap")) as w:
        w.ok('LOGIN "charsets@example.org" x')
        w.ok("SELECT INBOX")
        assert w.ok("SEARCH TEXT zebra") == [b"* SEARCH 1 2 3 4 5 6\r\n"]
        assert w.ok("SEARCH BODY idnaword") == [b"* SEARCH 1\r\n"]
        assert w.ok("SEARCH BODY punycodeword") == [b"* SEARCH 2\r\n"]
        fetched = w.ok("FETCH 1 (BODY[TEXT] BODYSTRUCTURE ENVELOPE)")
        assert b"zebra" in b"".join(fetched)


def test_encoded_words_in_bad_charsets_read_as_text(server: RunningServer, api: Api) -> None:
    raw = (
        b"From: =?idna?q?=C3=28?= <idna@example.org>\r\nTo: words@example.org\r\n"
        b"Subject: =?punycode?b?w6k=?= =?undefined?q?x?= =?utf-8?q?caf=C3=A9?=\r\n\r\nbody\r\n"
    )
    smtp_send(server, raw, ["words@example.org"])
    api.wait_indexed()
    found = api.get("/api/v1/search?query=" + q("to:words@example.org")).json()["messages"]
    assert len(found) == 1
    assert found[0]["Subject"].endswith("café")
    assert api.get(f"/api/v1/message/{found[0]['ID']}").status == 200


HOSTILE_HTML = "<a x='\">' " + "a=b " * 20


def test_hostile_html_is_viewed_and_indexed(server: RunningServer, api: Api) -> None:
    raw = (
        "From: a@example.org\r\nTo: html@example.org\r\nSubject: hostile html\r\n"
        f"Content-Type: text/html\r\n\r\n{HOSTILE_HTML}<p>findme</p>\r\n"
    ).encode()
    smtp_send(server, raw, ["html@example.org"])
    api.wait_indexed()
    found = api.get("/api/v1/search?query=findme").json()["messages"]
    assert len(found) == 1
    mid = found[0]["ID"]
    assert api.get(f"/api/v1/message/{mid}").json()["Text"] == "findme"
    assert api.get(f"/view/{mid}.html").status == 200
    with Wire(*server.addr("imap")) as w:
        w.ok('LOGIN "html@example.org" x')
        w.ok("SELECT INBOX")
        assert w.ok("SEARCH TEXT findme") == [b"* SEARCH 1\r\n"]


@pytest.mark.parametrize(
    "query",
    [
        "larger:99999999999999999999G",
        "smaller:99999999999999999999999999",
        "after:99999999999999d",
        "before:-99999999999999999d",
        "after:99999-01-01",
        "a\x00b",
        "subject:\x00",
        "tag:\x00x",
        "before:9999999999999999999999999",
    ],
)
def test_odd_queries_get_400_not_500(api: Api, query: str) -> None:
    r = api.get("/api/v1/search?query=" + q(query))
    assert r.status in (200, 400), (r.status, r.text)
    if r.status == 400:
        assert r.text.strip()  # a reason


def test_nul_in_query_is_400(api: Api) -> None:
    r = api.get("/api/v1/search?query=a%00b")
    assert r.status == 400 and "NUL" in r.text


def test_odd_imap_search_keys_get_bad_or_no(server: RunningServer) -> None:
    with Wire(*server.addr("imap")) as w:
        w.ok('LOGIN "charsets@example.org" x')
        w.ok("SELECT INBOX")
        for cmd in (
            "SEARCH LARGER 99999999999999999999999",
            "SEARCH SMALLER 99999999999999999999999",
            "SEARCH SINCE 1-Jan-99999",
            "SEARCH UID 1:99999999999999999999",
            "SEARCH TEXT {3+}\r\na\x00b",
        ):
            reply = w.cmd(cmd)[-1]
            status = reply.split(b" ")[1]
            assert status in (b"OK", b"NO", b"BAD"), (cmd, reply)
            assert b"SERVERBUG" not in reply, (cmd, reply)
