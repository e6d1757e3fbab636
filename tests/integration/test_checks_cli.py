"""`postroom check FILE.eml...`: findings, JSON, exit codes for CI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.dns_zone import dns_server, txt
from tests.integration.test_checks_auth import DKIM_TXT, _signed

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "checks"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "postroom", "check", *args], capture_output=True, text=True, timeout=120
    )


def test_exit_codes_follow_fail_on(tmp_path: Path) -> None:
    nodate = tmp_path / "nodate.eml"
    nodate.write_bytes(
        b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\nMessage-ID: <1@x>\r\n\r\nhi\r\n"
    )
    r = run("--dns", "off", str(nodate))
    assert r.returncode == 1, r.stderr
    assert "error    no-date" in r.stdout and "fix: Add a Date header" in r.stdout
    clean = VECTORS / "unsupported-css.eml"
    r = run("--dns", "off", str(clean))
    assert r.returncode == 0 and "HTML" in r.stdout and "% supported" in r.stdout
    warn = tmp_path / "warn.eml"
    warn.write_bytes(clean.read_bytes().replace(b"Subject: Flex newsletter", b"Subject: "))
    assert run("--dns", "off", str(warn)).returncode == 0  # a warning only
    assert run("--dns", "off", "--fail-on", "warning", str(warn)).returncode == 1


def test_json_output_and_unreadable_file(tmp_path: Path) -> None:
    r = run("--dns", "off", "--json", str(VECTORS / "unsupported-css.eml"))
    reports = json.loads(r.stdout)
    assert len(reports) == 1 and reports[0]["Sections"]["HTML"]["State"] == "done"
    assert reports[0]["Sections"]["Authentication"]["State"] == "not checked"
    missing = run(str(tmp_path / "nope.eml"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "cannot read" in missing.stderr


def test_envelope_from_return_path_and_received(tmp_path: Path) -> None:
    zones = {
        ("local.test", "TXT"): [txt("v=spf1 ip4:192.0.2.0/24 -all")],
        ("sel._domainkey.local.test", "TXT"): DKIM_TXT,
        ("_dmarc.local.test", "TXT"): [txt("v=DMARC1; p=reject")],
    }
    trace = (
        b"Return-Path: <bounce@local.test>\r\n"
        b"Received: from mta.local.test ([192.0.2.25])\r\n\tby postroom (postroom) with ESMTP id x;\r\n"
        b"\tFri, 04 Dec 2026 10:00:01 +0000\r\n"
    )
    eml = tmp_path / "signed.eml"
    eml.write_bytes(trace + _signed("news@local.test", "local.test"))
    with dns_server(zones) as (host, port):
        r = run("--dns", f"{host}:{port}", "--json", str(eml))
        rep = json.loads(r.stdout)[0]
        spf = rep["Sections"]["Authentication"]["Result"]["SPF"]
        assert (spf["IP"], spf["MailFrom"], spf["Result"]) == ("192.0.2.25", "bounce@local.test", "pass")
        assert (rep["Summary"]["DKIM"], rep["Summary"]["DMARC"]) == ("pass", "pass")
        assert r.returncode == 0, rep["Findings"]
