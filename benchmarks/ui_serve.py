"""A filled postroom for ``benchmarks/ui_bench.py``, served from any source tree.

``ui_bench.py`` runs this file as a child process, once per build it measures (this tree,
and with ``--against REF`` a detached worktree of REF), so that each build serves its own
UI and its own API from its own code, on a store filled the same way:

    python benchmarks/ui_serve.py TREE DB N

imports postroom (and ``tests/helpers.py``'s ``running_server``) from TREE, fills the SQLite
store DB to N messages in 1,000 mailboxes through the store's own ``deliver`` (the path SMTP
uses, minus the socket), waits for the background indexer, prints one JSON line (``url``,
``total``, ``fill_s``, ``index_s``, ``module``: the postroom package it imported, so the
parent can check which build it got) and serves until its stdin is closed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from fixtures import VOCAB  # this file's directory: the same words for every build

MAILBOXES = 1000
BATCH = 500  # deliveries in flight at once (they share group commits)
WORDS = VOCAB[:12]
INDEX_TIMEOUT_S = 900


def raw_message(i: int) -> bytes:
    """Message ``i`` of the benchmark store: to user{i % 1000}, a subject of two words."""
    w1, w2 = WORDS[i % len(WORDS)], WORDS[(i * 7) % len(WORDS)]
    to = f"user{i % MAILBOXES}@example.org"
    return (
        f"From: Shop <noreply@shop.example.com>\r\nTo: {to}\r\nSubject: {w1} {w2} #{i}\r\n"
        f"Message-ID: <bench-{i}@example.com>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nHello, this is message {i} about your {w1}.\r\n"
    ).encode()


def _fill(srv: Any, first: int, n: int) -> float:
    from postroom.store.base import Envelope

    async def batch(lo: int, hi: int) -> None:
        store = srv.app.store
        await asyncio.gather(
            *(
                store.deliver(
                    Envelope("noreply@shop.example.com", (f"user{i % MAILBOXES}@example.org",)),
                    raw_message(i),
                )
                for i in range(lo, hi)
            )
        )

    t0 = time.perf_counter()
    for lo in range(first, n, BATCH):
        srv.call(batch(lo, min(n, lo + BATCH)), timeout=300)
    return time.perf_counter() - t0


def _total(url: str) -> int:
    with urllib.request.urlopen(url + "/api/v1/messages?limit=1", timeout=60) as resp:
        return int(json.loads(resp.read())["total"])


def main(tree: Path, db: str, n: int) -> None:
    sys.path[:0] = [str(tree / "src"), str(tree)]  # before anything imports postroom
    from tests.helpers import running_server

    import postroom

    with running_server(db=db, max=0, smtp="off", pop3="off", imap="off") as srv:
        url = srv.http_url
        have = _total(url)
        fill_s = _fill(srv, have, n) if have < n else 0.0  # a reused store: top it up
        t0 = time.perf_counter()
        wait = getattr(srv.app.store, "wait_indexed", None)
        if wait is not None:
            wait(INDEX_TIMEOUT_S)
        info = {
            "url": url,
            "total": _total(url),
            "fill_s": round(fill_s, 1),
            "index_s": round(time.perf_counter() - t0, 1),
            "module": postroom.__file__,
        }
        print(json.dumps(info), flush=True)
        sys.stdin.read()  # serve until the parent closes our stdin (or dies)


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), sys.argv[2], int(sys.argv[3]))
