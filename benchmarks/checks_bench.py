"""What each check costs per message (docs/checks.md), so the ingest path never runs one.

Checks run on demand (the API, the UI's tabs, ``postroom check``), never while mail is
received; this measures what a request pays, on one core, for:

* ``small`` (a 1 KB text message), ``html`` (benchmarks/fixtures.py: 14 KB HTML, 60 links)
  and ``newsletter`` (tests/vectors/checks/unsupported-css.eml's HTML with its CSS
  repeated to ~120 KB, a long marketing mail);
* each check: parsing (``parse_message``, shared by the others), the HTML check, the lint,
  authentication (DKIM-signed, SPF with an include, DMARC; against a local DNS server on
  loopback, so the figure is CPU plus loopback round trips, not the internet), the link
  check of the ``html`` fixture's 60 URLs against a local HTTP server (cold cache; 8 at
  once), and SpamAssassin through a spamd started here (when installed).

Rounds are interleaved (every check on every message, then again), median of the rounds.

  python benchmarks/checks_bench.py [--rounds 5]

``suite(quick)`` is the entry point of ``benchmarks/run.py``.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rows_suite

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import dkim  # noqa: E402
import fixtures  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from tests.dns_zone import dns_server, txt  # noqa: E402
from tests.integration.test_checks_links import serving  # noqa: E402

from postroom.checks import caniemail  # noqa: E402
from postroom.checks.auth import AuthInput, authenticate  # noqa: E402
from postroom.checks.dns import Dns  # noqa: E402
from postroom.checks.html import html_check  # noqa: E402
from postroom.checks.links import LinkChecker, extract_links  # noqa: E402
from postroom.checks.lint import lint  # noqa: E402
from postroom.checks.spam import spam_check  # noqa: E402
from postroom.message import parse_message  # noqa: E402


def _messages() -> dict[str, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    flex = (ROOT / "tests" / "vectors" / "checks" / "unsupported-css.eml").read_bytes()
    head, _, tail = flex.partition(b"</style>")
    style = head[head.index(b"<style>") + 7 :]
    newsletter = head + style * 400 + b"</style>" + tail.replace(b"<p>Sale</p>", b"<p>Sale</p>" * 600)
    out = {"small": fixtures.build("small"), "html": fixtures.build("html"), "newsletter": newsletter}
    signed = {}
    for name, raw in out.items():
        raw = raw.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")
        raw = raw.replace(b"shop.example.com", b"shop.test").replace(b"shop.example", b"shop.test")
        sig = dkim.sign(
            raw, b"sel", b"shop.test", priv, include_headers=[b"from", b"to", b"subject", b"date"]
        )
        signed[name] = sig + raw
    pub = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import base64

    signed["__key__"] = base64.b64encode(pub)
    return signed


def _spamd() -> tuple[subprocess.Popen[bytes], int] | None:
    exe = shutil.which("spamd")
    if exe is None:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = tempfile.mkdtemp(prefix="postroom-bench-spamd-")
    cmd = [exe, "--listen", f"127.0.0.1:{port}", "-L", "-x", "--min-children", "1", "--max-children", "1"]
    cmd += ["--pidfile", f"{tmp}/pid", "-s", f"{tmp}/log", "-u", "nobody"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    return None


def measure(rounds: int) -> list[dict[str, Any]]:
    msgs = _messages()
    key = msgs.pop("__key__").decode()
    zones = {
        ("shop.test", "TXT"): [txt("v=spf1 ip4:192.0.2.0/24 include:_spf.mail.test -all")],
        ("_spf.mail.test", "TXT"): [txt("v=spf1 ip4:198.51.100.0/24 ~all")],
        ("sel._domainkey.shop.test", "TXT"): [txt(f"v=DKIM1; k=rsa; p={key}")],
        ("_dmarc.shop.test", "TXT"): [txt("v=DMARC1; p=reject")],
    }
    spamd = _spamd()
    times: dict[tuple[str, str], list[float]] = {}
    hits: list[str] = []
    try:
        with dns_server(zones) as dns_addr, serving(hits) as web_port:
            link_pm = parse_message(fixtures.build("html"))
            base = f"http://127.0.0.1:{web_port}/ok?"
            checks: dict[str, Callable[[bytes], Any]] = {
                "parse": parse_message,
                "html check": lambda raw: (
                    html_check(parse_message(raw).html) if b"text/html" in raw else None
                ),
                "lint": lambda raw: lint(raw, parse_message(raw)),
                "authentication": lambda raw: authenticate(
                    AuthInput(raw, "192.0.2.7", "bounce@shop.test", "mx.shop.test"), Dns(dns_addr)
                ),
            }
            if spamd is not None:
                checks["spamassassin"] = lambda raw: asyncio.run(spam_check(raw, "127.0.0.1", spamd[1]))
            for r in range(rounds + 1):  # round 0 warms up (caches, spamd's child) and is not kept
                # the HTML check's first call in a process loads the caniemail data (535 KB JSON)
                caniemail._data.cache_clear()
                caniemail.features.cache_clear()
                caniemail.platforms.cache_clear()
                t0 = time.perf_counter()
                html_check(parse_message(msgs["html"]).html)
                if r:
                    times.setdefault(("html check, first call (loads the data)", "html"), []).append(
                        (time.perf_counter() - t0) * 1000
                    )
                for name, raw in msgs.items():
                    for check, fn in checks.items():
                        if check == "html check" and b"text/html" not in raw:
                            continue
                        t0 = time.perf_counter()
                        fn(raw)
                        if r:
                            times.setdefault((check, name), []).append((time.perf_counter() - t0) * 1000)
                # links: a fresh checker (cold cache) on the 60 URLs of the html fixture
                urls = [
                    u.replace("https://shop.example.com/t/", base) for u in extract_links(link_pm.html, "")
                ]
                assert len(urls) == 60, urls
                t0 = time.perf_counter()
                result = asyncio.run(LinkChecker(allow_private=True).check(urls))
                if r:
                    times.setdefault(("link check (60 URLs, local)", "html"), []).append(
                        (time.perf_counter() - t0) * 1000
                    )
                assert result["Errors"] == 0, result
    finally:
        if spamd is not None:
            spamd[0].terminate()
            spamd[0].wait(10)
    sizes = {name: len(raw) for name, raw in msgs.items()}
    return [
        {
            "check": check,
            "message": name,
            "size_kb": round(sizes[name] / 1024, 1),
            "median_ms": round(statistics.median(v), 2),
        }
        for (check, name), v in times.items()
    ]


def markdown(rows: list[dict[str, Any]]) -> str:
    names = list(dict.fromkeys(r["message"] for r in rows))
    sizes = {r["message"]: r["size_kb"] for r in rows}
    checks = list(dict.fromkeys(r["check"] for r in rows))
    cell = {(r["check"], r["message"]): r["median_ms"] for r in rows}
    head = "| check | " + " | ".join(f"{n} ({sizes[n]:g} KB) (ms)" for n in names) + " |"
    lines = [head, "| --- |" + " ---: |" * len(names)]
    for c in checks:
        lines.append(
            f"| {c} | " + " | ".join(f"{cell[(c, n)]:g}" if (c, n) in cell else "—" for n in names) + " |"
        )
    return "\n".join(lines)


def suite(quick: bool) -> dict[str, Any]:
    return rows_suite.suite(
        "Checks: cost per message (median of interleaved rounds, on demand, never at ingest)",
        measure(2 if quick else 5),
        markdown,
    )


if __name__ == "__main__":
    rows_suite.main(measure, markdown, "--rounds", 5)
