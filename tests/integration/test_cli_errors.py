"""`postroom` answers mistakes with one clear line and a non-zero status, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from postroom import __version__


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "postroom", *args], capture_output=True, text=True, timeout=60
    )


OFF = ("--http", "off", "--pop3", "off", "--imap", "off")


def test_port_in_use() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run("serve", "--smtp", f"127.0.0.1:{port}", *OFF, "--db", ":memory:")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]  # one line
    assert "cannot listen for smtp" in r.stderr and "in use" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("args", "status", "text"),
    [
        (("--db", "/proc/no-such-dir/x.db"), 1, "cannot open database"),
        (("--smtp", "nonsense"), 2, "expected host:port"),
        (("--tls-cert", "/no/cert.pem", "--tls-key", "/no/key.pem"), 2, "no such file"),
        (("--max", "lots"), 2, "expected a number"),
        (("--db", "mysql://u:secret@db/x"), 1, "not mysql://..."),
        (("--db", "postgresql://u:secret@127.0.0.1:1/x"), 1, "cannot open database: connection"),
    ],
)
def test_bad_settings(args: tuple[str, ...], status: int, text: str) -> None:
    r = run("serve", *OFF, *args)
    assert r.returncode == status
    assert len(r.stderr.strip().splitlines()) == 1 and text in r.stderr
    assert "Traceback" not in r.stderr and "secret" not in r.stderr


def test_version() -> None:
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"postroom {__version__}"
