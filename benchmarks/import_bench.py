"""Import and fetch benchmark (issue 18): how fast, and in how much memory, mail moves in.

1. ``postroom import`` of one mbox of N messages (100,000; 2,000 with --quick) into a
   fresh postroom, over SMTP (the default) and over IMAP APPEND (``--imap``): messages per
   second, and the importer's peak RSS (it streams, so this must not grow with N).
2. Copying the same N messages out of a real Dovecot (Maildir written directly into its
   mail directory, so loading is not timed): ``postroom fetch`` into postroom, side by
   side with ``mbsync`` (isync) into a local Maildir, the usual tool for the job.

Mailpit's ``ingest`` reads single files only (no mbox) and publishes no rate.

    python benchmarks/run.py import [--quick]
    python benchmarks/import_bench.py --messages 100000     # one run, JSON on stdout
    python benchmarks/import_bench.py --only fetch --fetch-messages 5000   # the fetch half

Each row also gives the rate over the first and the last quarter of its messages: a rate
that falls as postroom's folder grows (each APPEND costing more than the one before) shows
there and not in the average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures import build  # noqa: E402
from imap_bench import Dovecot, _wait_port  # noqa: E402
from tests.helpers import free_port  # noqa: E402

POSTROOM = [sys.executable, "-m", "postroom"]
ENV = {**{k: v for k, v in os.environ.items() if not k.startswith(("POSTROOM_", "MP_"))},
       "PYTHONPATH": str(ROOT / "src")}  # fmt: skip


def message(n: int) -> bytes:
    base = build("small")
    head, _, body = base.partition(b"\n\n")
    head = head.replace(b"Message-ID: <bench-1@", f"Message-ID: <bench-{n}@".encode())
    head = head.replace(b"Subject: Your password reset code", f"Subject: code {n}".encode())
    return head + b"\n\n" + body + (b"\nFrom the desk of the shop\n" if n % 10 == 0 else b"")


def write_mbox(path: Path, count: int) -> int:
    with path.open("wb") as f:
        for n in range(count):
            body = message(n)
            f.write(b"From MAILER-DAEMON Mon Nov  2 12:00:00 2026\n")
            f.write(b"".join((b">" + line if line.startswith(b"From ") else line)
                             for line in body.splitlines(keepends=True)))  # fmt: skip
            f.write(b"\n" if body.endswith(b"\n") else b"\n\n")
    return path.stat().st_size


class Server:
    """``postroom serve`` with SMTP and IMAP on free ports and a throwaway SQLite store."""

    def __init__(self, tmp: Path) -> None:
        self.smtp, self.imap = free_port(), free_port()
        cmd = [*POSTROOM, "serve", "--smtp", f"127.0.0.1:{self.smtp}", "--imap", f"127.0.0.1:{self.imap}",
               "--http", "off", "--pop3", "off", "--db", str(tmp / "bench.db"), "--max", "0", "--quiet"]  # fmt: skip
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV)
        _wait_port(self.imap, up=True)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


Samples = list[tuple[float, int]]  # (seconds since start, messages done)


def timed(cmd: list[str], progress: Callable[[], int] | None = None,
          samples: Samples | None = None) -> tuple[float, float, str]:  # fmt: skip
    """(seconds, peak RSS of the command in MB, its stdout). With ``progress`` (how many
    messages are done, read from outside the command), ``samples`` gets it 4 times a second."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=out, stderr=err)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG if progress else 0)
            if pid:
                break
            if progress is not None and samples is not None:
                samples.append((time.monotonic() - start, progress()))
            time.sleep(0.25)
        seconds = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[2:4])} failed: {err.read().decode()[-500:]}")
        return seconds, usage.ru_maxrss / 1024, out.read().decode()


def counter(db: Path, sql: str) -> Callable[[], int]:
    """Reads a count from a SQLite file another process is writing (0 until it exists)."""

    def count() -> int:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
                return int(c.execute(sql).fetchone()[0])
        except sqlite3.Error:
            return 0

    return count


def settle(samples: Samples, seconds: float, progress: Callable[[], int], total: int) -> None:
    """Sample on after the command ended until all ``total`` are in (SMTP's last messages
    are committed a moment after the client's QUIT), for at most 30 s."""
    start = time.monotonic() - seconds
    while True:
        done = progress()
        samples.append((time.monotonic() - start, done))
        if done >= total or time.monotonic() - start > seconds + 30:
            return
        time.sleep(0.1)


def quarters(samples: Samples, total: int) -> dict[str, int]:
    """Messages per second over the first and the last quarter of the run's messages (a
    rate that falls as the target folder grows shows here, not in the average)."""

    def at(n: float) -> float:  # when the n-th message was done (linear between samples)
        prev = (0.0, 0)
        for t, done in samples:
            if done >= n:
                if done == prev[1]:
                    return t
                return prev[0] + (t - prev[0]) * (n - prev[1]) / (done - prev[1])
            prev = (t, done)
        return samples[-1][0] if samples else 0.0

    q = total / 4
    first, last = at(q), at(total) - at(3 * q)
    if not samples or first <= 0 or last <= 0 or samples[-1][1] < total:
        return {}
    return {"first_quarter_msgs_per_s": round(q / first), "last_quarter_msgs_per_s": round(q / last)}


def import_rows(tmp: Path, count: int) -> list[dict[str, Any]]:
    mbox = tmp / "bench.mbox"
    size = write_mbox(mbox, count)
    rows = []
    for mode in ("smtp", "imap"):
        work = tmp / mode
        work.mkdir()
        server = Server(work)
        try:
            where = (
                ["--smtp", f"127.0.0.1:{server.smtp}"]
                if mode == "smtp"
                else ["--imap", f"127.0.0.1:{server.imap}"]
            )
            samples: Samples = []
            stored = counter(work / "bench.db", "SELECT count(*) FROM delivery")
            seconds, peak, out = timed(
                [*POSTROOM, "import", *where, "--to", "alice@example.org", str(mbox)], stored, samples
            )
            settle(samples, seconds, stored, count)
        finally:
            server.stop()
        assert f"imported {count} messages" in out, out
        rows.append({"what": f"postroom import mbox over {mode.upper()}", "messages": count,
                     "mbox_mb": round(size / 1e6, 1), "seconds": round(seconds, 2),
                     "msgs_per_s": round(count / seconds), "client_peak_rss_mb": round(peak, 1),
                     **quarters(samples, count)})  # fmt: skip
    return rows


def fill_dovecot(dovecot: Dovecot, count: int) -> None:
    """Write ``count`` messages straight into alice's Maildir (Dovecot indexes them when read)."""
    new = dovecot.base / "mail" / "example.org" / "alice" / "Maildir" / "new"
    new.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        (new / f"{1700000000 + n}.bench{n}.localhost").write_bytes(message(n))
    subprocess.run(["chown", "-R", "nobody:nogroup", str(dovecot.base / "mail")], check=True)


def fetch_rows(tmp: Path, count: int) -> list[dict[str, Any]]:
    dovecot = Dovecot()
    rows = []
    try:
        dovecot.start()
        fill_dovecot(dovecot, count)
        # index once, so neither tool pays for Dovecot's first scan of the Maildir
        subprocess.run(["doveadm", "-c", str(dovecot.conf), "force-resync", "-u", "alice@example.org", "INBOX"],
                       check=True)  # fmt: skip
        config = tmp / "fetch.toml"
        config.write_text(f'[fetch.accounts.a]\nhost = "127.0.0.1"\nport = {dovecot.port}\ntls = "none"\n'
                          f'user = "alice@example.org"\npassword_env = "BENCH_PW"\n')  # fmt: skip
        ENV["BENCH_PW"] = "secret"
        work = tmp / "fetch"
        work.mkdir()
        server = Server(work)
        try:
            samples: Samples = []
            fetched = counter(work / "state.sqlite", "SELECT count(*) FROM message")
            seconds, peak, out = timed([*POSTROOM, "fetch", "a", "--config", str(config), "--into",
                                        f"127.0.0.1:{server.imap}", "--state", str(work / "state.sqlite")],
                                       fetched, samples)  # fmt: skip
            settle(samples, seconds, fetched, count)
        finally:
            server.stop()
        assert f"a: {count} new messages" in out, out
        rows.append({"what": "postroom fetch (Dovecot -> postroom)", "messages": count,
                     "seconds": round(seconds, 2), "msgs_per_s": round(count / seconds),
                     "client_peak_rss_mb": round(peak, 1), **quarters(samples, count)})  # fmt: skip
        if shutil.which("mbsync"):
            maildir = tmp / "mbsync"
            maildir.mkdir()
            rc = tmp / "mbsyncrc"
            rc.write_text(f"""IMAPAccount dv
Host 127.0.0.1
Port {dovecot.port}
User alice@example.org
Pass secret
SSLType None
AuthMechs LOGIN

IMAPStore far
Account dv

MaildirStore near
Path {maildir}/
Inbox {maildir}/INBOX

Channel bench
Far :far:
Near :near:
Patterns INBOX
Create Near
Sync Pull
SyncState *
""")
            seconds, peak, _ = timed(["mbsync", "-q", "-c", str(rc), "bench"])
            got = sum(1 for _ in (maildir / "INBOX" / "new").iterdir()) + sum(
                1 for _ in (maildir / "INBOX" / "cur").iterdir()
            )
            assert got == count, got
            rows.append({"what": f"mbsync {_mbsync_version()} (Dovecot -> Maildir)", "messages": count,
                         "seconds": round(seconds, 2), "msgs_per_s": round(count / seconds),
                         "client_peak_rss_mb": round(peak, 1)})  # fmt: skip
    finally:
        dovecot.stop()
        dovecot.remove()
    return rows


def _mbsync_version() -> str:
    out = subprocess.run(["mbsync", "--version"], capture_output=True, text=True)
    return out.stdout.strip().split()[-1] if out.returncode == 0 else "?"


def suite(quick: bool, messages: int | None = None, fetch_messages: int | None = None,
          only: str = "") -> dict[str, Any]:  # fmt: skip
    count = messages or (2_000 if quick else 100_000)
    fetch_count = fetch_messages or min(count, 2_000 if quick else 20_000)
    with tempfile.TemporaryDirectory(prefix="postroom-import-bench-") as d:
        tmp = Path(d)
        os.chmod(tmp, 0o755)
        rows = (import_rows(tmp, count) if only != "fetch" else []) + (
            fetch_rows(tmp, fetch_count) if only != "import" else []
        )
    lines = [
        "| what | messages | seconds | msgs/s | first / last quarter msgs/s | client peak RSS (MB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        ends = (f"{r['first_quarter_msgs_per_s']:,} / {r['last_quarter_msgs_per_s']:,}"
                if "first_quarter_msgs_per_s" in r else "")  # fmt: skip
        lines.append(f"| {r['what']} | {r['messages']:,} | {r['seconds']} | {r['msgs_per_s']:,} | {ends} | "
                     f"{r.get('client_peak_rss_mb', '')} |")  # fmt: skip
    return {"title": "Import and fetch", "rows": rows, "markdown": "\n".join(lines)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument(
        "--fetch-messages", type=int, help="messages for postroom fetch (20,000; 2,000 with --quick)"
    )
    ap.add_argument("--only", choices=("import", "fetch"), default="", help="one half of the suite")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(json.dumps(suite(args.quick, None if args.quick else args.messages, args.fetch_messages, args.only),
                     indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
