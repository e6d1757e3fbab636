"""The soak test's traffic (benchmarks/soak.py runs it): one thread per actor, each looping
until the run's ``stop`` event, recording into one :class:`Stats`.

Ordinary actors send mail over SMTP (every 250 remembered by its Message-ID) and read it
back through the HTTP API, POP3 and IMAP, each request timed against :data:`ORDINARY_LIMIT`;
hostile actors send what issue 14 lists (MIME bombs, garbage, overlong lines, trickled bytes,
oversized DATA, odd queries, a 50 MB IMAP literal before login); one samples the server
process tree's memory. :func:`actors` lists them all.
"""

from __future__ import annotations

import imaplib
import json
import operator
import os
import poplib
import random
import smtplib
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ORDINARY_LIMIT = 2.0  # seconds: no request for an ordinary message may take longer (issue 14)
HOSTILE_HTML = "<a x='\">' " + "a=b " * 20  # issue 14 item 1
GOOD_RCPT = "soak@example.org"
HOSTILE_RCPT = "hostile@example.org"


@dataclass
class Stats:
    """What the threads found; guarded by ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: set[str] = field(default_factory=set)  # Message-IDs that got a 250
    ordinary_ids: list[str] = field(default_factory=list)  # postroom IDs of ordinary mail
    slow: list[tuple[str, float]] = field(default_factory=list)  # ordinary requests over the limit
    latencies: dict[str, list[float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)  # unexpected failures, by actor
    pss: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, kB)
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, kB)
    ordinary: int = 0  # ordinary requests timed

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + n

    def timed(self, name: str, seconds: float, ordinary: bool = True) -> None:
        with self.lock:
            self.latencies.setdefault(name, []).append(seconds)
            if ordinary:
                self.ordinary += 1
                if seconds > ORDINARY_LIMIT:
                    self.slow.append((name, seconds))

    def error(self, name: str, what: str) -> None:
        with self.lock:
            errs = self.errors.setdefault(name, [])
            if len(errs) < 20:
                errs.append(what)
            self.counts[name + " errors"] = self.counts.get(name + " errors", 0) + 1


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    smtp: int
    http: int
    pop3: int
    imap: int


# -- messages -----------------------------------------------------------------------------


def ordinary_message(mid: str, n: int) -> str:
    if n % 3 == 0:
        body = "".join(
            f"<p>Paragraph {i} of an ordinary newsletter, <a href='https://example.com/{i}'>link</a>.</p>\r\n"
            for i in range(40)
        )
        return (f"From: Shop <shop@example.com>\r\nTo: {GOOD_RCPT}\r\nSubject: Newsletter {n}\r\n"
                f"Message-ID: <{mid}>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
                f"<html><body>{body}</body></html>\r\n")  # fmt: skip
    text = "".join(f"Line {i}: your order {n} has shipped and will arrive soon.\r\n" for i in range(30))
    return (f"From: Shop <shop@example.com>\r\nTo: {GOOD_RCPT}\r\nSubject: Order {n}\r\n"
            f"Message-ID: <{mid}>\r\n\r\n{text}")  # fmt: skip


def hostile_messages(n: int) -> list[tuple[str, str, bytes]]:
    """(kind, Message-ID, message) of each hostile message a server should accept and survive."""
    out = []
    deep = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(300))
    wide = (
        'Content-Type: multipart/mixed; boundary="w"\r\n\r\n'
        + "".join(f"--w\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n" for i in range(5000))
        + "--w--\r\n"
    )
    words = " ".join("=?utf-8?q?w=C3=A9?=" for _ in range(50_000))
    bodies = [
        ("html-hang", "Subject: item 1\r\nContent-Type: text/html\r\n\r\n" + HOSTILE_HTML + "\r\n"),
        ("mime-deep", "Subject: deep\r\n" + deep + "x\r\n"),
        ("mime-wide", "Subject: wide\r\n" + wide),
        ("encoded-words", f"Subject: {words}\r\nContent-Type: text/plain\r\n\r\nx\r\n"),
        ("bad-charset", "Subject: idna\r\nContent-Type: text/plain; charset=idna\r\n\r\n\udcc3(\r\n"),
    ]
    for kind, rest in bodies:
        mid = f"hostile-{n}-{kind}@soak.example"
        head = f"From: x@example.com\r\nTo: {HOSTILE_RCPT}\r\nMessage-ID: <{mid}>\r\nMIME-Version: 1.0\r\n"
        out.append((kind, mid, (head + rest).encode("utf-8", "surrogateescape")))
    return out


# -- actors -------------------------------------------------------------------------------


def send_mail(port: int, rcpt: str, message: str | bytes, timeout: float = 60) -> int:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as s:
            s.sendmail("sender@example.com", [rcpt], message)
    except smtplib.SMTPResponseException as e:
        return int(e.smtp_code)
    except smtplib.SMTPRecipientsRefused as e:
        return int(next(iter(e.recipients.values()))[0])
    return 250


def good_smtp(srv: Server, st: Stats, stop: threading.Event, n0: int) -> None:
    n = n0
    while not stop.is_set():
        n += 1
        mid = f"soak-{n}@soak.example"
        start = time.monotonic()
        code = send_mail(srv.smtp, GOOD_RCPT, ordinary_message(mid, n))
        st.timed("smtp ordinary", time.monotonic() - start)
        if code == 250:
            with st.lock:
                st.acked.add(mid)
            st.count("smtp ordinary 250")
        else:
            st.error("smtp ordinary", f"reply {code}")
        time.sleep(random.uniform(0.02, 0.1))


def hostile_smtp_mail(srv: Server, st: Stats, stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        for kind, mid, message in hostile_messages(n):
            start = time.monotonic()
            code = send_mail(srv.smtp, HOSTILE_RCPT, message)
            st.timed("smtp hostile message", time.monotonic() - start, ordinary=False)
            if code == 250:
                with st.lock:
                    st.acked.add(mid)
                st.count("smtp hostile 250")
            else:
                st.error("smtp hostile message", f"{kind}: reply {code}")
            if stop.wait(1.0):
                return


def raw_exchange(port: int, chunks: list[bytes], timeout: float = 15) -> bytes:
    """Connect, send each chunk, read whatever comes back until close or timeout."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        for c in chunks:
            try:
                s.sendall(c)
            except OSError:
                break
        s.settimeout(2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = s.recv(65536)
            except (TimeoutError, OSError):
                break
            if not data:
                break
            got += data
            if len(got) > 1 << 20:
                break
    return got


def hostile_raw(
    name: str, port_of: Callable[[Server], int], payloads: list[list[bytes]]
) -> Callable[..., None]:
    def actor(srv: Server, st: Stats, stop: threading.Event) -> None:
        while not stop.is_set():
            for p in payloads:
                try:
                    raw_exchange(port_of(srv), p)
                    st.count(name)
                except OSError as e:
                    if not isinstance(e, ConnectionResetError | BrokenPipeError):
                        st.error(name, repr(e))
                if stop.wait(0.3):
                    return

    return actor


def trickler(
    name: str, port_of: Callable[[Server], int], prefix: bytes = b"", cap: float = 900
) -> Callable[..., None]:
    """``prefix``, then one byte every 3 s; records how long the server let it live (at most
    ``cap`` or the end of the run)."""

    def actor(srv: Server, st: Stats, stop: threading.Event) -> None:
        while not stop.is_set():
            start = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", port_of(srv)), timeout=5) as s:
                    s.settimeout(3)
                    if prefix:
                        s.sendall(prefix)
                    while not stop.is_set() and time.monotonic() - start < cap:
                        s.sendall(b"X")
                        try:
                            if s.recv(4096) == b"":
                                break
                        except TimeoutError:
                            pass
            except OSError:
                pass
            st.timed(name + " lifetime", time.monotonic() - start, ordinary=False)
            st.count(name)

    return actor


def oversize_smtp(srv: Server, st: Stats, stop: threading.Event) -> None:
    """DATA past the 50 MiB limit every minute: 552 expected, nothing stored."""
    line = b"y" * 998 + b"\r\n"
    while not stop.is_set():
        try:
            with smtplib.SMTP("127.0.0.1", srv.smtp, timeout=120) as s:
                s.ehlo()
                s.mail("a@example.com")
                s.rcpt(HOSTILE_RCPT)
                s.putcmd("DATA")
                s.getreply()
                chunk = line * 1024
                for _ in range(54):  # ~54 MB
                    s.sock.sendall(chunk)  # type: ignore[union-attr]
                s.sock.sendall(b".\r\n")  # type: ignore[union-attr]
                code, _ = s.getreply()
                st.count(f"smtp oversize {code}")
        except (OSError, smtplib.SMTPException) as e:
            st.error("smtp oversize", repr(e))
        if stop.wait(60):
            return


def http_get(
    srv: Server, path: str, timeout: float = 30, method: str = "GET", body: bytes | None = None
) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{srv.http}{path}", data=body, method=method)
    if body is not None or method != "GET":
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def good_http(srv: Server, st: Stats, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            start = time.monotonic()
            status, body = http_get(srv, f"/api/v1/search?query=to:{GOOD_RCPT}&limit=20")
            st.timed("http list", time.monotonic() - start)
            if status != 200:
                st.error("http list", f"status {status}")
                continue
            ids = [m["ID"] for m in json.loads(body)["messages"]]
            with st.lock:
                st.ordinary_ids.extend(ids[:3])
                pool = st.ordinary_ids[-500:]
            for mid in random.sample(pool, min(3, len(pool))):
                start = time.monotonic()
                status, _ = http_get(srv, f"/api/v1/message/{mid}")
                st.timed("http message", time.monotonic() - start)
                if status != 200:
                    st.error("http message", f"status {status}")
                start = time.monotonic()
                status, _ = http_get(srv, f"/view/{mid}.html")
                st.timed("http view", time.monotonic() - start)
                if status not in (200, 404):
                    st.error("http view", f"status {status}")
            st.count("http rounds")
        except (OSError, ValueError, KeyError) as e:
            st.error("http", repr(e))
        stop.wait(0.2)


def hostile_http(srv: Server, st: Stats, stop: threading.Event) -> None:
    queries = [
        "larger:99999999999999999999G",
        "after:99999999999999d",
        "%00",
        "((((((((((",
        "header:X-" + "a" * 5000,
    ]
    while not stop.is_set():
        for q in queries:
            status, _ = http_get(srv, f"/api/v1/search?query={q}")
            st.count(f"http odd query {status // 100}xx")
            if status >= 500:
                st.error("http odd query", f"{q[:30]}: {status}")
        status, _ = http_get(srv, "/api/v1/search?query=%00", method="DELETE")
        st.count(f"http delete-all query {status}")
        status, _ = http_get(srv, "/api/v1/send", method="POST", body=b"[" * 100_000)
        st.count(f"http json bomb {status}")
        if status >= 500:
            st.error("http json bomb", f"status {status}")
        # hostile messages read back (not held to the 2 s bound, but must answer)
        status, body = http_get(srv, f"/api/v1/search?query=to:{HOSTILE_RCPT}&limit=5")
        if status == 200:
            for m in json.loads(body)["messages"]:
                start = time.monotonic()
                status, _ = http_get(srv, f"/api/v1/message/{m['ID']}", timeout=60)
                st.timed("http hostile message", time.monotonic() - start, ordinary=False)
                if status >= 500:
                    st.error("http hostile message", f"status {status}")
        if stop.wait(1.0):
            return


def good_pop3(srv: Server, st: Stats, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            p = poplib.POP3("127.0.0.1", srv.pop3, timeout=30)
            p.user(GOOD_RCPT)
            p.pass_("any")
            count, _ = p.stat()
            for i in random.sample(range(1, count + 1), min(3, count)):
                start = time.monotonic()
                p.retr(i)
                st.timed("pop3 retr", time.monotonic() - start)
            p.quit()
            st.count("pop3 sessions")
        except (OSError, poplib.error_proto) as e:
            st.error("pop3", repr(e))
        stop.wait(1.0)


def good_imap(srv: Server, st: Stats, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            m = imaplib.IMAP4("127.0.0.1", srv.imap, timeout=30)
            m.login(GOOD_RCPT, "any")
            _, data = m.select("INBOX", readonly=True)
            exists = int(data[0] or 0)
            for i in random.sample(range(1, exists + 1), min(3, exists)):
                start = time.monotonic()
                m.fetch(str(i), "(BODY.PEEK[])")
                st.timed("imap fetch", time.monotonic() - start)
            m.logout()
            st.count("imap sessions")
        except (OSError, imaplib.IMAP4.error) as e:
            st.error("imap", repr(e))
        stop.wait(0.5)


def imap_literal(srv: Server, st: Stats, stop: threading.Event) -> None:
    """APPEND with a 50 MB literal before login, 8 MB of it sent, then gone (issue 14 item 4)."""
    while not stop.is_set():
        try:
            raw_exchange(srv.imap, [b"a APPEND INBOX {52428800}\r\n", b"z" * (8 << 20)], timeout=5)
            st.count("imap huge literal")
        except OSError:
            st.count("imap huge literal")
        if stop.wait(5):
            return


def sample_memory(srv: Server, st: Stats, stop: threading.Event, started: float) -> None:
    while True:
        pss, rss = tree_memory_kb(srv.proc.pid)
        now = time.monotonic() - started
        st.pss.append((now, pss))
        st.rss.append((now, rss))
        if stop.wait(5):
            return


def tree_memory_kb(root: int) -> tuple[int, int]:
    """PSS and RSS of ``root`` and all its descendants, in kB (the RSS sum counts pages
    the processes share once per process; the PSS sum divides them among them)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    pss = rss = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
                        break
        except OSError:
            pass
    return pss, rss


# -- the actors of one run -------------------------------------------------------------------

Actor = tuple[str, Callable[..., None], tuple[Any, ...]]  # thread name, function, its extra arguments

#: What each protocol's garbage actor sends, one connection per list of chunks.
GARBAGE: dict[str, list[list[bytes]]] = {
    "smtp": [
        [b"\x00\xff" * 2000 + b"\r\n"],
        [b"EHLO " + b"a" * 100_000 + b"\r\n"],
        [b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n" + b"\x00" * 10_000 + b"\r\n.\r\nQUIT\r\n"],
        [os.urandom(4096)],
    ],
    "http": [
        [os.urandom(2048)],
        [b"GET /" + b"A" * 100_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"],
        [b"GET /app.js%00.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"],
        [b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 5000 + b"\r\n"],
    ],
    "pop3": [
        [os.urandom(2048)],
        [b"USER " + b"a" * 10_000 + b"\r\n"],
        [b"\x00" * 4096 + b"\r\nQUIT\r\n"],
    ],
    "imap": [
        [os.urandom(2048)],
        [b"a " + b"(" * 50_000 + b"\r\n"],
        [b"a LOGIN " + b"x" * 100_000 + b"\r\n"],
    ],
}
#: What each protocol's trickler sends before its one byte every 3 s.
TRICKLE: dict[str, bytes] = {
    "smtp": b"EHLO trickle\r\nMAIL FROM:<",
    "http": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
    "pop3": b"USER ",
    "imap": b"a LOGIN ",
}


def actors(started: float) -> list[Actor]:
    """Every actor of a run: each protocol's own ordinary and hostile ones, its garbage and its
    trickler; then the memory sampler (``started``: the run's start, time.monotonic())."""
    own: dict[str, list[Actor]] = {
        "smtp": [
            *[(f"smtp-good-{i}", good_smtp, (i * 10_000_000,)) for i in range(4)],
            ("smtp-hostile-mail", hostile_smtp_mail, ()),
            ("smtp-oversize", oversize_smtp, ()),
        ],
        "http": [("http-good", good_http, ()), ("http-hostile", hostile_http, ())],
        "pop3": [("pop3-good", good_pop3, ())],
        "imap": [("imap-good", good_imap, ()), ("imap-literal", imap_literal, ())],
    }
    out: list[Actor] = []
    for proto, mine in own.items():
        port_of = operator.attrgetter(proto)  # Server.smtp, .http, .pop3, .imap
        out += mine
        out.append((f"{proto}-garbage", hostile_raw(f"{proto} garbage", port_of, GARBAGE[proto]), ()))
        out.append((f"{proto}-trickle", trickler(f"{proto} trickle", port_of, TRICKLE[proto]), ()))
    out.append(("memory", sample_memory, (started,)))
    return out
