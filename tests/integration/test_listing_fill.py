"""/api/v1 listings of mail the indexer has not reached yet (web/indexwait.py), in a real
`postroom serve` whose indexer process is held (SIGSTOP)."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from postroom.web.indexwait import FILL_BYTES, FILL_MAX, LISTING_WAIT
from tests.helpers import serve_process

ATTACHED = (
    "From: Ann <ann@test.example>\r\nTo: bob@test.example\r\nSubject: report\r\n"
    "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
    "--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    "<html><head><style>p{}</style></head><body><p>Quarterly <b>figures</b>&amp; notes</p></body></html>\r\n"
    "--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=r.pdf\r\n\r\n"
    "%PDF-1.4\r\n--b1--\r\n"
)
PLAIN = "From: c@test.example\r\nTo: d@test.example\r\nSubject: plain\r\n\r\nJust a line\r\nand another.\r\n"


def _get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.load(r)


def _indexer(pid: int) -> int:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    [indexer] = [int(p) for p in out if b"index_worker" in Path(f"/proc/{p}/cmdline").read_bytes()]
    return indexer


@contextmanager
def _held(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _send(port: int, *messages: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        for msg in messages:
            s.sendmail("a@test.example", ["b@test.example"], msg)


def _fields(listing: Any) -> list[tuple[str, str, int]]:
    return [(m["Subject"], m["Snippet"], m["Attachments"]) for m in listing["messages"]]


def test_a_listing_fills_in_unindexed_mail_at_once_as_the_indexer_will(tmp_path: Path) -> None:
    """Snippet and attachment count of mail not indexed yet are in the first listing, without
    waiting for the indexer (a listing used to wait up to LISTING_WAIT, then answer without
    them), and they are what the indexer then stores."""
    with serve_process(tmp_path / "s.db", "--smtp-workers", "0") as (proc, smtp, http):
        with _held(_indexer(proc.pid)):
            _send(smtp, ATTACHED, PLAIN)
            t0 = time.monotonic()
            listed = _get(http, "/api/v1/messages")
            took = time.monotonic() - t0
            assert _get(http, "/api/v2/messages")["messages"][0]["Snippet"] == ""  # not indexed
        assert listed["total"] == 2
        assert _fields(listed) == [
            ("plain", "Just a line and another.", 0),
            ("report", "Quarterly figures& notes", 1),
        ]
        assert took < LISTING_WAIT / 2, took
        deadline = time.monotonic() + 30
        while any(m["Snippet"] == "" for m in _get(http, "/api/v2/messages")["messages"]):
            assert time.monotonic() < deadline, "the indexer did not index the messages"
            time.sleep(0.05)
        assert _fields(_get(http, "/api/v1/messages")) == _fields(listed)


def test_with_tagging_rules_a_listing_waits_for_the_indexer(tmp_path: Path) -> None:
    """Tags from rules are the indexer's to apply: a listing of unindexed mail waits for it
    (at most LISTING_WAIT) rather than answer without them."""
    config = tmp_path / "postroom.toml"
    config.write_text('[[tags]]\nquery = "subject:report"\ntags = ["reports"]\n')
    with serve_process(tmp_path / "s.db", "--smtp-workers", "0", "--config", str(config)) as (
        proc,
        smtp,
        http,
    ):
        indexer = _indexer(proc.pid)
        with _held(indexer):
            _send(smtp, ATTACHED)
            t0 = time.monotonic()
            listed = _get(http, "/api/v1/messages")
            assert time.monotonic() - t0 >= LISTING_WAIT * 0.9
            assert listed["messages"][0]["Tags"] == [] and listed["messages"][0]["Snippet"] == ""
        deadline = time.monotonic() + 30
        while not (m := _get(http, "/api/v1/messages")["messages"][0])["Tags"]:
            assert time.monotonic() < deadline, "the indexer did not tag the message"
            time.sleep(0.05)
        assert m["Tags"] == ["reports"] and m["Snippet"] == "Quarterly figures& notes"


def test_a_page_of_more_unindexed_mail_than_it_fills_waits(tmp_path: Path) -> None:
    """Filling in costs the main process a parse a message: a page with more than FILL_MAX
    unindexed messages waits for the indexer instead (at most LISTING_WAIT), as does one
    whose unindexed messages take more than FILL_BYTES."""
    with (
        serve_process(tmp_path / "s.db", "--smtp-workers", "0") as (proc, smtp, http),
        _held(_indexer(proc.pid)),
    ):
        _send(smtp, *[PLAIN] * (FILL_MAX + 1))
        t0 = time.monotonic()
        many = _get(http, "/api/v1/messages")
        assert time.monotonic() - t0 >= LISTING_WAIT * 0.9
        assert [m["Snippet"] for m in many["messages"]] == [""] * (FILL_MAX + 1)
        assert _fields(_get(http, f"/api/v1/messages?limit={FILL_MAX}"))[0][1] == "Just a line and another."
        big = PLAIN.replace("Subject: plain", "Subject: big") + "x" * (FILL_BYTES // 2) + "\r\n"
        _send(smtp, big, big)
        t0 = time.monotonic()
        two = _get(http, "/api/v1/messages?limit=2")
        assert time.monotonic() - t0 >= LISTING_WAIT * 0.9
        assert [m["Snippet"] for m in two["messages"]] == ["", ""]


def test_a_message_the_parser_cannot_take_is_left_unfilled_not_a_500(monkeypatch: Any) -> None:
    """The fill derives on the main process's thread pool: a message whose parse raises (the
    indexer logs and skips such a message) keeps the store's summary; the others are filled."""
    import postroom.store.indexer as indexer
    from postroom.store.base import Envelope
    from postroom.web.indexwait import _derive
    from tests.helpers import running_server

    real = indexer.extract

    def extract(raw: bytes) -> Any:
        if b"Subject: report" in raw:
            raise RecursionError("too deep")
        return real(raw)

    with running_server(smtp="off", pop3="off", imap="off") as s:
        env = Envelope("a@test.example", ("b@test.example",))
        bad = s.call(s.app.store.deliver(env, ATTACHED.encode()))
        good = s.call(s.app.store.deliver(env, PLAIN.encode()))
        monkeypatch.setattr(indexer, "extract", extract)
        assert _derive(s.app.store, [bad, good]) == {good: ("Just a line and another.", 0)}
