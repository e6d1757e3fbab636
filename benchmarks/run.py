"""Run postroom's benchmarks side by side with its peers and keep the results.

  make bench                      # every suite
  make bench ARGS="ingest"        # one suite (ingest, search, imap, threads, ui, startup)
  make bench ARGS="ingest --quick"

Each suite is a module ``benchmarks/<name>_bench.py`` (or ``ingest.py``) exposing
``suite(quick: bool) -> dict`` with keys ``title``, ``rows`` (list of dicts) and
``markdown`` (a table). Results are written to ``benchmarks/results/<suite>.json`` and
``benchmarks/results/<suite>.md``, and the table in ``docs/performance.md`` between the
``<!-- bench:<suite> -->`` markers is replaced.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DOC = ROOT / "docs" / "performance.md"
sys.path.insert(0, str(HERE))

SUITES = {
    "ingest": "ingest_suite",
    "startup": "startup_bench",
    "search": "search_bench",
    "imap": "imap_bench",
    "threads": "thread_bench",
    "ui": "ui_bench",
}


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return (
        f"{cores} cores, {cpu}, Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def update_doc(name: str, markdown: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Performance\n"
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    if start in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + f"\n\n{block}\n"
    DOC.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suites", nargs="*", help=f"which suites (default: all of {', '.join(SUITES)})")
    ap.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    a = ap.parse_args(argv)
    names = a.suites or list(SUITES)
    RESULTS.mkdir(exist_ok=True)
    for name in names:
        if name not in SUITES:
            print(f"bench: unknown suite {name!r} (have {', '.join(SUITES)})", file=sys.stderr)
            return 2
        try:
            mod = importlib.import_module(SUITES[name])
        except ModuleNotFoundError:
            print(f"bench: suite {name} not present yet, skipped", file=sys.stderr)
            continue
        print(f"== {name}", flush=True)
        result: dict[str, Any] = mod.suite(a.quick)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        header = f"_{result['title']} — measured {stamp} on {machine()}._\n\n"
        md = header + result["markdown"]
        (RESULTS / f"{name}.json").write_text(
            json.dumps({"suite": name, "when": stamp, "machine": machine(), "rows": result["rows"]}, indent=1)
            + "\n"
        )
        (RESULTS / f"{name}.md").write_text(md + "\n")
        update_doc(name, md)
        print(md, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
