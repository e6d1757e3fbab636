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


# what the HTTP listener's modules must not import until a route needs it: the checks (DKIM,
# DNS), the relay (DNS) and the fetch service (its IMAP client) cost ~0.17 s of CPU, spent
# while the SMTP port is already open and the first mail arrives (docs/performance.md)
ON_FIRST_USE = (
    "postroom.checks.report",
    "postroom.outbound.service",
    "postroom.fetch.service",
    "dkim",
    "dns.resolver",
)


def test_the_http_listener_loads_checks_relay_and_fetch_on_first_use() -> None:
    loaded = _run(
        "import sys\n"
        "import postroom.servers.http\n"
        "from postroom.web.app import create_app\n"
        f"print(' '.join(m for m in {ON_FIRST_USE!r} if m in sys.modules))\n"
    )
    assert loaded.strip() == ""
