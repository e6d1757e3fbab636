"""Dovecot's imaptest scripted RFC compliance tests against postroom, and against a real
Dovecot in the same run for reference (issue 19).

imaptest is built from the project's shared tools (``<repo>/../shared/tools/imaptest``:
the pinned source and ``build.sh``) into ``~/.cache/imaptest`` once; ``run-scripted.sh``
runs every test group of its ``src/tests`` directory against a server. A group fails when
any command's reply differs from the RFC behaviour the script expects. Groups for
extensions a server does not advertise are skipped by imaptest itself; docs/imap.md lists
the ones postroom leaves out and why.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers import IN_CI, free_port, running_dovecot, wait_for_port

pytestmark = [pytest.mark.interop, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT.parent / "shared" / "tools" / "imaptest"
SUMMARY = re.compile(rb"^(\d+) test groups: (\d+) failed, (\d+) skipped", re.MULTILINE)
# Building imaptest the first time (configure and make) takes a few minutes on 2 cores.
BUILD_SECONDS = 1200
RUN_SECONDS = 600


@pytest.fixture(scope="module")
def imaptest() -> Path:
    """The run-scripted.sh of the shared tools, with imaptest built (and cached)."""
    if not (TOOLS / "build.sh").is_file():
        reason = f"imaptest sources not found at {TOOLS} (the shared/ directory beside the repository)"
        if IN_CI:
            pytest.fail(reason + " -- CI must not skip for this")
        pytest.skip(reason)
    r = subprocess.run(["sh", str(TOOLS / "build.sh")], capture_output=True, timeout=BUILD_SECONDS)
    if r.returncode != 0:
        pytest.fail(f"building imaptest failed: {r.stderr.decode(errors='replace')[-2000:]}")
    return TOOLS / "run-scripted.sh"


def run_scripted(script: Path, port: int) -> tuple[int, int, str]:
    """(groups, failed groups, output) of the scripted tests against 127.0.0.1:port."""
    r = subprocess.run(
        ["sh", str(script), str(port), "alice@example.org", "bob@example.org", "secret"],
        capture_output=True,
        timeout=RUN_SECONDS,
    )
    out = r.stdout + r.stderr
    m = SUMMARY.search(out)
    assert m is not None, f"no imaptest summary (exit {r.returncode}): {out[-3000:]!r}"
    return int(m.group(1)), int(m.group(2)), out.decode("utf-8", "replace")


@pytest.fixture
def postroom_imap(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "postroom", "serve", "--smtp", "off", "--http", "off", "--pop3", "off",
         "--imap", f"127.0.0.1:{port}", "--db", str(tmp_path / "db"), "--smtp-workers", "0", "--quiet"],
    )  # fmt: skip
    try:
        wait_for_port(port, proc=proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(20)


def failures(out: str) -> str:
    """The failed commands of an imaptest run, for the assertion message."""
    return "\n".join(line for line in out.splitlines() if line.startswith(("*** Test", " - failed")))[:6000]


@pytest.mark.timeout(BUILD_SECONDS + RUN_SECONDS)
def test_imaptest_scripted_against_postroom(imaptest: Path, postroom_imap: int) -> None:
    groups, failed, out = run_scripted(imaptest, postroom_imap)
    assert groups >= 60, out[-2000:]
    assert failed == 0, failures(out)


@pytest.mark.timeout(BUILD_SECONDS + RUN_SECONDS)
def test_imaptest_scripted_against_dovecot(imaptest: Path) -> None:
    with running_dovecot("postroom-imaptest-") as (imap_port, _):
        groups, failed, out = run_scripted(imaptest, imap_port)
    assert groups >= 60, out[-2000:]
    assert failed == 0, failures(out)
