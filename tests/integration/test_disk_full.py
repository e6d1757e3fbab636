"""A full disk loses no acknowledged mail (issue 14 item 2), on a real small filesystem.

The database lives on a tmpfs mounted for the test (root only; outside CI a non-root run
skips with the reason). The filesystem is filled until postroom answers 451, space is freed,
more mail is sent: every 250 must be in the API at once, and in the database after a restart,
and mail is accepted again without a restart.
"""

from __future__ import annotations

import json
import os
import shutil
import smtplib
import sqlite3
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import IN_CI, serve_process

pytestmark = pytest.mark.slow


def _privileged() -> list[str] | None:
    """How to run mount: directly as root, through passwordless sudo, or not at all."""
    if os.geteuid() == 0:
        return []
    sudo = shutil.which("sudo")
    if sudo and subprocess.run([sudo, "-n", "true"], capture_output=True, check=False).returncode == 0:
        return [sudo, "-n"]
    return None


@contextmanager
def small_filesystem(size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on a fresh directory, owned by this user (unmounted after)."""
    prefix = _privileged()
    if prefix is None:
        reason = "mounting a small tmpfs to fill needs root (or passwordless sudo)"
        if IN_CI:
            pytest.fail(reason + " -- CI must not skip this")
        pytest.skip(reason)
    where = Path(tempfile.mkdtemp(prefix="postroom-full-"))
    options = f"size={size},uid={os.getuid()},gid={os.getgid()},mode=0700"
    done = subprocess.run([*prefix, "mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=False)
    if done.returncode != 0:
        where.rmdir()
        reason = "cannot mount a tmpfs here (no CAP_SYS_ADMIN in this container)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield where
    finally:
        subprocess.run([*prefix, "umount", "-l", str(where)], check=False)
        where.rmdir()


def fill(path: Path) -> None:
    """Write ``path`` until the filesystem has no space left."""
    block = os.urandom(64 * 1024)
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError:
            pass
        try:  # the last pages
            while True:
                f.write(b"x" * 512)
        except OSError:
            pass


def message(mid: str, size: int) -> str:
    body = os.urandom(size // 2).hex()  # compresses poorly: the journal gets large records
    lines = "\r\n".join(body[i : i + 76] for i in range(0, len(body), 76))
    return f"From: a@test.example\r\nTo: b@test.example\r\nMessage-ID: <{mid}>\r\nSubject: {mid}\r\n\r\n{lines}\r\n"


def send(port: int, mid: str, size: int) -> int:
    """The final reply code for one message (250, or 4xx/5xx), on its own connection."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
            s.sendmail("a@test.example", ["b@test.example"], message(mid, size))
    except smtplib.SMTPResponseException as e:
        return int(e.smtp_code)
    except smtplib.SMTPRecipientsRefused as e:
        return int(next(iter(e.recipients.values()))[0])
    return 250


def api(http: int, path: str) -> tuple[int, bytes, float]:
    start = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http}{path}", timeout=30) as r:
            return r.status, r.read(), time.monotonic() - start
    except urllib.error.HTTPError as e:
        return e.code, e.read(), time.monotonic() - start


@pytest.mark.parametrize("workers", ["2", "0"])
def test_full_disk_loses_no_acknowledged_mail(workers: str) -> None:
    with small_filesystem("24m") as fs:
        db = fs / "store.db"
        acked: list[str] = []
        with serve_process(db, "--smtp-workers", workers, "--max", "0", "--indexer", "thread") as (
            _,
            smtp,
            http,
        ):
            for i in range(5):  # some mail on a disk with room
                assert send(smtp, f"before-{i}@t", 20_000) == 250
                acked.append(f"before-{i}@t")
            filler = fs / "filler"
            fill(filler)
            refused = 0
            for i in range(40):  # the disk is full: 451 at once, nothing acknowledged and lost
                mid = f"full-{i}@t"
                code = send(smtp, mid, 30_000)
                if code == 250:
                    acked.append(mid)
                else:
                    assert 400 <= code < 500, code
                    refused += 1
            assert refused, "a full disk should refuse mail with 451"
            # meanwhile the API answers, without waiting for the stuck writer
            status, _, took = api(http, "/api/v1/messages?limit=5")
            assert status == 200 and took < 5, (status, took)
            status, _, took = api(http, "/api/v1/message/latest")
            assert status in (200, 404) and took < 5, (status, took)
            filler.unlink()  # space is back: mail is accepted again, without a restart
            codes = []
            deadline = time.monotonic() + 20
            for i in range(20):
                mid = f"after-{i}@t"
                code = send(smtp, mid, 20_000)
                while code != 250 and time.monotonic() < deadline:
                    time.sleep(0.5)  # the store retries its failed batch first
                    code = send(smtp, mid, 20_000)
                codes.append(code)
                if code == 250:
                    acked.append(mid)
            assert codes == [250] * 20, codes
            # every acknowledged message is in the API now (read-your-writes)
            status, body, took = api(http, "/api/v1/messages?limit=1000")
            assert status == 200 and took < 5, (status, took)
            listed = {m["MessageID"] for m in json.loads(body)["messages"]}
            missing = set(acked) - listed
            assert not missing, f"{len(missing)} acknowledged messages not in the API: {sorted(missing)[:5]}"
        # ... and after a restart (the journals replayed, nothing deleted unread)
        with serve_process(db, "--smtp-workers", workers, "--max", "0", "--indexer", "thread"):
            pass
        conn = sqlite3.connect(db)
        stored = {r[0] for r in conn.execute("SELECT message_id FROM message")}
        conn.close()
        lost = set(acked) - stored
        assert not lost, f"{len(lost)} acknowledged messages lost: {sorted(lost)[:5]}"
