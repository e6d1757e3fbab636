"""`postroom serve --print --exit-after N` and `--chaos` as a script would use them."""

from __future__ import annotations

import re
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from postroom.runtime.printer import BEGIN, END, format_message
from tests.helpers import free_port


@contextmanager
def serve(*flags: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    args = [sys.executable, "-m", "postroom", "serve", "--smtp", f"127.0.0.1:{port}"]
    args += ["--http", "off", "--pop3", "off", "--imap", "off", "--db", ":memory:"]
    proc = subprocess.Popen([*args, *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()  # printed once every listener is up
        assert banner.startswith(b"postroom ready"), banner + (proc.stderr.read() if proc.stderr else b"")
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _send(port: int, subject: str, to: str = "alice@example.com") -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.sendmail("app@example.com", [to], f"Subject: {subject}\r\nTo: {to}\r\n\r\nline one\r\n".encode())


def test_print_and_exit_after() -> None:
    with serve("--print", "--exit-after", "2") as (proc, port):
        _send(port, "first")
        _send(port, "second", to="bob@example.com")
        out, _ = proc.communicate(timeout=30)  # it exits by itself after the second message
    assert proc.returncode == 0
    blocks = re.findall(re.escape(BEGIN) + b"(.*?)" + re.escape(END), out, re.S)
    assert len(blocks) == 2
    assert b"Subject: first\n" in blocks[0] and b"X-RcptTo: alice@example.com\n" in blocks[0]
    assert b"X-MailFrom: app@example.com\n" in blocks[1] and b"X-Peer: 127.0.0.1\n" in blocks[1]
    assert blocks[1].endswith(b"\n\nline one\n")


def test_chaos_flag() -> None:
    with serve("--chaos", "rcpt:550 5.1.1 no such user:rcpt=*@nx.example") as (_proc, port):
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            refused = c.sendmail(
                "a@example.com", ["ok@example.com", "x@nx.example"], b"Subject: x\r\n\r\nx\r\n"
            )
        assert refused == {"x@nx.example": (550, b"5.1.1 no such user")}


def test_bad_chaos_flag_is_a_usage_error() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "postroom", "serve", "--chaos", "rcpt:250", "--db", ":memory:"],
        capture_output=True,
        timeout=30,
    )
    assert r.returncode == 2 and b"--chaos" in r.stderr and b"4xx or 5xx" in r.stderr


@pytest.mark.parametrize(
    ("raw", "expected_tail"),
    [
        (b"Subject: a\r\n\r\nbody\r\n", b"X-RcptTo: r@x\n\nbody\n"),
        (b"Subject: only headers\r\n", b"X-RcptTo: r@x\n\n"),
    ],
)
def test_format_message(raw: bytes, expected_tail: bytes) -> None:
    out = format_message(raw, "[::1]:4000", "s@x", ["r@x"])
    assert out.startswith(BEGIN) and out.endswith(expected_tail + END)
    assert b"X-Peer: ::1\n" in out
