"""The indexer process and its helper processes (store/index_worker.py), in a real `postroom serve`."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import serve_process

pytestmark = pytest.mark.slow


def _api(port: int, path: str) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.load(r)  # type: ignore[no-any-return]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _burst(port: int, n: int, word: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        for i in range(n):
            # an HTML part large enough that parsing it costs measurable CPU time
            html = "<p>" + " ".join(f"<b>{word}</b> line {k} of message {i}" for k in range(200)) + "</p>"
            msg = (
                f"From: a@test.example\r\nTo: b@test.example\r\nSubject: m{i}\r\n"
                f"Content-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
            )
            s.sendmail("a@test.example", ["b@test.example"], msg)


def _backlog(indexer: int, smtp: int, word: str) -> None:
    """300 messages that arrive while the indexer is held: it finds them all waiting."""
    os.kill(indexer, signal.SIGSTOP)
    try:
        _burst(smtp, 300, word)
        time.sleep(0.3)  # the burst is over: SMTP is quiet when the indexer looks
    finally:
        os.kill(indexer, signal.SIGCONT)


def _wait_searchable(http: int, word: str, n: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    q = urllib.parse.urlencode({"query": word, "limit": 1})
    found = 0
    while time.monotonic() < deadline:
        found = int(_api(http, f"/api/v1/search?{q}")["messages_count"])
        if found == n:
            break
        time.sleep(0.1)
    return found


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    with serve_process(tmp_path / "s.db", "--smtp-workers", "0") as running:
        yield running


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="helper processes are started on 2 or more cores")
def test_backlog_is_indexed_with_helpers_and_without_them(
    serve: tuple[subprocess.Popen[bytes], int, int],
) -> None:
    proc, smtp, http = serve
    indexer = [p for p in _children(proc.pid) if b"index_worker" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert len(indexer) == 1
    deadline = time.monotonic() + 10
    while not (helpers := _children(indexer[0])) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert helpers, "the indexer started no helper process"
    # a backlog (the indexer is held while the mail arrives), parsed by it and its helpers
    before = sum(_cpu_ticks(p) for p in helpers)
    _backlog(indexer[0], smtp, "zebrafinch")
    assert _wait_searchable(http, "zebrafinch", 300) == 300
    assert sum(_cpu_ticks(p) for p in helpers) > before, "the helpers parsed nothing"
    # a helper that dies does not stop indexing: the indexer parses on its own
    for pid in helpers:
        os.kill(pid, signal.SIGKILL)
    _backlog(indexer[0], smtp, "kingfisher")
    assert _wait_searchable(http, "kingfisher", 300) == 300
    assert proc.poll() is None and all(Path(f"/proc/{p}").exists() for p in indexer)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="helper processes are started on 2 or more cores")
def test_helpers_write_text_and_tags_once_and_the_indexer_the_conversations(tmp_path: Path) -> None:
    """Helpers write the text (snippet, full-text row, tags) of their share of a backlog, the
    indexer writes every conversation: each message is found once, tagged by the rule, and a
    reply shares its thread with the message it answers, whoever parsed either of them."""
    import sqlite3

    config = tmp_path / "postroom.toml"
    config.write_text('[[tags]]\nquery = "subject:even"\ntags = ["even"]\n')
    db = tmp_path / "s.db"
    with serve_process(db, "--smtp-workers", "0", "--config", str(config)) as (proc, smtp, http):
        indexer = [
            p for p in _children(proc.pid) if b"index_worker" in Path(f"/proc/{p}/cmdline").read_bytes()
        ]
        deadline = time.monotonic() + 10
        while not (helpers := _children(indexer[0])) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert helpers, "the indexer started no helper process"
        before = sum(_cpu_ticks(p) for p in helpers)
        os.kill(indexer[0], signal.SIGSTOP)
        try:
            with smtplib.SMTP("127.0.0.1", smtp, timeout=10) as s:
                for i in range(300):
                    kind = "even" if i % 2 == 0 else "odd"
                    reply = f"In-Reply-To: <m{i - 1}@helpers.test>\r\n" if i % 2 else ""
                    body = " ".join(f"word{k}" for k in range(300))
                    msg = (
                        f"From: a@test.example\r\nTo: b@test.example\r\nSubject: {kind} {i}\r\n"
                        f"Message-ID: <m{i}@helpers.test>\r\n{reply}\r\nosprey {body}\r\n"
                    )
                    s.sendmail("a@test.example", ["b@test.example"], msg)
            time.sleep(0.3)  # SMTP is quiet when the indexer looks: a backlog, with helpers
        finally:
            os.kill(indexer[0], signal.SIGCONT)
        assert _wait_searchable(http, "osprey", 300) == 300
        assert sum(_cpu_ticks(p) for p in helpers) > before, "the helpers indexed nothing"
        q = urllib.parse.urlencode({"query": "tag:even", "limit": 1})
        assert _api(http, f"/api/v1/search?{q}")["messages_count"] == 150
        deadline = time.monotonic() + 30
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            while time.monotonic() < deadline:  # the last conversations may follow the text
                rows = conn.execute("SELECT message_id, thread_id, indexed, snippet FROM message").fetchall()
                threads = {mid: tid for mid, tid, _, _ in rows}
                if all(r[2] for r in rows) and len(set(threads.values())) == 150:
                    break
                time.sleep(0.1)
            assert len(rows) == 300 and all(
                indexed and snippet.startswith("osprey") for _, _, indexed, snippet in rows
            )
            assert len(set(threads.values())) == 150
            assert all(
                threads[f"m{i}@helpers.test"] == threads[f"m{i + 1}@helpers.test"] for i in range(0, 300, 2)
            )
            found = conn.execute("SELECT count(*) FROM fts WHERE fts MATCH 'osprey'").fetchone()[0]
            assert found == 300  # one full-text row each: none written twice
