"""The queries of search_bench.py with the store on PostgreSQL (issue 15: every query's p50
at 100,000 messages through the HTTP API, within 2x of SQLite's 30 ms target).

  make bench ARGS="search-pg"         (or: benchmarks/run.py search-pg [--quick])
  .venv/bin/python benchmarks/search_bench.py --postgres --burst 0 [--n 100000]

The same messages, queries and HTTP requests as the SQLite suite (``search``), in a fresh
database on the PostgreSQL server the tests use (127.0.0.1:5432, dropped afterwards); no
burst (that part measures the SQLite indexer).
"""

from __future__ import annotations

from typing import Any

from search_bench import markdown, run_queries


def suite(quick: bool) -> dict[str, Any]:
    """Entry point for benchmarks/run.py."""
    q = run_queries(10_000 if quick else 100_000, postgres=True)
    rows = [{**r, "ok_2x": r["p50_ms"] <= 2 * r["target_ms"]} for r in q["rows"]]
    text = markdown(q, None) + (
        f"\n\nOn PostgreSQL the issue's target is within 2x of SQLite's: "
        f"{sum(r['ok_2x'] for r in rows)} of {len(rows)} queries have a p50 within 2x of their target "
        f"(the ok column is SQLite's own target)."
    )
    return {
        "title": f"Search and list over {q['n']:,} messages on PostgreSQL",
        "rows": rows,
        "markdown": text,
    }
