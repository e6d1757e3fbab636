"""Servers the benchmarks start as processes of their own: waiting for the SMTP greeting and
stopping a whole process group (the server with its SMTP workers and indexer)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM to the server's process group, SIGKILL if it has not ended after ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_greeting(
    port: int, deadline: float, proc: subprocess.Popen[bytes] | None = None, interval: float = 0.005
) -> None:
    """Return once the SMTP listener on ``port`` sends its 220 greeting (``deadline`` on the
    monotonic clock; ``proc``: fail at once if that server exits first)."""
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                if sock.recv(512).startswith(b"220"):
                    return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("postroom serve exited")
        if time.monotonic() > deadline:
            raise RuntimeError("postroom serve sent no SMTP greeting")
        time.sleep(interval)
