"""UI suite for ``benchmarks/run.py``: how fast the web UI shows a big store in Chromium.

A child process (``ui_serve.py``) fills a fresh SQLite store with N messages (100,000;
10,000 with ``--quick``) in 1,000 mailboxes and serves it; headless Debian Chromium then
loads the UI, each time in a fresh browser context (a cold cache), and measures from
navigation start when the first message row is on screen (a MutationObserver notes the
time, so test-harness latency is not counted): the first page of All, of one mailbox, the
last page (deep offset). Then a search, and the raw API time for one 50-row page. Target
(issue 4): first page under 1 s at 100,000 messages. Issue 21's interactions, timed in the
page from the click to what it shows: opening a message, switching mailbox (1 of 1,000),
mark all read on the whole store (once: it changes the store), and deleting 1,000 selected
messages (five pages of 200: select all, Delete).

A page load on a 2-core machine varies by a factor of two, so each figure is the median of
``--runs`` loads (default 15; 30 API calls) and the table gives the quartiles beside it.

``--against REF`` compares with another commit in the same run: REF is checked out in a
detached worktree, served by its own child process from its own equally filled store, and
every measure alternates between the two builds load by load (ABBA order), so that whatever
else the machine does falls on both alike. Its table gives both medians and their ratio.

Run: ``make bench ARGS=ui`` (100,000 messages; the figures go to docs/performance.md) or
``.venv/bin/python benchmarks/ui_bench.py [--quick | --messages N] [--runs K] [--against
REF]`` (printed only; ``--messages 2000 --runs 3`` is a sanity run of every step);
``UI_BENCH_DB=/tmp/ui.db`` keeps the filled store for the next run (REF's next to it).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
MAILBOXES = 1000  # as ui_serve.py fills them
RUNS = 15  # page loads per figure: repeated runs of 5 differed by up to 30 %
API_RUNS = 30
DELETE_PAGES = 5
TARGET_MS = 1000.0
VIEWPORT = {"width": 1400, "height": 860}

# Noted by the page itself: ms since navigation start when the first row is in the DOM.
FIRST_ROW_PROBE = """
new MutationObserver((_, obs) => {
  if (document.querySelector('#list li.row')) {
    window.__firstRow = performance.now();
    obs.disconnect();
  }
}).observe(document, {subtree: true, childList: true});
"""


@dataclass
class Build:
    """One build under test: its name, its child server and the store it serves."""

    name: str
    url: str
    total: int
    fill_s: float
    index_s: float


@contextmanager
def _serve(tree: Path, db: str, n: int, name: str) -> Iterator[Build]:
    """``ui_serve.py`` serving ``tree``'s postroom on ``db`` filled to ``n`` messages."""
    # The server's own child processes (the indexer's helper) must import the same tree.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree / "src"), str(tree)])}
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "ui_serve.py"), str(tree), db, str(n)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"bench ui: the server of {name} did not start (exit {proc.wait()})")
        info = json.loads(line)
        if not Path(info["module"]).resolve().is_relative_to(tree):
            raise SystemExit(f"bench ui: {name} imported postroom from {info['module']}, not {tree}")
        yield Build(name, info["url"], info["total"], info["fill_s"], info["index_s"])
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def _checkout(ref: str, tmp: str) -> Iterator[tuple[str, Path]]:
    """A detached worktree of ``ref`` (removed afterwards) and its short commit name."""
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", f"{ref}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    path = Path(tmp) / f"ref-{sha}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(path), sha], check=True)
    try:
        yield sha, path.resolve()
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False)


def _alternate(builds: list[Build], runs: int, measure: Callable[[Build], float]) -> dict[str, list[float]]:
    """``runs`` samples of ``measure`` per build, alternating builds in ABBA order."""
    out: dict[str, list[float]] = {b.name: [] for b in builds}
    for r in range(runs):
        for b in builds if r % 2 == 0 else builds[::-1]:
            out[b.name].append(measure(b))
    return out


def _api_ms(url: str) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as resp:
        json.loads(resp.read())
    return (time.perf_counter() - t0) * 1000


def _first_row_ms(browser: Any, url: str) -> float:
    ctx = browser.new_context(viewport=VIEWPORT)
    try:
        page = ctx.new_page()
        page.add_init_script(FIRST_ROW_PROBE)
        page.goto(url)
        page.wait_for_function("() => window.__firstRow !== undefined", timeout=60_000)
        return float(page.evaluate("window.__firstRow"))
    finally:
        ctx.close()


@contextmanager
def _loaded(browser: Any, url: str) -> Iterator[Any]:
    ctx = browser.new_context(viewport=VIEWPORT)
    try:
        page = ctx.new_page()
        page.goto(url)
        page.wait_for_selector("body[data-ready] #list li.row", timeout=60_000)
        yield page
    finally:
        ctx.close()


def _timed(page: Any, act: Callable[[], Any], done_js: str) -> float:
    """ms from just before ``act()`` until ``done_js`` holds in the page."""
    t0 = float(page.evaluate("performance.now()"))
    act()
    page.wait_for_function(done_js, timeout=120_000)
    return float(page.evaluate("performance.now()")) - t0


def _search_ms(browser: Any, url: str, query: str) -> float:
    """Typing a search into a loaded page until the result rows replace the list."""
    with _loaded(browser, url) as page:
        page.fill("#search", query)
        return _timed(
            page,
            lambda: page.press("#search", "Enter"),
            "() => document.querySelector('#list-title').textContent === 'Search results'"
            " && document.querySelector('#list li.row')",
        )


def _open_ms(browser: Any, url: str) -> float:
    with _loaded(browser, url) as page:
        row = page.locator("#list li.row").nth(3)
        subject = row.locator(".row-subject").inner_text()
        return _timed(
            page,
            row.click,
            f"() => document.getElementById('msg-subject').textContent === {json.dumps(subject)}",
        )


def _switch_ms(browser: Any, url: str) -> float:
    with _loaded(browser, url) as page:
        box = page.locator("#mailboxes a[data-mailbox='user3@example.org']")
        return _timed(
            page,
            box.click,
            "() => document.getElementById('list-title').textContent === 'user3@example.org'"
            " && document.querySelector('#list li.row') && !document.body.classList.contains('busy')",
        )


def _mark_all_read_ms(browser: Any, url: str) -> float:
    with _loaded(browser, url) as page:
        return _timed(
            page,
            lambda: page.click("#mark-all-read-btn"),
            "() => !document.querySelector('#list li.row.unread') && document.title === 'postroom'",
        )


def _deletes(browser: Any, builds: list[Build]) -> dict[str, list[float]]:
    """Each build deletes DELETE_PAGES pages of 200 selected rows, the builds taking turns."""
    out: dict[str, list[float]] = {b.name: [] for b in builds}
    with ExitStack() as stack:
        pages = {b.name: stack.enter_context(_loaded(browser, b.url + "/")) for b in builds}
        for page in pages.values():
            page.select_option("#page-size", "200")
            page.wait_for_function("() => document.querySelectorAll('#list li.row').length === 200")
        for r in range(DELETE_PAGES):
            for b in builds if r % 2 == 0 else builds[::-1]:
                page = pages[b.name]
                first = page.locator("#list li.row").first.get_attribute("data-id")
                page.locator("#select-all").check()
                out[b.name].append(
                    _timed(
                        page,
                        lambda page=page: page.click("#bulk-delete"),  # type: ignore[misc]
                        "() => document.querySelectorAll('#list li.row').length === 200"
                        f" && !document.getElementById('msg-{first}')",
                    )
                )
    return out


def _measure(
    browser: Any, builds: list[Build], runs: int
) -> list[tuple[str, dict[str, list[float]], float | None]]:
    """Every measure of the suite: (label, samples per build, target)."""
    total = builds[0].total
    deep = max(0, total - 50)
    box = "mailbox=user3%40example.org"
    loads: list[tuple[str, Callable[[Build], float], float | None]] = [
        ("first page, All (first row on screen)", lambda b: _first_row_ms(browser, b.url + "/"), TARGET_MS),
        (
            f"first page, one mailbox ({total // MAILBOXES:,} msgs)",
            lambda b: _first_row_ms(browser, f"{b.url}/#{box}"),
            TARGET_MS,
        ),
        ("last page (deep offset)", lambda b: _first_row_ms(browser, f"{b.url}/#start={deep}"), None),
        (
            "search typed, results on screen",
            lambda b: _search_ms(browser, b.url + "/", "subject:invoice"),
            None,
        ),
        ("open a message (click to subject shown)", lambda b: _open_ms(browser, b.url + "/"), None),
        (
            f"switch mailbox, 1 of {MAILBOXES:,} (click to its rows)",
            lambda b: _switch_ms(browser, b.url + "/"),
            None,
        ),
    ]
    out = [(label, _alternate(builds, runs, fn), target) for label, fn, target in loads]
    apis = [
        ("API: first 50-row page", "/api/v1/messages?start=0&limit=50"),
        ("API: first page of one mailbox", "/api/v1/messages?start=0&limit=50&mailbox=user3%40example.org"),
        ("API: last 50-row page", f"/api/v1/messages?start={deep}&limit=50"),
        ("API: mailbox list with counts", "/api/v2/mailboxes"),
    ]
    api_rows = [
        (label, _alternate(builds, API_RUNS, lambda b, path=path: _api_ms(b.url + path)), None)  # type: ignore[misc]
        for label, path in apis
    ]
    # Once per build, last: they change the store.
    marks = {b.name: [_mark_all_read_ms(browser, b.url + "/")] for b in builds}
    deletes = _deletes(browser, builds)
    out.append((f"mark all read, {total:,} messages (click to no unread row; once)", marks, None))
    out.append((f"delete 200 selected (median of {DELETE_PAGES} pages)", deletes, None))
    out.append(
        (
            f"delete {200 * DELETE_PAGES:,} selected ({DELETE_PAGES} pages of 200, total)",
            {k: [sum(v)] for k, v in deletes.items()},
            None,
        )
    )
    return out + api_rows


def _stats(xs: list[float]) -> tuple[float, float, float]:
    """Median and quartiles (the sample itself when there are fewer than two)."""
    if len(xs) < 2:
        return xs[0], xs[0], xs[0]
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q2, q1, q3


def _table(
    builds: list[Build], results: list[tuple[str, dict[str, list[float]], float | None]]
) -> tuple[list[dict[str, Any]], list[str]]:
    this = builds[0].name
    ref = builds[1].name if len(builds) > 1 else None
    rows: list[dict[str, Any]] = []
    if ref is None:
        lines = ["| measure | ms (median) | p25–p75 | n | target |", "| --- | ---: | ---: | ---: | ---: |"]
    else:
        lines = [
            f"| measure | {ref} (median) | {ref} p25–p75 | this (median) | this p25–p75 | n | this / {ref} |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
    for label, samples, target in results:
        med, p25, p75 = _stats(samples[this])
        row: dict[str, Any] = {
            "measure": label,
            "ms": round(med, 1),
            "p25_ms": round(p25, 1),
            "p75_ms": round(p75, 1),
            "n": len(samples[this]),
            "target_ms": target,
        }
        if ref is None:
            tgt = f"< {target:.0f}" if target else ""
            lines.append(f"| {label} | {med:.0f} | {p25:.0f}–{p75:.0f} | {row['n']} | {tgt} |")
        else:
            rmed, r25, r75 = _stats(samples[ref])
            row.update(ref=ref, ref_ms=round(rmed, 1), ref_p25_ms=round(r25, 1), ref_p75_ms=round(r75, 1))
            row["ratio"] = round(med / rmed, 2) if rmed else None
            lines.append(
                f"| {label} | {rmed:.0f} | {r25:.0f}–{r75:.0f} | {med:.0f} | {p25:.0f}–{p75:.0f} "
                f"| {row['n']} | {row['ratio']:.2f} |"
            )
        rows.append(row)
    return rows, lines


def suite(
    quick: bool, messages: int | None = None, against: str | None = None, runs: int = RUNS
) -> dict[str, Any]:
    """The suite at 100,000 messages (10,000 when ``quick``; ``messages`` when given), this
    tree alone or, with ``against``, alternating with that commit's build."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if not chromium:
        raise SystemExit("bench ui: Debian's chromium is needed (apt-get install chromium)")
    n = messages or (10_000 if quick else 100_000)
    if n < 1200:  # 1,000 are deleted at the end, and each page of 200 must fill again
        raise SystemExit("bench ui: --messages must be at least 1,200")
    keep = os.environ.get("UI_BENCH_DB", "")  # reuse filled stores between runs
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        db = keep or str(Path(tmp) / "ui-bench.db")
        # The builds are filled one after the other (each has both cores), then all stay up.
        builds = [stack.enter_context(_serve(ROOT, db, n, "this"))]
        if against:
            sha, tree = stack.enter_context(_checkout(against, tmp))
            builds.append(stack.enter_context(_serve(tree, f"{db}.{sha}", n, sha)))
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            for b in builds:  # not counted: Chromium's and each server's first page
                _first_row_ms(browser, b.url + "/")
            results = _measure(browser, builds, runs)
            browser.close()
    total = builds[0].total
    rows, table = _table(builds, results)
    fills = "; ".join(
        f"{b.name}: filled in {b.fill_s:.0f} s, indexed {b.index_s:.0f} s later" for b in builds
    )
    head = (
        f"Web UI in headless Chromium with {total:,} stored messages in {MAILBOXES:,} mailboxes ({fills}); "
        f"median and quartiles of {runs} page loads in a fresh browser context each (API: {API_RUNS} calls), "
        "page loads measured from navigation start to the first row in the DOM."
    )
    if against:
        head += (
            f" Against commit {builds[1].name} in the same run: its own build and store, "
            "the two builds taking turns load by load."
        )
    title = f"Web UI at {total:,} messages" + (f", against {builds[1].name}" if against else "")
    return {"title": title, "rows": rows, "markdown": "\n".join([head, "", *table])}


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10,000 messages")
    ap.add_argument("--messages", type=int, default=None, metavar="N", help="N messages (at least 1,200)")
    ap.add_argument(
        "--runs", type=int, default=RUNS, metavar="K", help=f"page loads per figure (default {RUNS})"
    )
    ap.add_argument("--against", metavar="REF", help="also measure commit REF, alternating with this tree")
    args = ap.parse_args()
    result = suite(args.quick, args.messages, args.against, args.runs)
    print(result["markdown"])
