"""The indexer process (``python -m postroom.store.index_worker``): its start-up, its pacing
against bursts of SMTP, and its pipe protocol with the store. What it indexes, and how, is
:mod:`.index_worker`.

The process runs at the lowest CPU priority (:data:`NICENESS`), and during a burst of SMTP
(``index_worker.BURST_SPAN`` messages within ``BURST_WINDOW`` seconds) it takes one batch per
:data:`MAX_DEFER` seconds at most, the first that long into the burst: nice 19 alone still
took 10-20% of the CPU from SMTP on a 2-core VM. Its helper processes (one fewer than the
cores, at most :data:`MAX_HELPERS`) are forked at start, before any database connection.

Process protocol: the store wakes the worker with a byte on its stdin after each commit
(stdin closing means "stop"); after each transaction the worker prints one line with the
public IDs it indexed, which the store announces as ``update`` events. Tagging rules come
as JSON in the ``POSTROOM_TAG_RULES`` environment variable.
Arguments: ``DB [--threads-subject replies|all|off] [--threads-window DAYS] [--no-threads]``.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import select
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import IO, Any

from ..lifeline import die_with_parent
from ..threads import ThreadingOptions
from . import index_worker
from .index_worker import (
    BATCH,
    Indexer,
    _index_many,
    connect_readonly,
    load_rules,
    start_parse_budget,
)
from .index_write import WRITE_CHUNK, defer_fts_merges, merge_fts, store_imap_rows, store_rows
from .thread_index import DAY, SUBJECT_POLICIES

__all__ = ["main"]

MAX_HELPERS = 3  # helper processes at most (one fewer than the cores, up to this)
MAX_DEFER = 2.0  # during a burst, seconds between batches (and before the first) at least
DEFER_STEP = 0.05  # ... looking again this often
IDLE_POLL = 2.0  # seconds between checks when nobody wakes us
NICENESS = 19  # the lowest priority: a burst of SMTP comes first (docs/performance.md)
QUIET_CHUNK = BATCH  # rows per transaction after a burst (index_write.WRITE_CHUNK during one)


def _parse_args(args: list[str]) -> tuple[str, ThreadingOptions | None, bool]:
    """(database path, threading options, whether to derive the IMAP server's data)."""
    ap = argparse.ArgumentParser(prog="python -m postroom.store.index_worker")
    ap.add_argument("db")
    ap.add_argument("--no-imap-data", action="store_true", help="the server has no IMAP listener")
    ap.add_argument("--threads-subject", choices=sorted(SUBJECT_POLICIES), default="replies")
    ap.add_argument("--threads-window", type=float, default=30.0, help="days; 0: no limit")
    ap.add_argument("--no-threads", action="store_true")
    a = ap.parse_args(args)
    imap = not a.no_imap_data
    if a.no_threads:
        return a.db, None, imap
    window = a.threads_window * DAY if a.threads_window > 0 else None
    return (
        a.db,
        ThreadingOptions(subject_policy=SUBJECT_POLICIES[a.threads_subject], subject_window=window),
        imap,
    )


def main(argv: list[str] | None = None) -> int:
    """The indexer process (``python -m postroom.store.index_worker DB [options]``)."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s indexer: %(message)s")
    extract = index_worker._extractor()
    if extract is None or not args:
        return 1
    path, options, imap = _parse_args(args)
    # end with postroom even when it is killed with -9 and this process is busy (issue 14)
    die_with_parent()
    start_parse_budget()
    # Parsing can always wait; a burst of SMTP must not: yield the CPU to the server.
    try:
        os.nice(NICENESS)
    except OSError:
        pass
    # Ctrl-C in a terminal reaches the whole process group: the store stops this process (and
    # its helpers, which inherit this) by closing its stdin, so SIGINT is ignored.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Helpers are forked now, before any database connection exists (a connection must not
    # cross a fork), and share this process's memory pages until they write to them.
    # (fork: Linux only; elsewhere the indexer parses alone)
    helpers = min((os.cpu_count() or 1) - 1, MAX_HELPERS) if sys.platform.startswith("linux") else 0
    pool = None
    if helpers > 0:
        pool = ProcessPoolExecutor(
            helpers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=die_with_parent,  # they read no pipe that would tell them this process has gone
            initargs=(os.getpid(),),
        )
        for _ in range(helpers):  # start them now, not in the middle of the first burst
            pool.submit(_index_many, path, [])
    try:
        return _open_and_serve(path, extract, options, pool, helpers, imap)
    finally:
        if pool is not None:
            # wait=True: the pool's manager thread must be gone before the interpreter exits,
            # or its exit hook can race the thread closing its wake-up pipe and print an
            # OSError traceback (CPython 3.11). A helper finishes the part it is parsing.
            pool.shutdown(wait=True, cancel_futures=True)


def _open_and_serve(
    path: str,
    extract: Callable[[bytes], Any],
    options: ThreadingOptions | None,
    pool: Executor | None,
    helpers: int,
    imap: bool = True,
) -> int:
    conn = connect_readonly(path)
    wconn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    wconn.execute("PRAGMA busy_timeout=0")  # see begin_immediate
    wconn.execute("PRAGMA synchronous=NORMAL")  # the index can always be rebuilt from the messages
    from .header_scan import register_functions

    register_functions(wconn)  # tagging rules may use header: searches
    rules = load_rules(os.environ.get("POSTROOM_TAG_RULES"))
    stdin = sys.stdin.fileno()
    out = sys.stdout.buffer
    os.set_blocking(stdin, False)
    indexer = Indexer(conn, extract, options, pool, helpers, path)
    indexer.derive_imap = imap
    return _serve(conn, wconn, out, stdin, indexer, rules)


def _serve(
    conn: sqlite3.Connection,
    wconn: sqlite3.Connection,
    out: IO[bytes],
    stdin: int,
    indexer: Indexer,
    rules: Any,
) -> int:
    defer_fts_merges(wconn)
    if not store_rows(wconn, out, indexer.start(), rules):
        return 0
    merges_due = True  # FTS5 segments may wait to be merged (merge_fts)
    last = 0.0  # when the last batch started
    burst = 0.0  # when the current burst of SMTP was first seen (0: none)
    while True:
        while True:
            # During a burst, SMTP gets the CPU: the first batch MAX_DEFER seconds into it, then
            # one per MAX_DEFER seconds, so that a long flood is indexed a little as it goes;
            # the rest after the burst, with the helpers.
            if indexer.mail_arriving():
                now = time.monotonic()
                burst = burst or now
                if now - max(burst, last) < MAX_DEFER:
                    if not _pause(stdin, DEFER_STEP):
                        conn.close()
                        return 0
                    continue
            else:
                burst = 0.0
            last = time.monotonic()
            rows = indexer.next_batch()
            if not rows:
                # caught up: the IMAP data of what is indexed, a batch at a time (new mail first)
                if imap := indexer.imap_batch(lambda: _woken(stdin)):
                    store_imap_rows(wconn, imap)
                    continue
                burst = 0.0  # a burst seen from now on is a new one
                break
            if not store_rows(wconn, out, rows, rules, WRITE_CHUNK if burst else QUIET_CHUNK):
                return 0
            if indexer.announce:  # what the helpers wrote (after its conversations, above)
                pids, indexer.announce = indexer.announce, []
                try:
                    out.write((" ".join(pids) + "\n").encode("ascii"))
                    out.flush()
                except BrokenPipeError:
                    return 0
            merges_due = True
        if not store_rows(wconn, out, indexer.idle(), rules):
            return 0
        if merges_due:
            merges_due = merge_fts(wconn, stdin)
        if not _wait_for_wakeup(stdin, IDLE_POLL):
            conn.close()
            return 0
        time.sleep(0.002)  # let a burst gather into one batch


def _woken(stdin: int) -> bool:
    """True when the store has written a wake-up byte (a commit, maybe new mail) not read yet."""
    return bool(select.select([stdin], [], [], 0)[0])


def _pause(stdin: int, seconds: float) -> bool:
    """Sleep ``seconds`` whatever the store sends meanwhile (a wake-up byte after each of its
    commits); False once it has gone."""
    time.sleep(seconds)
    try:
        while chunk := os.read(stdin, 65536):
            if len(chunk) < 65536:
                return True
        return False  # the store closed the pipe: it stopped or died
    except BlockingIOError:
        return True


def _wait_for_wakeup(stdin: int, timeout: float) -> bool:
    """Wait up to ``timeout`` for a wake-up byte from the store; False once it has gone."""
    ready, _, _ = select.select([stdin], [], [], timeout)
    if ready:
        try:
            chunk = os.read(stdin, 65536)
        except BlockingIOError:
            chunk = b"-"
        if not chunk:  # the store closed the pipe: it stopped or died
            return False
    return True
