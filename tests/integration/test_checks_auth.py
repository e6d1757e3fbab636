"""SPF, DKIM, ARC and DMARC against a local authoritative DNS server holding test zones."""

from __future__ import annotations

import base64
import smtplib
import socket
from collections.abc import Iterator

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from postroom.checks.auth import NOT_CHECKED, AuthInput, authenticate, peer_ip
from postroom.checks.dns import Dns, organizational_domain
from postroom.checks.spf import check_host
from tests.dns_zone import dns_server, txt
from tests.helpers import running_server
from tests.integration._api_client import Api

KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)
PRIV = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
PUB = base64.b64encode(
    KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
).decode()
DKIM_TXT = [txt(f"v=DKIM1; k=rsa; p={PUB}")]

ZONES = {
    ("shop.test", "TXT"): [txt("v=spf1 ip4:192.0.2.0/24 a:mx.shop.test include:_spf.partner.test -all")],
    ("mx.shop.test", "A"): ["198.51.100.7"],
    ("_spf.partner.test", "TXT"): [txt("v=spf1 ip6:2001:db8::/32 ~all")],
    ("soft.test", "TXT"): [txt("v=spf1 ip4:192.0.2.1 ~all")],
    ("neutral.test", "TXT"): [txt("v=spf1 ?all")],
    ("none.test", "A"): ["192.0.2.1"],
    ("perm.test", "TXT"): [txt("v=spf1 -all"), txt("v=spf1 +all")],
    ("redirect.test", "TXT"): [txt("v=spf1 redirect=shop.test")],
    ("mxonly.test", "TXT"): [txt("v=spf1 mx -all")],
    ("mxonly.test", "MX"): ["10 mx.shop.test."],
    ("exists.test", "TXT"): [txt("v=spf1 exists:%{i}._ip.%{d} -all")],
    ("192.0.2.55._ip.exists.test", "A"): ["127.0.0.2"],
    ("loop.test", "TXT"): [txt("v=spf1 include:loop.test -all")],
    # 2,000+ bytes: too large for UDP, so the resolver must retry over TCP
    ("long.test", "TXT"): [txt("v=spf1 " + " ".join(f"ip4:203.0.{i}.0/24" for i in range(120)) + " -all")],
    ("sel._domainkey.shop.test", "TXT"): DKIM_TXT,
    ("sel._domainkey.mail.shop.test", "TXT"): DKIM_TXT,
    ("sel._domainkey.mail.relaxed.test", "TXT"): DKIM_TXT,
    ("sel._domainkey.lists.test", "TXT"): DKIM_TXT,
    ("_dmarc.shop.test", "TXT"): [txt("v=DMARC1; p=reject; adkim=s; aspf=r")],
    ("_dmarc.relaxed.test", "TXT"): [txt("v=DMARC1; p=quarantine")],
    ("mail.relaxed.test", "TXT"): [txt("v=spf1 ip4:192.0.2.0/24 -all")],
}


@pytest.fixture(scope="module")
def dns() -> Iterator[Dns]:
    with dns_server(ZONES, servfail={"broken.test", "_dmarc.broken.test"}) as addr:
        yield Dns(addr, timeout=2)


@pytest.mark.parametrize(
    ("domain", "ip", "expected"),
    [
        ("shop.test", "192.0.2.9", "pass"),  # ip4
        ("shop.test", "198.51.100.7", "pass"),  # a:mx.shop.test
        ("shop.test", "2001:db8::1", "pass"),  # include:_spf.partner.test passes
        ("shop.test", "2001:db9::1", "fail"),  # include answers softfail: no match, then -all
        ("shop.test", "203.0.113.1", "fail"),
        ("soft.test", "203.0.113.1", "softfail"),
        ("neutral.test", "203.0.113.1", "neutral"),
        ("broken.test", "192.0.2.1", "temperror"),  # SERVFAIL
        ("none.test", "192.0.2.1", "none"),
        ("nowhere.test", "192.0.2.1", "none"),  # NXDOMAIN
        ("perm.test", "192.0.2.1", "permerror"),  # two records
        ("loop.test", "192.0.2.1", "permerror"),  # include of itself
        ("redirect.test", "192.0.2.9", "pass"),
        ("redirect.test", "203.0.113.1", "fail"),
        ("mxonly.test", "198.51.100.7", "pass"),
        ("exists.test", "192.0.2.55", "pass"),  # macro %{i}
        ("exists.test", "192.0.2.56", "fail"),
        ("long.test", "203.0.119.9", "pass"),  # over TCP
        ("long.test", "203.0.120.9", "fail"),
    ],
)
def test_spf(dns: Dns, domain: str, ip: str, expected: str) -> None:
    result, why = check_host(dns, ip, domain, f"bounce@{domain}")
    assert result == expected, why


def _message(from_: str, body: str = "Hello there.\r\n") -> bytes:
    return (
        f"From: Shop <{from_}>\r\nTo: ann@example.org\r\nSubject: Order\r\n"
        f"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <o1@shop.test>\r\n\r\n{body}"
    ).encode()


def _signed(from_: str, d: str) -> bytes:
    raw = _message(from_)
    sig = dkim.sign(raw, b"sel", d.encode(), PRIV, include_headers=[b"from", b"to", b"subject", b"date"])
    return sig + raw


def test_signed_message_verifies_and_a_changed_body_fails(dns: Dns) -> None:
    signed = _signed("news@shop.test", "shop.test")
    ok = authenticate(AuthInput(signed, "192.0.2.9", "bounce@shop.test", "mx"), dns)
    assert [(d["Domain"], d["Selector"], d["Result"]) for d in ok["DKIM"]] == [("shop.test", "sel", "pass")]
    assert (
        ok["SPF"]["Result"] == "pass"
        and ok["DMARC"]["Result"] == "pass"
        and ok["DMARC"]["Policy"] == "reject"
    )
    assert "dkim=pass header.d=shop.test" in ok["AuthenticationResults"]
    tampered = signed.replace(b"Hello there.", b"Hello there!")
    bad = authenticate(AuthInput(tampered, "203.0.113.1", "bounce@shop.test", "mx"), dns)
    assert bad["DKIM"][0]["Result"] == "fail" and "body hash" in bad["DKIM"][0]["Reason"]
    assert bad["SPF"]["Result"] == "fail" and bad["DMARC"]["Result"] == "fail"
    unknown_key = authenticate(AuthInput(_signed("news@nokey.test", "nokey.test"), "", "", ""), dns)
    assert unknown_key["DKIM"][0]["Result"] == "permerror"


def test_dmarc_alignment_strict_and_relaxed(dns: Dns) -> None:
    # shop.test says adkim=s: a signature of mail.shop.test passes but does not align.
    strict = authenticate(AuthInput(_signed("news@shop.test", "mail.shop.test"), "203.0.113.1", "", ""), dns)
    assert strict["DKIM"][0]["Result"] == "pass"
    assert strict["DMARC"]["Result"] == "fail" and strict["DMARC"]["DKIMAligned"] is False
    assert strict["DMARC"]["Alignment"] == {"SPF": "relaxed", "DKIM": "strict"}
    # aspf=r: the envelope domain mail.shop.test... has no SPF; use relaxed.test's below.
    relaxed = authenticate(
        AuthInput(_signed("news@relaxed.test", "mail.relaxed.test"), "203.0.113.1", "", ""), dns
    )
    assert relaxed["DMARC"]["Result"] == "pass" and relaxed["DMARC"]["DKIMAligned"] is True
    assert relaxed["DMARC"]["Policy"] == "quarantine"
    # relaxed SPF alignment: MAIL FROM at a subdomain that passes SPF.
    spf_only = authenticate(
        AuthInput(_message("news@relaxed.test"), "192.0.2.3", "bounce@mail.relaxed.test", "mx"), dns
    )
    assert spf_only["SPF"]["Result"] == "pass" and spf_only["DMARC"]["SPFAligned"] is True
    assert spf_only["DMARC"]["Result"] == "pass" and spf_only["DKIM"] == []
    temp = authenticate(AuthInput(_message("news@broken.test"), "", "", ""), dns)
    assert temp["DMARC"]["Result"] == "temperror"


def test_arc_chain_verifies(dns: Dns) -> None:
    raw = b"Authentication-Results: lists.test; dkim=pass header.d=shop.test\r\n" + _signed(
        "news@shop.test", "shop.test"
    )
    arc = dkim.arc_sign(
        raw, b"sel", b"lists.test", PRIV, b"lists.test", include_headers=[b"from", b"subject"]
    )
    chained = b"".join(arc) + raw
    r = authenticate(AuthInput(chained, "", "", ""), dns)
    assert r["ARC"]["Result"] == "pass", r["ARC"]
    broken = chained.replace(b"Hello there.", b"Hello again.")
    assert authenticate(AuthInput(broken, "", "", ""), dns)["ARC"]["Result"] == "fail"


def test_offline_is_not_checked_never_a_failure() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # nothing listens on that port now: every query is refused
    for resolver in (Dns(("127.0.0.1", port), timeout=1), Dns.off(), None):
        r = authenticate(
            AuthInput(_signed("news@shop.test", "shop.test"), "192.0.2.9", "b@shop.test", "mx"), resolver
        )
        assert r["Offline"] is True
        assert r["SPF"]["Result"] == NOT_CHECKED and r["DKIM"][0]["Result"] == NOT_CHECKED
        assert r["DMARC"]["Result"] == NOT_CHECKED


def test_helpers() -> None:
    assert peer_ip("192.0.2.1:2525") == "192.0.2.1"
    assert peer_ip("[2001:db8::1]:2525") == "2001:db8::1"
    assert peer_ip("2001:db8::1") == "2001:db8::1"
    assert peer_ip("") == ""
    assert organizational_domain("a.b.example.co.uk") in ("example.co.uk", "co.uk")
    assert organizational_domain("mail.shop.test") == "shop.test"


def test_report_route_uses_the_stored_envelope() -> None:
    zones = dict(ZONES)
    zones[("local.test", "TXT")] = [txt("v=spf1 ip4:127.0.0.1 -all")]
    zones[("sel._domainkey.local.test", "TXT")] = DKIM_TXT
    zones[("_dmarc.local.test", "TXT")] = [txt("v=DMARC1; p=reject")]
    with dns_server(zones) as (host, port), running_server(checks_dns=f"{host}:{port}") as s:
        api = Api(s)
        good = _signed("news@local.test", "local.test")
        with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=30) as c:
            c.ehlo("client.local.test")
            c.sendmail("bounce@local.test", ["ann@example.org"], good)
            c.sendmail("bounce@shop.test", ["ann@example.org"], _message("news@shop.test"))
        api.wait_indexed()
        ids = [m["ID"] for m in api.get("/api/v1/messages").json()["messages"]]  # newest first
        r = api.get(f"/api/v2/message/{ids[1]}/checks?links=false")
        assert r.status == 200, r.text
        rep = r.json()
        auth = rep["Sections"]["Authentication"]
        assert auth["State"] == "done" and auth["Ms"] >= 0
        assert (
            auth["Result"]["SPF"]["IP"] == "127.0.0.1"
            and auth["Result"]["SPF"]["MailFrom"] == "bounce@local.test"
        )
        assert (rep["Summary"]["SPF"], rep["Summary"]["DKIM"], rep["Summary"]["DMARC"]) == (
            "pass",
            "pass",
            "pass",
        )
        assert rep["Sections"]["Links"]["State"] == "disabled"
        assert rep["Sections"]["Spam"]["State"] == "disabled"
        assert rep["Sections"]["HTML"]["State"] == "not checked"  # text only
        assert rep["Summary"]["Errors"] == 0, rep["Findings"]
        bad = api.get(f"/api/v2/message/{ids[0]}/checks?links=false").json()
        assert bad["Summary"]["SPF"] == "fail" and bad["Summary"]["DMARC"] == "fail"
        codes = {f["Code"]: f["Severity"] for f in bad["Findings"]}
        assert (
            codes["spf-fail"] == "error" and codes["dkim-none"] == "error" and codes["dmarc-fail"] == "error"
        )
        assert all(f["Fix"] for f in bad["Findings"])
        assert api.get(f"/api/v2/message/{ids[0]}/checks?links=maybe").status == 400
        assert api.get("/api/v2/message/nope/checks").status == 404


def test_long_records_come_over_tcp() -> None:
    """The local server truncates the long record over UDP: the SPF pass above used TCP."""
    import dns.flags
    import dns.message
    import dns.query

    with dns_server(ZONES) as (host, port):
        q = dns.message.make_query("long.test", "TXT")
        udp = dns.query.udp(q, host, port=port, timeout=2)
        assert udp.flags & dns.flags.TC and not udp.answer
        tcp = dns.query.tcp(q, host, port=port, timeout=2)
        assert len(b"".join(tcp.answer[0][0].strings)) > 1500
