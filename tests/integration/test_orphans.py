"""A ``postroom serve`` killed with ``kill -9`` (the OOM killer, a CI runner's timeout) takes
its helper processes with it (issue 14): the indexer and its helpers outlived it, still
holding the database open. Over a real process tree.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from postroom.lifeline import PARENT_ENV
from tests.helpers import free_port, wait_for_port

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")


def children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(p) for p in f.read().split()]
    return out


def descendants(pid: int) -> list[int]:
    found, todo = [], children(pid)
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children(p)
    return found


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


def test_helpers_die_with_a_killed_server(tmp_path: Path) -> None:
    http, smtp = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "postroom", "serve", "--smtp", f"127.0.0.1:{smtp}",
         "--http", f"127.0.0.1:{http}", "--pop3", "off", "--imap", "off", "--smtp-workers", "2",
         "--indexer", "process", "--db", str(tmp_path / "s.db"), "--quiet"],
        start_new_session=True,
    )  # fmt: skip
    tree: list[int] = []
    try:
        wait_for_port(http, proc=proc)
        wait_for_port(smtp, proc=proc)
        deadline = time.monotonic() + 30
        # the indexer and its helper processes (one fewer than the cores, forked at its start)
        while time.monotonic() < deadline:
            tree = descendants(proc.pid)
            if any("postroom.store.index_worker" in cmdline(p) for p in tree):
                break
            time.sleep(0.1)
        indexer = [p for p in tree if "postroom.store.index_worker" in cmdline(p)]
        assert indexer, [cmdline(p) for p in tree]
        helpers = min((os.cpu_count() or 1) - 1, 3)  # index_worker.MAX_HELPERS
        while time.monotonic() < deadline and len(descendants(indexer[0])) < min(helpers, 1):
            time.sleep(0.1)  # the indexer forks its helpers at its start
        tree = descendants(proc.pid)
        # Stopped (SIGSTOP) stands for busy: an indexer in the middle of a long batch, or
        # stuck, does not read the pipe that would tell it postroom has gone; its helpers
        # read no such pipe at all.
        busy = descendants(indexer[0]) + indexer
        assert len(busy) >= 1 + min(helpers, 1)
        for p in busy:
            os.kill(p, signal.SIGSTOP)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10  # "doesn't hang": the kernel kills them at once
        while time.monotonic() < deadline and any(alive(p) for p in tree):
            time.sleep(0.1)
        left = [f"{p}: {cmdline(p)}" for p in tree if alive(p)]
        assert not left, f"outlived postroom serve killed with -9: {left}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(10)
        for p in tree:  # only processes this test started
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)


def test_the_portable_watch_ends_an_orphan(tmp_path: Path) -> None:
    """Without the kernel's help (not Linux), the watch of the parent PID ends the process."""
    child = (
        "import sys, time\n"
        "from postroom.lifeline import die_with_parent\n"
        "die_with_parent(kernel=False)\n"
        "print('armed', flush=True)\n"
        "time.sleep(60)\n"
    )
    middle = (
        "import os, subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', {child!r}], env={{**os.environ, {PARENT_ENV!r}: str(os.getpid())}},"
        " stdout=subprocess.PIPE)\n"
        "assert p.stdout.readline() == b'armed\\n'\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", middle], stdout=subprocess.PIPE)
    grandchild = 0
    try:
        assert proc.stdout is not None
        grandchild = int(proc.stdout.readline())
        assert alive(grandchild)
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and alive(grandchild):
            time.sleep(0.1)
        assert not alive(grandchild), "an orphan outlived its parent by 10 s"
    finally:
        proc.kill()
        proc.wait(10)
        if grandchild:
            with contextlib.suppress(ProcessLookupError):
                os.kill(grandchild, signal.SIGKILL)
