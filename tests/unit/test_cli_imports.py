"""``postroom serve`` loads only what serving needs before it answers: the other commands'
modules (``check`` with its HTTP, DNS and DKIM clients, ``fetch``, ``send``) are not imported
by parsing a ``serve`` command line, while ``postroom --help`` still lists every command."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "postroom.checks.cli",
    "postroom.checks.report",
    "postroom.fetch.cli",
    "postroom.outbound.cli",
    "dkim",
)


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return out.stdout


def test_parsing_serve_imports_no_other_command() -> None:
    loaded = _run(
        "import sys\n"
        "from postroom import cli\n"
        "# parsed, then refused by the setting check before anything starts\n"
        "assert cli.main(['serve', '--log-level', 'nonsense']) == 2\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    assert loaded.strip() == ""


def test_the_full_parser_still_has_every_command() -> None:
    listed = _run(
        "from postroom.cli import build_parser\n"
        "p = build_parser()\n"
        "print(' '.join(p._subparsers._group_actions[0].choices))\n"
    ).split()
    assert {"serve", "send", "check", "fetch"} <= set(listed)
