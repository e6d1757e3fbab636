"""Run postroom's benchmarks side by side with its peers and keep the results.

  make bench                      # every suite
  make bench ARGS="ingest"        # one suite (ingest, search, search-pg, imap, imap-scale, imap-stress, threads, ui, startup, html, fixture, fixture-stress, import)
  make bench ARGS="ingest --quick"

Each suite is a module ``benchmarks/<name>_bench.py`` (or ``ingest.py``) exposing
``suite(quick: bool) -> dict`` with keys ``title``, ``rows`` (list of dicts) and
``markdown`` (a table). Results are written to ``benchmarks/results/<suite>.json`` and
``benchmarks/results/<suite>.md`` (the latest run anywhere) and to
``benchmarks/results/by-machine/<machine>/<suite>.json|md`` (the latest run on each kind of
machine: the machines these runs land on differ a lot in speed). The block of
``docs/performance.md`` between the ``<!-- bench:<suite> -->`` markers is rewritten with the
latest table of every machine, newest first, so figures from different machines sit side by
side and each table compares peers measured on one machine in one run.
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
BY_MACHINE = RESULTS / "by-machine"
sys.path.insert(0, str(HERE))

SUITES = {
    "ingest": "ingest_suite",
    "startup": "startup_bench",
    "search": "search_bench",
    "search-pg": "search_pg_bench",
    "imap": "imap_bench",
    "imap-scale": "imap_scale_bench",
    "imap-stress": "imap_stress_bench",
    "threads": "thread_bench",
    "ui": "ui_bench",
    "html": "html_bench",
    "fixture": "fixture_bench",
    "fixture-stress": "fixture_stress",
    "checks": "checks_bench",
    "outbound": "outbound_bench",
    "import": "import_bench",
    "mailpit-api": "mailpit_api_bench",
}


def cpu() -> str:
    """The CPU's name, with its family and model numbers where the name alone is vague
    ("Intel(R) Xeon(R) Processor" is what several different virtual machines report)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu family", "model") and key not in fields:
                fields[key] = value.strip()
            if not line.strip() and fields:
                break
    except OSError:
        pass
    name = fields.get("model name", platform.processor() or "?")
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def machine() -> str:
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return f"{cores} cores, {cpu()}, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def machine_key(description: str) -> str:
    """A folder name for a machine description: its core count and CPU, not its kernel."""
    head = description.split(", Python")[0]  # "2 cores, AMD EPYC (family 25, model 1)"
    slug = re.sub(r"\((r|tm)\)", "", head, flags=re.I)
    slug = re.sub(r"[^a-z0-9]+", "-", slug.lower()).strip("-")
    return slug or "unknown"


def save(name: str, record: dict[str, Any], md: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(record, indent=1) + "\n"
    (RESULTS / f"{name}.json").write_text(text)
    (RESULTS / f"{name}.md").write_text(md + "\n")
    folder = BY_MACHINE / machine_key(record["machine"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(text)
    (folder / f"{name}.md").write_text(md + "\n")


def tables(name: str) -> str:
    """The latest table of suite ``name`` from every machine, newest first."""
    found: list[tuple[str, str]] = []
    for folder in sorted(BY_MACHINE.glob("*")) if BY_MACHINE.exists() else []:
        js, md = folder / f"{name}.json", folder / f"{name}.md"
        if js.exists() and md.exists():
            found.append((json.loads(js.read_text())["when"], md.read_text().strip()))
    found.sort(reverse=True)
    return "\n\n".join(md for _, md in found)


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
        save(name, {"suite": name, "when": stamp, "machine": machine(), "rows": result["rows"]}, md)
        update_doc(name, tables(name))
        print(md, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
