"""Fault injection: every stage and action against real SMTP clients (smtplib, aiosmtplib)."""

from __future__ import annotations

import asyncio
import json
import smtplib
import socket
import urllib.error
import urllib.request
from typing import Any

import aiosmtplib
import pytest

from postroom.runtime.chaos import parse_spec
from postroom.testing import ChaosError, Fault, Server

STAGES = ["connect", "helo", "auth", "mail", "rcpt", "data", "message"]
BODY = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: chaos\r\n\r\nbody\r\n"


@pytest.fixture(scope="module")
def server() -> Any:
    with Server(pop3=False, imap=False) as s:
        yield s


@pytest.fixture(autouse=True)
def _reset(server: Server) -> Any:
    yield
    server.chaos.clear()
    server.clear()


def smtplib_send(port: int, rcpts: list[str], *, auth: bool, sender: str = "a@example.com") -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo_or_helo_if_needed()  # raises SMTPHeloError (c.ehlo() would not)
        if auth:
            c.login("user", "secret")
        c.sendmail(sender, rcpts, BODY)


async def aiosmtplib_send(port: int, rcpts: list[str], *, auth: bool, sender: str = "a@example.com") -> None:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=10, start_tls=False)
    await client.connect()
    try:
        await client.ehlo()
        if auth:
            await client.login("user", "secret")
        await client.sendmail(sender, rcpts, BODY)
    finally:
        if client.is_connected:
            client.close()


def smtplib_code(exc: BaseException) -> int:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return int(next(iter(exc.recipients.values()))[0])
    return int(getattr(exc, "smtp_code", 0))


def aiosmtplib_code(exc: BaseException) -> int:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return int(exc.recipients[0].code)
    return int(getattr(exc, "code", 0))


@pytest.mark.parametrize("stage", STAGES)
def test_reject_each_stage_smtplib(server: Server, stage: str) -> None:
    fault = server.chaos.reject(stage, "554 5.7.0 chaos says no")
    with pytest.raises(smtplib.SMTPException) as err:
        smtplib_send(server.smtp_port, ["b@example.com"], auth=stage == "auth")
    assert smtplib_code(err.value) == 554
    assert fault.fired >= 1
    server.assert_not_received()


@pytest.mark.parametrize("stage", STAGES)
def test_reject_each_stage_aiosmtplib(server: Server, stage: str) -> None:
    server.chaos.reject(stage, "451 4.3.0 chaos: try later")
    with pytest.raises(aiosmtplib.SMTPException) as err:
        asyncio.run(aiosmtplib_send(server.smtp_port, ["b@example.com"], auth=stage == "auth"))
    assert aiosmtplib_code(err.value) == 451
    server.assert_not_received()


@pytest.mark.parametrize("stage", STAGES)
def test_disconnect_each_stage(server: Server, stage: str) -> None:
    server.chaos.disconnect(stage)
    with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
        smtplib_send(server.smtp_port, ["b@example.com"], auth=stage == "auth")
    with pytest.raises((aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError, ConnectionError)):
        asyncio.run(aiosmtplib_send(server.smtp_port, ["b@example.com"], auth=stage == "auth"))
    server.assert_not_received()


@pytest.mark.parametrize("stage", ["connect", "rcpt", "message"])
def test_delay_holds_the_reply(server: Server, stage: str) -> None:
    server.chaos.delay(stage, 3.0, times=1)
    # a client that waits less than the delay gives up (at "message", the server still
    # stores the message once the delay is over: the classic duplicate-delivery case)
    with (
        pytest.raises((socket.timeout, smtplib.SMTPServerDisconnected, TimeoutError)),
        smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=0.5) as c,
    ):
        c.sendmail("a@example.com", ["b@example.com"], BODY)
    assert not server.chaos.active  # fired once: the hook is gone
    smtplib_send(server.smtp_port, ["b@example.com"], auth=False)
    expected = 2 if stage == "message" else 1
    assert len(server.wait_for(count=expected, timeout=10)) == expected


def test_delay_then_reply_and_then_success(server: Server) -> None:
    server.chaos.delay("mail", 0.2, reply="421 4.4.2 slow and closing", times=1)
    with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPServerDisconnected)):
        smtplib_send(server.smtp_port, ["b@example.com"], auth=False)
    smtplib_send(server.smtp_port, ["b@example.com"], auth=False)
    server.assert_received(count=1)


def test_next_n_messages(server: Server) -> None:
    fault = server.chaos.reject("message", "452 4.3.1 full", times=2)
    outcomes = []
    for _ in range(4):
        try:
            smtplib_send(server.smtp_port, ["b@example.com"], auth=False)
            outcomes.append(250)
        except smtplib.SMTPDataError as e:
            outcomes.append(e.smtp_code)
    assert outcomes == [452, 452, 250, 250]
    assert fault.fired == 2 and fault.exhausted
    assert server.app.smtp_hooks == []  # nothing left to do: the hook is out
    server.assert_received(count=2)


def test_probability(server: Server) -> None:
    never = server.chaos.reject("rcpt", 550, probability=0.0)
    smtplib_send(server.smtp_port, ["b@example.com"], auth=False)
    assert never.fired == 0
    server.chaos.clear()
    server.chaos.seed(7)
    half = server.chaos.reject("rcpt", "550 5.1.1 coin says no", probability=0.5)
    rcpts = [f"r{i}@example.com" for i in range(40)]
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as c:
        refused = c.sendmail("a@example.com", rcpts, BODY)
    assert 0 < len(refused) < 40 and len(refused) == half.fired
    stored = server.wait_for(subject="chaos", count=2)[1]
    assert stored.envelope is not None
    assert sorted(stored.envelope.rcpt_to) == sorted(set(rcpts) - set(refused))


def test_matching_recipients_and_sender(server: Server) -> None:
    server.chaos.reject("rcpt", "550 5.1.1 no such user", recipients="*@bounce.example")
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as c:
        refused = c.sendmail("a@example.com", ["ok@example.com", "x@bounce.example"], BODY)
    assert refused == {"x@bounce.example": (550, b"5.1.1 no such user")}
    [m] = server.wait_for(count=1)
    assert m.envelope is not None and m.envelope.rcpt_to == ("ok@example.com",)
    server.chaos.clear()
    server.chaos.reject("mail", "550 5.7.1 not you", sender="re:spam.*@.*")
    with pytest.raises(smtplib.SMTPSenderRefused):
        smtplib_send(server.smtp_port, ["b@example.com"], auth=False, sender="spammer@example.com")
    smtplib_send(server.smtp_port, ["b@example.com"], auth=False, sender="friend@example.com")
    server.assert_received(from_="friend@example.com", count=1)


def test_cli_spec_at_start() -> None:
    with Server(
        chaos="rcpt:550 5.1.1 unknown:rcpt=*@nx.example;mail:451:times=1", pop3=False, imap=False
    ) as s:
        with pytest.raises(smtplib.SMTPSenderRefused) as err:
            smtplib_send(s.smtp_port, ["b@example.com"], auth=False)
        assert err.value.smtp_code == 451
        with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
            refused = c.sendmail("a@example.com", ["b@example.com", "c@nx.example"], BODY)
        assert refused == {"c@nx.example": (550, b"5.1.1 unknown")}


def test_spec_parser() -> None:
    [a, b, c, d] = parse_spec(
        "Sender:451:10; rcpt:delay=2s:50%:times=3; message:disconnect:from=x@*; data:552 5.3.4 big"
    )
    assert (a.stage, a.reply and a.reply.code, a.probability) == ("mail", 451, 0.1)
    assert (b.action, b.seconds, b.probability, b.times) == ("delay", 2.0, 0.5, 3)
    assert (c.action, c.sender) == ("disconnect", "x@*")
    assert d.reply is not None and (d.reply.code, d.reply.enhanced, d.reply.lines) == (552, "5.3.4", ("big",))
    for bad in (
        "rcpt",
        "nowhere:451",
        "rcpt:250",
        "rcpt:451:colour=red",
        "mail:451:rcpt=*@x",
        "rcpt:delay=x",
    ):
        with pytest.raises(ChaosError):
            parse_spec(bad)
    with pytest.raises(ChaosError, match="probability"):
        Fault("rcpt", probability=2)


def _http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_mailpit_chaos_api(server: Server) -> None:
    url = server.http_url + "/api/v1/chaos"
    status, body = _http("GET", url)
    assert status == 200 and body["Recipient"] == {"ErrorCode": 451, "Probability": 0}
    status, body = _http("PUT", url, {"Recipient": {"ErrorCode": 550, "Probability": 100}})
    assert status == 200 and body["Recipient"] == {"ErrorCode": 550, "Probability": 100}
    assert body["Sender"]["Probability"] == 0
    with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
        smtplib_send(server.smtp_port, ["b@example.com"], auth=False)
    assert smtplib_code(err.value) == 550
    status, body = _http("PUT", url, {"Sender": {"ErrorCode": 600, "Probability": 5}})
    assert status == 400 and "ErrorCode" in body
    status, body = _http("PUT", url, {})
    assert status == 200 and all(t["Probability"] == 0 for t in body.values())
    smtplib_send(server.smtp_port, ["b@example.com"], auth=False)
    server.assert_received(count=1)
    assert _http("GET", server.http_url + "/api/v1/webui")[1]["ChaosEnabled"] is True


def test_postroom_chaos_api(server: Server) -> None:
    url = server.http_url + "/api/v2/chaos"
    status, body = _http("PUT", url, {"Spec": "data:553 5.7.0 from the api:times=1"})
    assert status == 200 and body["Faults"][0]["Stage"] == "data"
    with pytest.raises(smtplib.SMTPDataError) as err:
        smtplib_send(server.smtp_port, ["b@example.com"], auth=False)
    assert err.value.smtp_code == 553
    assert _http("GET", url)[1]["Faults"][0]["Fired"] == 1
    assert _http("PUT", url, {"Spec": "rcpt:abc"})[0] == 400


def test_chaos_api_disabled_unless_enabled() -> None:
    from tests.helpers import running_server

    with running_server(pop3="off", imap="off") as s:
        status, body = _http("GET", s.http_url + "/api/v1/chaos")
        assert status == 400 and "not enabled" in body
        assert _http("PUT", s.http_url + "/api/v1/chaos", {})[0] == 400
    with running_server(pop3="off", imap="off", enable_chaos=True) as s:
        assert _http("GET", s.http_url + "/api/v1/chaos")[0] == 200
