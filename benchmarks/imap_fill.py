"""Filling a big mailbox fast, with the same bytes in postroom and in Dovecot (the IMAP
scale benchmark's set-up, not timed).

Pipelined APPEND of 100,000 messages into both servers did not finish in 50 minutes, so
each server is filled through its own fastest real path instead:

* **Dovecot**: the messages are written straight into the user's Maildir
  (``cur/TIME.Pn.host,S=size:2,``, the names Dovecot gives files itself, ascending so
  that UIDs follow the message order), then ``doveadm force-resync`` and
  ``doveadm index`` build Dovecot's own index and cache files, as for a user whose mail
  arrived by LDA, and one SELECT + ``FETCH 1:* (FLAGS)`` opens the mailbox once;
* **postroom**: ``POST /api/v2/import`` of mbox chunks (each message stored exactly as
  sent: no ``Received`` line is added, unlike SMTP), then the caller waits until
  postroom's indexer has been through every message.

Both land in INBOX of :data:`~imap_bench.USER`.
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from imap_bench import USER, Dovecot, FastWire

__all__ = ["fill_dovecot", "fill_postroom", "mbox_chunks", "same_bytes"]

CHUNK_BYTES = 8 << 20  # one import request (the API takes up to 70 MiB; our choice)
_FROM = re.compile(rb"^(>*From )", re.M)


def mbox_chunks(msgs: list[bytes], limit: int = CHUNK_BYTES) -> list[bytes]:
    """The messages as mboxrd texts of about ``limit`` bytes each, in order (a ``From ``
    line before each message, an empty line after it, body ``From `` lines escaped)."""
    out: list[bytes] = []
    parts: list[bytes] = []
    size = 0
    for m in msgs:
        part = b"From bench@example.com Thu Jan  1 00:00:00 2025\r\n" + _FROM.sub(rb">\1", m) + b"\r\n"
        parts.append(part)
        size += len(part)
        if size >= limit:
            out.append(b"".join(parts))
            parts, size = [], 0
    if parts:
        out.append(b"".join(parts))
    return out


def fill_postroom(http_port: int, msgs: list[bytes]) -> None:
    """Import ``msgs`` into ``USER``'s INBOX through postroom's HTTP API, in order."""

    def post(body: bytes) -> None:
        req = urllib.request.Request(
            f"http://127.0.0.1:{http_port}/api/v2/import?to={USER}",
            data=body,
            headers={"X-Postroom-Request": "1", "Content-Type": "application/mbox"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=3600) as r:
            reply = r.read()
        assert reply.rstrip().endswith(b'"Skipped":[]}'), reply[-300:]

    # one request at a time: UIDs are given in delivery order, which must be the message order
    with ThreadPoolExecutor(1) as pool:
        for _ in pool.map(post, mbox_chunks(msgs)):
            pass


def fill_dovecot(d: Dovecot, msgs: list[bytes], base_time: int = 1_735_689_600) -> None:
    """Write ``msgs`` into ``USER``'s Maildir INBOX, let Dovecot index them, open it once.
    Dovecot must be running (its start created the mail directory)."""
    user, domain = USER.split("@")
    maildir = d.base / "mail" / domain / user / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    host = "bench"
    cur = maildir / "cur"
    for i, m in enumerate(msgs):
        t = base_time + i  # ascending times and P numbers: Dovecot gives UIDs in this order
        path = cur / f"{t}.P{i}.{host},S={len(m)}:2,"
        with open(path, "wb") as f:
            f.write(m)
        os.utime(path, (t, t))
    subprocess.run(["chown", "-R", "nobody:nogroup", str(d.base / "mail")], check=True)
    doveadm = ["doveadm", "-c", str(d.conf)]
    subprocess.run([*doveadm, "force-resync", "-u", USER, "INBOX"], check=True)
    subprocess.run([*doveadm, "index", "-u", USER, "INBOX"], check=True)
    with FastWire("127.0.0.1", d.port, timeout=3600) as w:
        w.ok(f"LOGIN {USER} secret")
        lines = w.ok("SELECT INBOX")
        assert b"* %d EXISTS\r\n" % len(msgs) in lines, lines[:3]
        w.ok("FETCH 1:* (FLAGS)")


def same_bytes(port: int, msgs: list[bytes], folder: str = "INBOX") -> None:
    """Check a few messages (first, middle, last) read back byte for byte."""
    with FastWire("127.0.0.1", port, timeout=3600) as w:
        w.ok(f"LOGIN {USER} secret")
        w.ok(f"EXAMINE {folder}")
        for seq in sorted({1, len(msgs) // 2 + 1, len(msgs)}):
            [line] = w.ok(f"FETCH {seq} BODY.PEEK[]")
            body = line[line.index(b"}\r\n") + 3 :]
            assert body.startswith(msgs[seq - 1]) and len(body) - len(msgs[seq - 1]) <= 3, (seq, body[:200])
