"""Interop: the npm ``mailpit-api`` client (Mailpit's TypeScript client) lists, reads and deletes on postroom."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from tests.helpers import RunningServer, require_tool

NODE_DIR = Path(__file__).parent / "node-mailpit"

pytestmark = pytest.mark.interop


def _install(npm: str) -> None:
    if (NODE_DIR / "node_modules" / "mailpit-api").is_dir():
        return
    # the lock file pins mailpit-api@2.1.0 (see ../shared/NOTES.md)
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, capture_output=True, timeout=300
    )


def test_mailpit_api_client(server: RunningServer) -> None:
    node = require_tool("node", "nodejs")
    _install(require_tool("npm", "npm"))
    out = subprocess.run(
        [node, "run.mjs", server.http_url], cwd=NODE_DIR, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["listed"] == ["second", "from mailpit-api"]
    assert seen["attachment"] == "attached"
    assert seen["text"].strip() == "hello from node"
    assert seen["finalTotal"] == 0
    assert "css-display-flex" in seen["htmlWarnings"] and seen["linkErrors"] == 1
