"""What the benchmarks that measure a list of rows share: the suite ``benchmarks/run.py``
runs (title, rows, their markdown table) and the command line (``N`` rounds or calls, the
table or, with ``--json``, the raw rows)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

Rows = list[dict[str, Any]]


def suite(title: str, rows: Rows, markdown: Callable[[Rows], str]) -> dict[str, Any]:
    """A suite's result as ``benchmarks/run.py`` keeps it."""
    return {"title": title, "rows": rows, "markdown": markdown(rows)}


def main(measure: Callable[[int], Rows], markdown: Callable[[Rows], str], flag: str, default: int) -> None:
    """Runs ``measure(N)`` (``flag`` sets N, ``default`` when not given) and prints its table,
    or with ``--json`` its rows."""
    ap = argparse.ArgumentParser()
    ap.add_argument(flag, type=int, default=default, dest="n")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rows = measure(a.n)
    print(json.dumps(rows, indent=1) if a.json else markdown(rows))
