"""Search and listing at scale: p50 of full-text queries and list pages over N stored messages.

  .venv/bin/python benchmarks/search_bench.py [--n 100000]     (or: make bench ARGS="search")

Messages go through the real store (``SQLiteStore.deliver``, group commit) and its
indexer; the figures are the store calls the API makes (compile the query, count the
matches, load one page), so HTTP adds only its own ~1 ms. Also measured: how long after
the last message of the burst every message is searchable (indexing lag).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from postroom.config import Settings
from postroom.events import Bus
from postroom.store.base import Envelope
from postroom.store.sqlite import SQLiteStore

WORDS = ["account", "alpha", "billing", "budget", "calendar", "customer", "delivery", "design", "draft", "invoice", "launch", "meeting", "network", "order", "password", "payment", "project", "quarterly", "receipt", "release", "report", "review", "schedule", "security", "server", "shipment", "signup", "support", "ticket", "travel", "update", "upgrade", "verify", "welcome"]
RARE = "zanzibar"  # in one message per thousand
QUERIES = [
    "invoice",
    "quarterly report",
    f"{RARE}",
    "from:user7@",
    "subject:welcome is:unread",
    "invoice -payment",
]
REPEAT = 25


def _message(rng: random.Random, i: int) -> bytes:
    subject = " ".join(rng.choice(WORDS) for _ in range(4))
    body = " ".join(rng.choice(WORDS) for _ in range(60))
    if i % 1000 == 7:
        body += f" {RARE}"
    return (
        f"From: User {i % 50} <user{i % 50}@example.com>\r\nTo: team{i % 20}@example.org\r\n"
        f"Subject: {subject}\r\nMessage-ID: <m{i}@bench>\r\n\r\n{body}\r\n"
    ).encode()


def _p50(fn: Any) -> float:
    times = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


async def _fill(store: SQLiteStore, n: int) -> tuple[float, float]:
    rng = random.Random(42)
    env = Envelope("bench@example.com", ("inbox@example.org",))
    t0 = time.perf_counter()
    batch = 500
    for start in range(0, n, batch):
        await asyncio.gather(
            *(store.deliver(env, _message(rng, i)) for i in range(start, min(n, start + batch)))
        )
    ingest_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    assert await asyncio.to_thread(store.wait_indexed, 3600)
    return ingest_s, time.perf_counter() - t1


def run(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(db=str(Path(tmp) / "bench.db"), max=0)
        bus = Bus()
        store = SQLiteStore(settings.db, settings, bus)
        loop = asyncio.new_event_loop()
        bus.bind(loop)
        store.start()
        try:
            ingest_s, lag_s = loop.run_until_complete(_fill(store, n))
            rows = []
            for q in QUERIES:
                page = store.list_messages(query=q, limit=50)
                rows.append(
                    {
                        "what": f"search `{q}`",
                        "matches": page.messages_count,
                        "p50_ms": _p50(lambda q=q: store.list_messages(query=q, limit=50)),
                    }
                )
            rows.append(
                {
                    "what": "list page 1 (50)",
                    "matches": n,
                    "p50_ms": _p50(lambda: store.list_messages(limit=50)),
                }
            )
            rows.append(
                {
                    "what": "list page at start=5000",
                    "matches": n,
                    "p50_ms": _p50(lambda: store.list_messages(start=5000, limit=50)),
                }
            )
            rows.append(
                {
                    "what": "mailbox page (mailbox=)",
                    "matches": n,
                    "p50_ms": _p50(lambda: store.list_messages(mailbox="inbox@example.org", limit=50)),
                }
            )
        finally:
            store.close()
            loop.close()
    return {"n": n, "ingest_s": ingest_s, "index_lag_s": lag_s, "rows": rows}


def suite(quick: bool) -> dict[str, Any]:
    """Entry point for benchmarks/run.py."""
    result = run(10_000 if quick else 100_000)
    lines = [
        f"{result['n']:,} messages stored in {result['ingest_s']:.1f} s; all searchable "
        f"{result['index_lag_s']:.1f} s after the last one was acknowledged.",
        "",
        "| query | matches | p50 (ms) |",
        "| --- | ---: | ---: |",
        *(f"| {r['what']} | {r['matches']:,} | {r['p50_ms']:.1f} |" for r in result["rows"]),
    ]
    return {
        "title": f"Search and list over {result['n']:,} messages",
        "rows": result["rows"],
        "markdown": "\n".join(lines),
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="messages to store (default 100000)")
    args = ap.parse_args()
    out = run(args.n)
    print(f"{out['n']} messages: ingest {out['ingest_s']:.1f} s, index lag {out['index_lag_s']:.1f} s")
    for r in out["rows"]:
        print(f"  {r['what']:<36} matches {r['matches']:>7}  p50 {r['p50_ms']:7.2f} ms")
