"""The end-to-end suite of the npm ``mailpit-api`` and ``mailpit-ws`` packages against postroom.

That suite (``tests/e2e.spec.ts`` of github.com/mpspahr/mailpit-api, MIT) was written
against a real Mailpit: it sends through ``POST /api/v1/send``, compares whole JSON objects
and WebSocket events with Mailpit's shapes, renders, checks, tags, sets chaos triggers and
deletes. The project's shared tools hold its source at a fixed commit and
``run-e2e.sh BASE_URL USER PASSWORD``, which installs it once (``npm ci`` from its lock file,
into ``~/.cache/mailpit-api-e2e``) and runs it.

postroom is started as that suite's CI starts Mailpit, with Mailpit's environment variables
only: chaos enabled, UI basic auth, SpamAssassin on (a private spamd; without one outside
CI the suite's SpamAssassin test skips itself). Mailpit's relay is off there too, so the
suite skips ``releaseMessage()``, as it does against Mailpit.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers import IN_CI, free_port, require_tool, running_spamd, wait_for_port

pytestmark = [pytest.mark.interop, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SUITE = Path(os.environ.get("POSTROOM_MAILPIT_E2E", ROOT.parent / "shared" / "tools" / "mailpit-api-e2e"))
USER, PASSWORD = "e2e-user", "e2e-password"
# The first run installs the suite's npm packages (about 30 s); a run takes about 10 s.
RUN_SECONDS = 600
SUMMARY = re.compile(r"Tests\s+(?:(\d+) failed\s*\|\s*)?(\d+) passed(?:\s*\|\s*(\d+) skipped)?\s*\((\d+)\)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def spamd_addr() -> Iterator[str]:
    if shutil.which("spamd") is None and not IN_CI:
        yield ""  # the suite skips its SpamAssassin test when the server has none
        return
    with running_spamd() as (host, port):
        yield f"{host}:{port}"


@pytest.fixture
def mailpit_style_server(tmp_path: Path, spamd_addr: str) -> Iterator[str]:
    """``postroom serve`` configured by Mailpit's variables only; yields its base URL."""
    smtp, http = free_port(), free_port()
    (tmp_path / "ui-auth").write_text(f"{USER}:{PASSWORD}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTROOM_", "MP_"))}
    env.update(
        MP_SMTP_BIND_ADDR=f"127.0.0.1:{smtp}",
        MP_UI_BIND_ADDR=f"127.0.0.1:{http}",
        MP_DATABASE=str(tmp_path / "mailpit.db"),
        MP_ENABLE_CHAOS="true",
        MP_UI_AUTH_FILE=str(tmp_path / "ui-auth"),
        # POP3 and IMAP are postroom's; off so that no default port is taken
        POSTROOM_POP3="off",
        POSTROOM_IMAP="off",
    )
    if spamd_addr:
        env["MP_ENABLE_SPAMASSASSIN"] = spamd_addr
    proc = subprocess.Popen([sys.executable, "-m", "postroom", "serve", "--quiet"], env=env)
    try:
        wait_for_port(http, proc=proc)
        wait_for_port(smtp, proc=proc)
        yield f"http://127.0.0.1:{http}"
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(20)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(RUN_SECONDS + 60)
def test_mailpit_api_e2e_suite(mailpit_style_server: str) -> None:
    script = SUITE / "run-e2e.sh"
    if not script.is_file():
        reason = f"the mailpit-api e2e suite is not at {SUITE} (the shared/ directory beside the repository)"
        if IN_CI:
            pytest.fail(reason + " -- CI must not skip for this")
        pytest.skip(reason)
    require_tool("node", "nodejs")
    require_tool("npm", "npm")
    # The suite skips its chaos (and SpamAssassin) tests, and passes, on a server without
    # them: check first that Mailpit's variables took effect.
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        mailpit_style_server + "/api/v1/webui", headers={"Authorization": f"Basic {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        webui = json.load(reply)
    assert webui["ChaosEnabled"] is True
    assert webui["SpamAssassin"] is bool(IN_CI or shutil.which("spamd"))
    r = subprocess.run(
        ["sh", str(script), mailpit_style_server, USER, PASSWORD],
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
    )
    out = ANSI.sub("", r.stdout + r.stderr)
    m = SUMMARY.search(out)
    assert m is not None, f"no vitest summary (exit {r.returncode}):\n{out[-4000:]}"
    failed, passed, total = int(m.group(1) or 0), int(m.group(2)), int(m.group(4))
    assert failed == 0 and r.returncode == 0, out[out.find("Failed Tests") :][:6000]
    assert passed == total == 29, out[-2000:]  # every test of the suite at its pinned commit ran
