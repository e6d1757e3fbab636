"""SpamAssassin check against a real spamd started here (Debian's spamassassin, shipped rules)."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from postroom.checks.spam import SpamdError, parse_reply
from tests.helpers import free_port, running_server, running_spamd
from tests.integration._api_client import Api, smtp_send
from tests.integration.test_checks_html import validate

# The GTUBE line (SpamAssassin's documented test string; any message with it scores 1000).
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@pytest.fixture(scope="module")
def spamd() -> Iterator[tuple[str, int]]:
    with running_spamd() as addr:
        yield addr


def _mail(subject: str, body: str) -> EmailMessage:
    m = EmailMessage()
    m["From"] = "Ann <ann@example.org>"
    m["To"] = "bob@example.org"
    m["Subject"] = subject
    m["Date"] = "Fri, 04 Dec 2026 10:00:00 +0000"
    m["Message-ID"] = f"<{subject.replace(' ', '-')}@example.org>"
    m.set_content(body)
    return m


def test_gtube_is_spam_and_a_plain_message_is_not(spamd: tuple[str, int]) -> None:
    host, port = spamd
    with running_server(enable_spamassassin=f"{host}:{port}") as s:
        api = Api(s)
        smtp_send(s, _mail("gtube", f"Hello,\n\n{GTUBE}\n"), ["bob@example.org"])
        smtp_send(s, _mail("lunch", "Hi Bob,\n\nLunch at noon tomorrow?\n\nAnn\n"), ["bob@example.org"])
        api.wait_indexed()
        ids = {m["Subject"]: m["ID"] for m in api.get("/api/v1/messages").json()["messages"]}
        assert api.get("/api/v1/webui").json()["SpamAssassin"] is True

        spam = api.get(f"/api/v1/message/{ids['gtube']}/sa-check")
        assert spam.status == 200, spam.text
        body = spam.json()
        validate("SpamAssassinResponse", body)
        assert (
            body["Error"] == "" and body["IsSpam"] is True and body["Score"] >= 900
        )  # GTUBE scores 1000, other rules may take a point or two off
        gtube = next(r for r in body["Rules"] if r["Name"] == "GTUBE")
        assert gtube["Score"] == 1000 and "Unsolicited Bulk Email" in gtube["Description"]

        ham = api.get(f"/api/v1/message/{ids['lunch']}/sa-check").json()
        validate("SpamAssassinResponse", ham)
        assert ham["Error"] == "" and ham["IsSpam"] is False and ham["Score"] < 5
        assert all(r["Name"] != "GTUBE" for r in ham["Rules"])


def test_not_configured_is_400_and_unreachable_is_an_error_field() -> None:
    with running_server() as s:
        api = Api(s)
        mid = api.send(From={"Email": "a@example.com"}, To=[{"Email": "b@example.com"}], Text="x")
        r = api.get(f"/api/v1/message/{mid}/sa-check")
        assert r.status == 400 and "--enable-spamassassin" in r.text
        assert api.get("/api/v1/webui").json()["SpamAssassin"] is False
    with running_server(enable_spamassassin=f"127.0.0.1:{free_port()}") as s:  # nothing listens there
        api = Api(s)
        mid = api.send(From={"Email": "a@example.com"}, To=[{"Email": "b@example.com"}], Text="x")
        body = api.get(f"/api/v1/message/{mid}/sa-check").json()
        validate("SpamAssassinResponse", body)
        assert body["Error"].startswith("cannot reach spamd") and body["IsSpam"] is False


def test_report_parsing_wrapped_descriptions_and_errors() -> None:
    reply = (
        b"SPAMD/1.1 0 EX_OK\r\nContent-length: 300\r\nSpam: False ; -0.9 / 5.0\r\n\r\n"
        b"Content analysis details:   (-0.9 points, 5.0 required)\n\n"
        b" pts rule name              description\n"
        b"---- ---------------------- --------------------------------------------------\n"
        b"-1.9 BAYES_00               BODY: Bayes spam probability is 0 to 1%\n"
        b"                            [score: 0.0000]\n"
        b" 1.0 FOO_BAR                Something\n\n"
    )
    r = parse_reply(reply)
    assert r["Score"] == -0.9 and r["IsSpam"] is False
    assert r["Rules"][0] == {
        "Score": -1.9,
        "Name": "BAYES_00",
        "Description": "BODY: Bayes spam probability is 0 to 1% [score: 0.0000]",
    }
    assert [x["Name"] for x in r["Rules"]] == ["BAYES_00", "FOO_BAR"]
    with pytest.raises(SpamdError, match="76 EX_PROTOCOL"):
        parse_reply(b"SPAMD/1.0 76 EX_PROTOCOL\r\n\r\n")
    with pytest.raises(SpamdError):
        parse_reply(b"HTTP/1.1 200 OK\r\n\r\n")
