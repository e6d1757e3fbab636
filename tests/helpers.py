"""Shared test helpers: real tools, free ports, a postroom server running in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str, package: str | None = None) -> str:
    """Path of a real command-line tool; skip (or fail in CI) when it is missing."""
    path = shutil.which(name)
    if path:
        return path
    reason = f"{name} not installed (Debian package {package or name}; `make test` installs it as root)"
    if IN_CI:
        pytest.fail(reason + " -- CI must not skip for this")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    app: Any
    loop: asyncio.AbstractEventLoop

    def addr(self, name: str) -> tuple[str, int]:
        return self.app.addresses[name]  # type: ignore[no-any-return]

    @property
    def smtp_port(self) -> int:
        return self.addr("smtp")[1]

    @property
    def http_url(self) -> str:
        host, port = self.addr("http")
        scheme = "https" if self.app.settings.http_tls else "http"
        return f"{scheme}://{host}:{port}"

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the server's loop from the test thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@contextmanager
def running_server(**overrides: Any) -> Iterator[RunningServer]:
    """Start postroom (all listeners on free loopback ports, throwaway store) in a thread."""
    from postroom.app import App
    from postroom.config import Settings

    values: dict[str, Any] = dict(
        smtp="127.0.0.1:0",
        http="127.0.0.1:0",
        pop3="127.0.0.1:0",
        imap="127.0.0.1:0",
        db=":memory:",
        smtp_workers="0",
    )
    values.update(overrides)
    settings = Settings(**values)
    settings.validate()
    loop = asyncio.new_event_loop()
    app = App(settings)
    started = threading.Event()
    error: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(app.start())
        except BaseException as e:
            error.append(e)
            started.set()
            return
        started.set()
        loop.run_forever()

    t = threading.Thread(target=run, name="postroom-test-server", daemon=True)
    t.start()
    started.wait(30)
    if error:
        loop.close()
        raise error[0]
    try:
        yield RunningServer(app, loop)
    finally:
        asyncio.run_coroutine_threadsafe(app.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
        loop.close()


DOVECOT_UP = Path(__file__).resolve().parents[1] / "scripts" / "dovecot-up.sh"


@contextmanager
def smtp_server(**settings: Any) -> Iterator[RunningServer]:
    """postroom with only SMTP (and whatever is asked for) listening."""
    values: dict[str, Any] = dict(http="off", pop3="off", imap="off")
    values.update(settings)
    with running_server(**values) as s:
        yield s


def unverified() -> ssl.SSLContext:
    """A client TLS context that accepts the self-signed certificate of a test server."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def wait_for_port(port: int, timeout: float = 30, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port (fail if ``proc`` exits)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited early with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def serve_process(db: Path, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    """A real `postroom serve` process (SMTP and HTTP on free ports, POP3 and IMAP off) with
    ``args`` added: yields (process, SMTP port, HTTP port); SIGTERM to its group at the end."""
    smtp, http = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "postroom", "serve", "--smtp", f"127.0.0.1:{smtp}", "--http", f"127.0.0.1:{http}",
         "--pop3", "off", "--imap", "off", "--db", str(db), "--quiet", *args],
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(http, proc=proc)
        wait_for_port(smtp, proc=proc)
        yield proc, smtp, http
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have stopped already
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


@contextmanager
def running_dovecot(
    prefix: str = "postroom-dovecot-", oauth2_url: str = "", extra_conf: str = ""
) -> Iterator[tuple[int, int]]:
    """A private Dovecot (scripts/dovecot-up.sh) on free loopback ports: (imap port, pop3 port).

    Accounts alice@example.org and bob@example.org, password "secret"; with ``oauth2_url``
    also XOAUTH2 logins, whose tokens Dovecot checks at that introspection URL; ``extra_conf``
    (with ``{dir}`` for its directory) is added at the end of its configuration.
    """
    require_tool("dovecot", "dovecot-imapd")
    doveadm = require_tool("doveadm", "dovecot-core")
    workdir = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(workdir, 0o755)  # Dovecot's unprivileged processes must read it
    imap_port, pop3_port = free_port(), free_port()
    if extra_conf:
        Path(workdir, "extra.conf").write_text(extra_conf.replace("{dir}", workdir))
    extra = [oauth2_url] if oauth2_url else []
    subprocess.run(
        ["sh", str(DOVECOT_UP), workdir, str(imap_port), str(pop3_port), *extra], check=True, timeout=60
    )
    try:
        wait_for_port(imap_port)
        wait_for_port(pop3_port)
        yield imap_port, pop3_port
    finally:
        subprocess.run([doveadm, "-c", f"{workdir}/dovecot.conf", "stop"], check=False, timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def running_spamd() -> Iterator[tuple[str, int]]:
    """A private spamd (Debian's spamassassin, shipped rules) on a free loopback port:
    (host, port). Skips (fails in CI) when spamd is not installed."""
    exe = shutil.which("spamd")
    if exe is None:
        if IN_CI:
            pytest.fail("spamd is missing (scripts/system-deps.sh installs spamassassin)")
        pytest.skip("spamd is not installed (Debian package spamassassin)")
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="postroom-spamd-")
    os.chmod(tmp, 0o755)
    cmd = [exe, "--listen", f"127.0.0.1:{port}", "-L", "-x", "--min-children", "1", "--max-children", "2"]
    cmd += ["--pidfile", os.path.join(tmp, "spamd.pid"), "-s", os.path.join(tmp, "spamd.log")]
    if os.geteuid() == 0:
        cmd += ["-u", "nobody"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(
                    f"spamd did not start: {proc.stderr.read().decode()[-500:] if proc.stderr else ''}"
                )
            time.sleep(0.2)
    try:
        yield "127.0.0.1", port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
