"""postroom's /api/v2: mailboxes, per-mailbox listing and read state, envelopes, wait."""

from __future__ import annotations

import threading
import time

import pytest

from tests.helpers import RunningServer
from tests.integration._api_client import Api, q, smtp_send


@pytest.fixture
def api(server: RunningServer) -> Api:
    return Api(server)


def test_mailboxes_and_mailbox_filter(api: Api) -> None:
    smtp_send(
        api.server,
        b"From: s@example.com\r\nSubject: one\r\n\r\nx\r\n",
        ["Ann@Example.com", "bob@example.com"],
    )
    smtp_send(api.server, b"From: s@example.com\r\nSubject: two\r\n\r\nx\r\n", ["bob@example.com"])
    boxes = api.get("/api/v2/mailboxes").json()["mailboxes"]
    assert boxes == [
        {"Name": "ann@example.com", "Total": 1, "Unread": 1},
        {"Name": "bob@example.com", "Total": 2, "Unread": 2},
    ]
    ann = api.get("/api/v1/messages?mailbox=ann@example.com").json()
    assert [m["Subject"] for m in ann["messages"]] == ["one"] and ann["total"] == 1
    s = api.get("/api/v1/search?mailbox=bob@example.com&query=" + q("subject:two")).json()
    assert s["messages_count"] == 1 and s["total"] == 2
    assert api.get("/api/v1/search?query=" + q("mailbox:ann@example.com")).json()["messages_count"] == 1


def test_mailbox_read_state_and_clear(api: Api) -> None:
    smtp_send(api.server, b"From: s@example.com\r\nSubject: one\r\n\r\nx\r\n", ["ann@example.com"])
    smtp_send(api.server, b"From: s@example.com\r\nSubject: two\r\n\r\nx\r\n", ["bob@example.com"])
    r = api.request("PUT", "/api/v2/mailbox/ann@example.com/read", {"Read": True})
    assert r.status == 200 and r.text == "ok"
    boxes = {b["Name"]: b for b in api.get("/api/v2/mailboxes").json()["mailboxes"]}
    assert boxes["ann@example.com"]["Unread"] == 0 and boxes["bob@example.com"]["Unread"] == 1
    assert api.request("PUT", "/api/v2/mailbox/ann@example.com/read", {"Read": "yes"}).status == 400
    assert api.request("PUT", "/api/v2/mailbox/nobody@example.com/read", {"Read": True}).status == 404
    assert api.request("DELETE", "/api/v2/mailbox/ann@example.com").text == "ok"
    subjects = [m["Subject"] for m in api.get("/api/v1/messages").json()["messages"]]
    assert subjects == ["two"]
    assert api.request("DELETE", "/api/v2/mailbox/nobody@example.com").status == 404


def test_envelope(api: Api) -> None:
    smtp_send(
        api.server,
        b"From: header@example.com\r\nSubject: e\r\n\r\nx\r\n",
        ["r1@example.com", "r2@example.com"],
    )
    env = api.get("/api/v2/message/latest/envelope").json()
    assert env["MailFrom"] == "sender@example.com"
    assert env["RcptTo"] == ["r1@example.com", "r2@example.com"]
    assert env["Peer"].startswith("127.0.0.1:") and env["TLS"] is False
    assert api.get("/api/v2/message/nope/envelope").status == 404


def test_wait_returns_an_existing_match_at_once(api: Api) -> None:
    mid = api.send(To=[{"Email": "x@example.com"}], Subject="ready")
    r = api.get("/api/v2/wait?timeout=5&query=" + q("subject:ready"))
    assert r.status == 200 and r.json()["ID"] == mid


def test_wait_times_out_with_408(api: Api) -> None:
    r = api.get("/api/v2/wait?timeout=0.2&query=" + q("subject:never"))
    assert r.status == 408 and "timed out" in r.text
    assert api.get("/api/v2/wait?timeout=abc").status == 400
    assert api.get("/api/v2/wait?timeout=100000").status == 400
    assert api.get("/api/v2/wait?timeout=1&query=" + q("is:bogus")).status == 400


@pytest.mark.parametrize(
    "query", ["subject:later", "needle"]
)  # a summary field, and full text (after indexing)
def test_wait_wakes_on_arrival(api: Api, query: str) -> None:
    api.send(To=[{"Email": "x@example.com"}], Subject="earlier message")
    result: dict[str, object] = {}

    def waiter() -> None:
        r = api.get(f"/api/v2/wait?timeout=20&new=1&mailbox=late@example.com&query={q(query)}")
        result["status"], result["body"] = r.status, r.json() if r.status == 200 else r.text

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)  # let the waiter register (the test does not depend on it: new=1 covers either order)
    api.send(To=[{"Email": "other@example.com"}], Subject="later but elsewhere", Text="needle")
    mid = api.send(To=[{"Email": "late@example.com"}], Subject="later", Text="needle in a haystack")
    t.join(30)
    assert result["status"] == 200, result
    assert result["body"]["ID"] == mid  # type: ignore[index]


def test_deleting_a_mailbox_keeps_messages_shared_with_others(api: Api) -> None:
    """issue 21 item 1: a message delivered to three mailboxes stays in the other two."""
    shared = b"From: s@example.com\r\nSubject: shared\r\n\r\nx\r\n"
    smtp_send(api.server, shared, ["alice@example.com", "bob@example.com", "carol@example.com"])
    smtp_send(api.server, b"From: s@example.com\r\nSubject: carol only\r\n\r\nx\r\n", ["carol@example.com"])
    smtp_send(api.server, b"From: s@example.com\r\nSubject: bob only\r\n\r\nx\r\n", ["bob@example.com"])
    assert api.request("DELETE", "/api/v2/mailbox/carol@example.com").text == "ok"
    listing = api.get("/api/v2/messages").json()
    assert sorted(m["Subject"] for m in listing["messages"]) == ["bob only", "shared"]
    shared_row = next(m for m in listing["messages"] if m["Subject"] == "shared")
    assert shared_row["Mailboxes"] == ["alice@example.com", "bob@example.com"]
    boxes = {b["Name"]: b["Total"] for b in api.get("/api/v2/mailboxes").json()["mailboxes"]}
    # the deleted mailbox is gone from the list, not left behind empty
    assert boxes == {"alice@example.com": 1, "bob@example.com": 2}
    # the same through /api/v1/messages?mailbox= without IDs
    assert api.request("DELETE", "/api/v1/messages?mailbox=bob@example.com", {}).text == "ok"
    listing = api.get("/api/v2/messages").json()
    assert [m["Subject"] for m in listing["messages"]] == ["shared"]
    assert listing["messages"][0]["Mailboxes"] == ["alice@example.com"]
    assert [b["Name"] for b in api.get("/api/v2/mailboxes").json()["mailboxes"]] == ["alice@example.com"]
    # a new message to a deleted mailbox brings it back, empty of the old mail
    smtp_send(api.server, b"From: s@example.com\r\nSubject: back\r\n\r\nx\r\n", ["carol@example.com"])
    carol = api.get("/api/v1/messages?mailbox=carol@example.com").json()
    assert [m["Subject"] for m in carol["messages"]] == ["back"]


def test_delete_all_leaves_no_empty_mailbox_listed(api: Api) -> None:
    """issue 21 item 6: after Delete all, the mailboxes that held the mail are not listed;
    one where an IMAP client made a folder stays (the folder is the user's)."""
    import imaplib

    smtp_send(
        api.server,
        b"From: s@example.com\r\nSubject: one\r\n\r\nx\r\n",
        ["ann@example.com", "bob@example.com"],
    )
    imap = imaplib.IMAP4(*api.server.address("imap"))
    try:
        imap.login("dora@example.com", "x")  # only logged into: not listed
        imap.logout()
        imap = imaplib.IMAP4(*api.server.address("imap"))
        imap.login("carl@example.com", "x")
        assert imap.create("Projects")[0] == "OK"
    finally:
        imap.logout()
    listed = [b["Name"] for b in api.get("/api/v2/mailboxes").json()["mailboxes"]]
    assert listed == ["ann@example.com", "bob@example.com", "carl@example.com"]
    assert api.request("DELETE", "/api/v1/messages", {}).text == "ok"
    assert api.get("/api/v2/mailboxes").json()["mailboxes"] == [
        {"Name": "carl@example.com", "Total": 0, "Unread": 0}
    ]
    # an emptied mailbox can still be deleted by name, and new mail brings one back
    assert api.request("DELETE", "/api/v2/mailbox/ann@example.com").text == "ok"
    assert api.request("DELETE", "/api/v2/mailbox/carl@example.com").text == "ok"
    smtp_send(api.server, b"From: s@example.com\r\nSubject: two\r\n\r\nx\r\n", ["bob@example.com"])
    assert api.get("/api/v2/mailboxes").json()["mailboxes"] == [
        {"Name": "bob@example.com", "Total": 1, "Unread": 1}
    ]
