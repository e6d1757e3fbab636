"""SMTP ingest: postroom side by side with its peers, in one run on one machine.

Method (the same as the shared project benchmark): start the server, send N copies of a
fixture with Postfix's ``smtp-source`` (C, so the client is never the bottleneck), wait
until every message is visible through the server's own API, read the peak RSS.

  python benchmarks/ingest.py [--peers postroom,maildev,aiosmtpd-sink] [-n 3000] [-s 10]
                              [--msg html] [--keep-conn]

Prints one JSON object per peer; ``benchmarks/run.py`` collects them into results files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures import write as write_fixture
from procs import stop_group

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = Path(os.environ.get("PEERS_DIR", Path.home() / ".cache" / "postroom-peers"))


def smtp_source(port: int, sessions: int, n: int, fixture: Path, *, keep_conn: bool = False) -> list[str]:
    """Postfix's ``smtp-source`` sending ``n`` copies of ``fixture`` to alice@example.org on
    127.0.0.1:``port`` over ``sessions`` parallel sessions (``keep_conn``: one connection per
    session for all its messages, ``-d``)."""
    return ["smtp-source", *(["-d"] if keep_conn else []), "-s", str(sessions), "-m", str(n),
            "-F", str(fixture), "-f", "sender@shop.example.com", "-t", "alice@example.org",
            f"127.0.0.1:{port}"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def _count_api_v1(p: dict[str, Any]) -> int:
    return int(_get_json(f"http://127.0.0.1:{p['http']}/api/v1/messages?limit=1")["total"])


def _count_maildev(p: dict[str, Any]) -> int:
    return len(_get_json(f"http://127.0.0.1:{p['http']}/email"))


PEERS: dict[str, tuple[str, Callable[[dict[str, Any]], int] | None]] = {
    # the command ../shared/bench/ingest.py runs: default settings (--smtp-workers auto)
    "postroom": (
        f"{ROOT}/.venv/bin/postroom serve --smtp 127.0.0.1:{{smtp}} --http 127.0.0.1:{{http}} "
        f"--db {{tmp}}/store.db --quiet",
        _count_api_v1,
    ),
    "postroom-1-process": (
        f"{ROOT}/.venv/bin/postroom serve --smtp 127.0.0.1:{{smtp}} --http 127.0.0.1:{{http}} "
        f"--db {{tmp}}/store.db --quiet --smtp-workers 0",
        _count_api_v1,
    ),
    "maildev": (
        f"{PEERS_DIR}/node_modules/.bin/maildev --ip 127.0.0.1 -s {{smtp}} -w {{http}} --silent",
        _count_maildev,
    ),
    "aiosmtpd-sink": (
        f"{PEERS_DIR}/venv/bin/python -m aiosmtpd -n -l 127.0.0.1:{{smtp}} -c aiosmtpd.handlers.Sink",
        None,
    ),
    "smtp-sink": ("smtp-sink -u nobody 127.0.0.1:{smtp} 1000", None),
}


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not open its SMTP port")


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    children = [int(c) for c in out]
    return children + [d for c in children for d in _descendants(c)]


def _peak_rss_mb(pid: int) -> tuple[float, float]:
    """Peak RSS (VmHWM) of the server's main process, and summed over every process of its
    tree (postroom's SMTP workers, indexer and helpers; shared pages count once per process,
    so the sum overstates what the tree really uses)."""
    per: list[int] = []
    for p in [pid, *_descendants(pid)]:
        try:
            per += [int(line.split()[1]) for line in Path(f"/proc/{p}/status").read_text().splitlines()
                    if line.startswith("VmHWM:")]  # fmt: skip
        except OSError:
            pass
    # pid is the shell that started the server (shell=True): its child is the main process
    main = per[1] if len(per) > 1 else (per[0] if per else 0)
    return round(main / 1024, 1), round(sum(per) / 1024, 1)


def run_one(
    peer: str, n: int, sessions: int, msg: str, keep_conn: bool, settle: float = 120
) -> dict[str, Any]:
    """Benchmark one peer; returns the figures as a dict."""
    cmd_t, count = PEERS[peer]
    tmp = tempfile.mkdtemp(prefix="postroom-bench-")
    ports: dict[str, Any] = {"smtp": free_port(), "http": free_port(), "tmp": tmp}
    fixture = write_fixture(msg, Path(tmp))
    log = open(os.path.join(tmp, "server.log"), "w")  # noqa: SIM115
    proc = subprocess.Popen(
        cmd_t.format(**ports), shell=True, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
    )
    try:
        _wait_port(ports["smtp"], proc)
        time.sleep(0.5)
        src = smtp_source(ports["smtp"], sessions, n, fixture, keep_conn=keep_conn)
        t0 = time.perf_counter()
        r = subprocess.run(src, capture_output=True, text=True)
        t_smtp = time.perf_counter() - t0
        captured = t_visible = None
        if count is not None:
            while True:
                try:
                    captured = count(ports)
                except Exception:
                    captured = None
                if captured == n or time.perf_counter() - t0 > t_smtp + settle:
                    break
                time.sleep(0.05)
            t_visible = time.perf_counter() - t0
        return {
            "peer": peer,
            "msg": msg,
            "n": n,
            "sessions": sessions,
            "keep_conn": keep_conn,
            "smtp_rc": r.returncode,
            "smtp_err": r.stderr.strip()[-200:],
            "smtp_s": round(t_smtp, 3),
            "msgs_per_s": round(n / t_smtp, 1),
            "captured": captured,
            "visible_s": round(t_visible, 3) if t_visible else None,
            "visible_msgs_per_s": round(n / t_visible, 1) if t_visible else None,
            "peak_rss_mb": (rss := _peak_rss_mb(proc.pid))[0],
            "tree_peak_rss_mb": rss[1],
        }
    finally:
        stop_group(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", default="postroom,maildev,aiosmtpd-sink")
    ap.add_argument("-n", type=int, default=3000)
    ap.add_argument("-s", type=int, default=10, help="parallel sessions")
    ap.add_argument("--msg", default="html", choices=["small", "html", "attachment"])
    ap.add_argument("--keep-conn", action="store_true")
    a = ap.parse_args(argv)
    for peer in a.peers.split(","):
        print(json.dumps(run_one(peer, a.n, a.s, a.msg, a.keep_conn)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
