"""``postroom check FILE.eml...``: the checks on files, with an exit code for CI.

Runs the same report as ``GET /api/v2/message/{ID}/checks`` on each file (HTML
support, deliverability lint, authentication; link check and SpamAssassin when
asked) and prints the findings, or the reports as JSON with ``--json``. The exit
status is 1 when any finding is at or above ``--fail-on`` (``error`` by default;
``warning`` counts warnings too), 2 when a file cannot be read, else 0.

A file has no stored envelope, so SPF takes the sender from ``Return-Path`` and the
connecting IP from the topmost ``Received`` field (what postroom itself adds; see
:func:`postroom.checks.auth.input_from_headers`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from ..cli import command
from ..config import ConfigError, parse_dns_server, parse_hostport
from .report import Checker, CheckOptions

__all__ = ["check"]

MAX_FILE = 100 * 1024 * 1024  # bytes read per file (twice SMTP's default size limit)
_RANK = {"error": 0, "warning": 1, "info": 2}


def _setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE.eml", help="messages to check (RFC 5322 files)")
    p.add_argument(
        "--fail-on",
        choices=("warning", "error"),
        default="error",
        help="exit 1 when a finding is this severe or worse (default: error)",
    )
    p.add_argument("--json", action="store_true", help="print the reports as JSON (one array)")
    p.add_argument("--links", action="store_true", help="also check the links (makes HTTP requests)")
    p.add_argument("--follow", action="store_true", help="with --links: follow redirects")
    p.add_argument("--link-check-private", action="store_true", help="with --links: allow private addresses")
    p.add_argument("--spamd", metavar="HOST:PORT", default="", help="score with this spamd")
    p.add_argument(
        "--dns", metavar="HOST[:PORT]", default="", help="DNS server for SPF/DKIM/DMARC ('off': not checked)"
    )


def _print_report(name: str, rep: dict[str, Any]) -> None:
    s = rep["Summary"]
    facts = [f"SPF {s['SPF']}", f"DKIM {s['DKIM']}", f"DMARC {s['DMARC']}"]
    if s["HTMLSupported"] is not None:
        facts.append(f"HTML {s['HTMLSupported']:g}% supported")
    if s["SpamScore"] is not None:
        facts.append(f"spam score {s['SpamScore']:g}")
    if s["LinkErrors"] is not None:
        facts.append(f"{s['LinkErrors']} broken link(s)")
    print(f"{name}: {s['Errors']} error(s), {s['Warnings']} warning(s); " + ", ".join(facts))
    for f in rep["Findings"]:
        print(f"  {f['Severity']:<8} {f['Code']}: {f['Message']}")
        print(f"  {'':<8} fix: {f['Fix']}")


async def _run(args: argparse.Namespace, files: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    options = CheckOptions(
        spamd=parse_hostport(args.spamd, "spamd") if args.spamd else None,
        link_allow_private=args.link_check_private,
        dns_server=parse_dns_server(args.dns) if args.dns and args.dns != "off" else None,
        dns_off=args.dns == "off",
    )
    checker = Checker(options)
    reports = []
    for name, raw in files:
        rep = await checker.report(f"file:{name}", raw, None, links=args.links, follow=args.follow)
        rep["ID"] = name
        reports.append(rep)
    return reports


@command("check", "check messages for HTML support, deliverability and authentication (exit 1 on findings)")
def check(args: argparse.Namespace) -> int:
    files = []
    for name in args.files:
        try:
            with open(name, "rb") as f:
                raw = f.read(MAX_FILE + 1)
        except OSError as e:
            print(f"postroom: cannot read {name}: {e.strerror or e}", file=sys.stderr)
            return 2
        if len(raw) > MAX_FILE:
            raise ConfigError(f"{name} is larger than {MAX_FILE // (1024 * 1024)} MiB")
        files.append((str(Path(name)), raw))
    reports = asyncio.run(_run(args, files))
    if args.json:
        print(json.dumps(reports, indent=2, ensure_ascii=False))
    else:
        for (name, _), rep in zip(files, reports, strict=True):
            _print_report(name, rep)
    limit = _RANK[args.fail_on]
    failed = any(_RANK[f["Severity"]] <= limit for rep in reports for f in rep["Findings"])
    return 1 if failed else 0


check.setup = _setup  # type: ignore[attr-defined]
