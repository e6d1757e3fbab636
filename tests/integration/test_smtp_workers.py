"""`postroom serve --smtp-workers N`: SMTP accepted by worker processes, stored by the main one."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port, serve_process, wait_for_port

pytestmark = pytest.mark.slow


def _api(port: int, path: str) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.load(r)  # type: ignore[no-any-return]


def _send(port: int, rcpt: str, subject: str) -> None:
    msg = f"From: a@test.example\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nbody\r\n"
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.sendmail("a@test.example", [rcpt], msg)


def _workers(pid: int) -> list[int]:
    out = subprocess.run(
        ["pgrep", "-P", str(pid), "-f", "smtp_workers"], capture_output=True, text=True
    ).stdout
    return [int(p) for p in out.split()]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    with serve_process(tmp_path / "s.db", "--smtp-workers", "2") as running:
        yield running


def test_workers_accept_and_the_main_process_stores(serve: tuple[subprocess.Popen[bytes], int, int]) -> None:
    proc, smtp, http = serve
    assert len(_workers(proc.pid)) == 2
    threads = [threading.Thread(target=lambda i=i: [_send(smtp, f"u{i}@x.org", f"m{j}") for j in range(10)])
               for i in range(5)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # read right after the last 250: the main process has every message (read-your-writes)
    assert _api(http, "/api/v1/messages?limit=1")["total"] == 50
    boxes = {b["Name"]: b["Total"] for b in _api(http, "/api/v2/mailboxes")["mailboxes"]}
    assert boxes == {f"u{i}@x.org": 10 for i in range(5)}


def test_main_process_takes_over_when_every_worker_is_gone(
    serve: tuple[subprocess.Popen[bytes], int, int],
) -> None:
    proc, smtp, http = serve
    for pid in _workers(proc.pid):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while True:
        try:
            _send(smtp, "after@x.org", "still here")
            break
        except (OSError, smtplib.SMTPException):
            assert time.monotonic() < deadline, "nobody accepts SMTP after the workers died"
            time.sleep(0.1)
    assert _api(http, "/api/v1/search?query=subject:%22still%20here%22")["messages_count"] == 1


def test_worker_mail_is_announced_without_anyone_reading(
    serve: tuple[subprocess.Popen[bytes], int, int],
) -> None:
    """Workers send a note only when the main process has armed them: every message must
    still reach a WebSocket subscriber on its own (nobody reads the API meanwhile), from
    the first after an idle spell to the last of a burst."""
    import asyncio

    import aiohttp

    _proc, smtp, http = serve

    async def main() -> list[str]:
        seen: list[str] = []
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"http://127.0.0.1:{http}/api/events") as ws,
        ):
            loop = asyncio.get_running_loop()
            for round_ in range(3):  # idle, then a burst from 4 threads, then idle again
                await asyncio.sleep(0.5)
                subjects = [f"r{round_}-{i}" for i in range(12)]
                await asyncio.gather(
                    *(
                        loop.run_in_executor(None, _send, smtp, f"ws{i % 4}@x.org", s)
                        for i, s in enumerate(subjects)
                    )
                )
                deadline = loop.time() + 10
                while not set(subjects) <= set(seen):
                    msg = await ws.receive(timeout=max(0.1, deadline - loop.time()))
                    data = json.loads(msg.data)
                    if data["Type"] == "new":
                        seen.append(data["Data"]["Subject"])
        return seen

    seen = asyncio.run(main())
    assert len(seen) == 36 and len(set(seen)) == 36


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_whole_process_group_stops_everything_quietly(tmp_path: Path, sig: int) -> None:
    """Ctrl-C in a terminal (SIGINT) or `kill -- -PGID` reaches the workers and the indexer
    too: postroom stops cleanly, without tracebacks, without taking SMTP over from workers
    that are stopping, and leaves neither processes nor applied worker journals behind."""

    smtp, http = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "postroom", "serve", "--smtp", f"127.0.0.1:{smtp}", "--http", f"127.0.0.1:{http}",
         "--pop3", "off", "--imap", "off", "--db", str(tmp_path / "s.db"), "--smtp-workers", "2"],
        start_new_session=True, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(http, proc=proc)
    wait_for_port(smtp, proc=proc)
    children = _workers(proc.pid)
    assert len(children) == 2
    _send(smtp, "a@x.org", "before the signal")
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=20)
    text = err.decode()
    assert proc.returncode == 0, text
    assert "Traceback" not in text and "ERROR" not in text, text
    assert not any(Path(f"/proc/{p}").exists() and b"smtp_workers" in Path(f"/proc/{p}/cmdline").read_bytes()
                   for p in children)  # fmt: skip
    assert not [p.name for p in tmp_path.iterdir() if "-journal-postroom-w" in p.name]


def test_the_main_process_greets_until_a_worker_serves_the_port(tmp_path: Path) -> None:
    """A restarted server does not make clients wait for its SMTP workers (new interpreters):
    the main process accepts on the port until the first worker does, and what it accepts
    is stored like the workers' mail. A sitecustomize makes each worker wait 5 s before it
    starts and then leave a mark: the first connection is greeted, and its message stored,
    with no mark there yet; once a worker serves, mail still arrives."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os, sys, time\n"
        "if any('-journal-postroom-w' in a for a in sys.argv):\n"
        "    time.sleep(5.0)\n"
        f"    open(os.path.join({str(tmp_path)!r}, 'worker-started-%d' % os.getpid()), 'w').close()\n"
    )
    smtp, http = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "postroom", "serve", "--smtp", f"127.0.0.1:{smtp}", "--http", f"127.0.0.1:{http}",
         "--pop3", "off", "--imap", "off", "--db", str(tmp_path / "s.db"), "--smtp-workers", "2"],
        start_new_session=True, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def started() -> bool:
        return any(p.name.startswith("worker-started-") for p in tmp_path.iterdir())

    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "postroom exited"
            try:
                conn = socket.create_connection(("127.0.0.1", smtp), timeout=10)
                break
            except OSError:
                assert time.monotonic() < deadline, "the SMTP port never opened"
                time.sleep(0.01)
        with conn:
            assert conn.recv(100).startswith(b"220 ")
        _send(smtp, "a@x.org", "before the workers")
        assert not started(), "the test's premise: no worker serves yet"
        assert proc.stdout is not None
        assert b"postroom ready" in proc.stdout.readline()  # said once a worker serves
        assert started()
        _send(smtp, "a@x.org", "after start")
        subjects = {m["Subject"] for m in _api(http, "/api/v1/messages?limit=10")["messages"]}
        assert subjects == {"before the workers", "after start"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


# A worker starts while the main process already answers SMTP, so its imports compete with the
# first mail: it loads the SMTP session and the journal writer, not the web app, the IMAP or
# POP3 servers, the checks, nor the parsers of a command line or a TOML file.
NOT_IN_A_WORKER = ("aiohttp", "postroom.web", "postroom.servers.imap", "postroom.servers.pop3",
                   "postroom.checks", "postroom.app", "argparse", "tomllib")  # fmt: skip


def test_a_worker_process_imports_only_what_serving_smtp_needs(tmp_path: Path) -> None:
    from dataclasses import asdict

    from postroom.config import Settings

    listen = socket.create_server(("127.0.0.1", 0))
    mine, theirs = socket.socketpair()
    code = (
        "import sys\nfrom postroom.servers import smtp_workers\n"
        "smtp_workers.main(sys.argv[1:])\nprint(' '.join(sorted(sys.modules)))\n"
    )
    settings = json.dumps({k: v for k, v in asdict(Settings()).items() if k != "extra"})
    args = [str(listen.fileno()), str(theirs.fileno()), str(tmp_path / "worker-0")]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        pass_fds=(listen.fileno(), theirs.fileno()),
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(settings.encode())
    proc.stdin.close()
    theirs.close()
    mine.settimeout(60)
    assert mine.recv(16) == b"R"  # serving: it accepts connections
    port = listen.getsockname()[1]
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:  # and takes mail (into its journal)
        s.sendmail("a@test.example", ["b@test.example"], "Subject: x\r\n\r\nbody\r\n")
    mine.close()  # the main process is gone: the worker stops
    out = proc.stdout.read()
    assert proc.wait(30) == 0
    listen.close()
    loaded = out.decode().split()
    assert "postroom.servers.smtp_session" in loaded
    assert [
        m for m in loaded if m in NOT_IN_A_WORKER or m.startswith(tuple(n + "." for n in NOT_IN_A_WORKER))
    ] == []
