"""A minimal raw IMAP client for byte-level tests (literals handled, nothing interpreted)."""

from __future__ import annotations

import re
import socket
import ssl
from typing import TYPE_CHECKING

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n\Z")


if TYPE_CHECKING:
    import pytest

    from tests.helpers import RunningServer


class Wire:
    """Send commands and read whole responses (untagged lines + the tagged one) as bytes."""

    def __init__(
        self, host: str, port: int, *, timeout: float = 30, tls: ssl.SSLContext | None = None
    ) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        self.sock: socket.socket = tls.wrap_socket(sock, server_hostname=host) if tls else sock
        self.buf = b""
        self.n = 0
        self.greeting = self.read_line()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fill(self) -> None:
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def read_line(self) -> bytes:
        """One response line with any literals it carries, CRLF included."""
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            idx = self.buf.index(b"\r\n") + 2
            line, self.buf = self.buf[:idx], self.buf[idx:]
            out += line
            m = _LITERAL.search(line)
            if m is None:
                return out
            size = int(m.group(1))
            while len(self.buf) < size:
                self._fill()
            out += self.buf[:size]
            self.buf = self.buf[size:]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def tag(self) -> str:
        self.n += 1
        return f"t{self.n}"

    def read_until(self, tag: str) -> list[bytes]:
        lines = []
        while True:
            line = self.read_line()
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def cmd(self, text: str | bytes) -> list[bytes]:
        """Run one command; returns every line up to and including the tagged reply."""
        t = self.tag()
        data = text.encode() if isinstance(text, str) else text
        self.send(t.encode() + b" " + data + b"\r\n")
        return self.read_until(t)

    def ok(self, text: str | bytes) -> list[bytes]:
        """Run a command that must succeed; returns the untagged lines."""
        lines = self.cmd(text)
        assert lines[-1].split(b" ", 2)[1] == b"OK", lines[-1]
        return lines[:-1]

    def append(self, mailbox: str, message: bytes, flags: str = "", date: str = "") -> list[bytes]:
        t = self.tag()
        extra = (f" ({flags})" if flags else "") + (f' "{date}"' if date else "")
        self.send(f"{t} APPEND {mailbox}{extra} {{{len(message)}}}\r\n".encode())
        cont = self.read_line()
        assert cont.startswith(b"+"), cont
        self.send(message + b"\r\n")
        return self.read_until(t)


def deliver(s: RunningServer, user: str, n: int) -> None:
    """``n`` small messages ("Subject: m0" ...) to ``user``, through the store."""
    from postroom.store.base import Envelope

    for i in range(n):
        s.call(
            s.app.store.deliver(Envelope("a@example.org", (user,)), f"Subject: m{i}\r\n\r\nbody\r\n".encode())
        )


def login(s: RunningServer, user: str) -> Wire:
    """A wire session to ``s``'s IMAP, logged in as ``user`` (any password)."""
    w = Wire(*s.addr("imap"))
    w.ok(f"LOGIN {user} x")
    return w


def count_parses(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Record each whole message the IMAP server parses (its MIME part tree from offset 0)
    in the list returned, for tests that a message is parsed once, or not at all."""
    import postroom.protocols.imap.mime as mime

    parsed: list[bytes] = []
    entity = mime._parse_entity

    def counting(raw: bytes, start: int, end: int, *rest: object) -> mime.Part:
        if start == 0:
            parsed.append(raw)
        return entity(raw, start, end, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(mime, "_parse_entity", counting)
    return parsed
