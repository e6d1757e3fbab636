"""Release, relay and forward through the outbound queue, against a real upstream: a second
postroom that injects 451 and 550 replies (chaos)."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import RunningServer, free_port, require_tool, running_server, wait_for_port

MSG = b"From: App <app@example.org>\r\nTo: someone@example.org\r\nSubject: relay me\r\nMessage-ID: <r1@example.org>\r\n\r\nhello\r\n"


def api(s: RunningServer, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        s.http_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read()
    return json.loads(text) if text.strip().startswith((b"{", b"[")) else text.decode()


def wait_until(pred: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def relay_file(tmp_path: Path, upstream: RunningServer, **extra: Any) -> str:
    lines = [
        "host: 127.0.0.1",
        f"port: {upstream.smtp_port}",
        "retry-base: 0.3s",
        "retry-max: 2s",
        "retry-for: 60s",
    ]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in extra.items()]
    path = tmp_path / "relay.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def upstream_boxes(up: RunningServer, box: str) -> int:
    return int(up.app.store.list_messages(mailbox=box).total)


def send(s: RunningServer, rcpts: list[str], data: bytes = MSG) -> str:
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
        c.sendmail("app@example.org", rcpts, data)
    return str(s.app.store.list_messages().messages[0].id)


CHAOS = (
    "rcpt:550 5.1.1 no such user:rcpt=*@bounce.example;rcpt:451 4.3.0 try later:rcpt=*@soft.example:times=2"
)


def test_release_retries_soft_failures_with_backoff_and_suppresses_hard_bounces(tmp_path: Path) -> None:
    with running_server(chaos=CHAOS, pop3="off", imap="off", http="off") as up, \
            running_server(pop3="off", imap="off", smtp_relay_config=relay_file(tmp_path, up)) as s:  # fmt: skip
        mid = send(s, ["someone@example.org"])
        assert api(s, "GET", "/api/v1/webui")["MessageRelay"]["Enabled"] is True
        rcpts = ["ok@example.net", "soft@soft.example", "bad@bounce.example"]
        assert api(s, "POST", f"/api/v1/message/{mid}/release", {"To": rcpts}) == "ok"

        def settled() -> list[dict[str, Any]] | None:
            rows = api(s, "GET", f"/api/v2/message/{mid}/deliveries")
            return rows if all(r["State"] in ("sent", "failed") for r in rows) and len(rows) == 3 else None

        rows = {r["To"]: r for r in wait_until(settled)}
        assert rows["ok@example.net"]["State"] == "sent" and rows["ok@example.net"]["Attempts"] == 1
        soft = rows["soft@soft.example"]
        assert soft["State"] == "sent" and soft["Attempts"] == 3
        outcomes = [h["Outcome"] for h in soft["History"]]
        assert outcomes == ["retry", "retry", "sent"] and "451" in soft["History"][0]["Reply"]
        times = [
            datetime.fromisoformat(h["Time"].replace("Z", "+00:00")).timestamp() for h in soft["History"]
        ]
        assert times[-1] - times[0] >= 0.3  # backed off, not hammered
        bad = rows["bad@bounce.example"]
        assert (
            bad["State"] == "failed" and bad["Attempts"] == 1 and "5.1.1" in bad["LastReply"]
        )  # never retried
        assert [x["Address"] for x in api(s, "GET", "/api/v2/suppressions")] == ["bad@bounce.example"]
        # delivered once each, and nothing for the hard bounce
        assert upstream_boxes(up, "ok@example.net") == 1 and upstream_boxes(up, "soft@soft.example") == 1
        assert upstream_boxes(up, "bad@bounce.example") == 0
        # a suppressed address is not tried again
        api(s, "POST", f"/api/v1/message/{mid}/release", {"To": ["bad@bounce.example"]})
        rows2 = api(s, "GET", f"/api/v2/message/{mid}/deliveries")
        assert rows2[0]["To"] == "bad@bounce.example" and rows2[0]["State"] == "suppressed"
        # the list is editable
        assert api(s, "DELETE", "/api/v2/suppressions/bad@bounce.example") == "ok"
        assert api(s, "GET", "/api/v2/suppressions") == []


def test_release_refuses_what_the_config_forbids_and_without_a_relay(tmp_path: Path) -> None:
    with running_server(pop3="off", imap="off", http="off") as up:
        path = relay_file(tmp_path, up, allowed_recipients=r"'@example\.net$'", blocked_recipients="'^ceo@'")
        with running_server(pop3="off", imap="off", smtp_relay_config=path) as s:
            mid = send(s, ["someone@example.org"])
            for to in (["x@other.org"], ["ceo@example.net"]):
                with pytest.raises(urllib.error.HTTPError) as e:
                    api(s, "POST", f"/api/v1/message/{mid}/release", {"To": to})
                assert e.value.code == 400 and b"does not allow" in e.value.read()
    with running_server(pop3="off", imap="off") as plain:
        mid = send(plain, ["someone@example.org"])
        with pytest.raises(urllib.error.HTTPError) as e:
            api(plain, "POST", f"/api/v1/message/{mid}/release", {"To": ["a@example.net"]})
        assert e.value.code == 400 and b"--smtp-relay-config" in e.value.read()
        assert api(plain, "GET", "/api/v1/webui")["MessageRelay"]["Enabled"] is False


def test_relay_matching_and_forward_happen_after_the_250(tmp_path: Path) -> None:
    with running_server(pop3="off", imap="off", http="off") as up:
        fwd = tmp_path / "forward.yaml"
        fwd.write_text(f"host: 127.0.0.1\nport: {up.smtp_port}\nto: archive@example.com, audit@example.com\n")
        with running_server(pop3="off", imap="off", smtp_relay_config=relay_file(tmp_path, up),
                            smtp_relay_matching=r"@relay\.example$", smtp_forward_config=str(fwd)) as s:  # fmt: skip
            send(s, ["a@relay.example", "b@local.example"])
            wait_until(
                lambda: (
                    upstream_boxes(up, "a@relay.example") == 1
                    and upstream_boxes(up, "audit@example.com") == 1
                )
            )
            assert upstream_boxes(up, "archive@example.com") == 1
            time.sleep(0.5)
            assert upstream_boxes(up, "b@local.example") == 0  # not matching: kept local


def test_a_slow_upstream_never_slows_the_sender(tmp_path: Path) -> None:
    with (
        running_server(chaos="data:delay=5", pop3="off", imap="off", http="off") as up,
        running_server(
            pop3="off",
            imap="off",
            smtp_relay_config=relay_file(tmp_path, up, timeout="5s"),
            smtp_relay_all=True,
        ) as s,
    ):
        per_message = []
        with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
            for i in range(20):
                t0 = time.monotonic()
                c.sendmail("app@example.org", [f"u{i}@example.net"], MSG)
                per_message.append(time.monotonic() - t0)
        # the upstream takes 5 s a message; the sender's own time stays far below it
        assert max(per_message) < 2.5, per_message

        # relaying is decided after the 250: every message gets its row, most still wait on the upstream
        def all_queued() -> dict[str, int] | None:
            counts: dict[str, int] = api(s, "GET", "/api/v2/outbound")["Counts"]
            return counts if sum(counts.values()) == 20 else None

        assert wait_until(all_queued).get("sent", 0) < 20


def test_rate_limit_holds(tmp_path: Path) -> None:
    with running_server(pop3="off", imap="off", http="off") as up:
        path = relay_file(tmp_path, up, rate=4, burst=1, concurrency=4)
        with running_server(pop3="off", imap="off", smtp_relay_config=path) as s:
            mid = send(s, ["someone@example.org"])
            t0 = time.monotonic()
            api(s, "POST", f"/api/v1/message/{mid}/release", {"To": [f"r{i}@example.net" for i in range(9)]})
            wait_until(
                lambda: all(r["State"] == "sent" for r in api(s, "GET", f"/api/v2/message/{mid}/deliveries"))
            )
            elapsed = time.monotonic() - t0
            assert elapsed >= 8 / 4 * 0.9, elapsed  # 9 messages at 4 a second, one at once: >= 2 s


def test_relayed_mail_is_dkim_signed_and_verifies(tmp_path: Path) -> None:
    import base64

    import dkim
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    (tmp_path / "dkim.pem").write_bytes(pem)
    pub = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(pub)
    with running_server(pop3="off", imap="off", http="off") as up:
        path = relay_file(
            tmp_path, up, dkim_domain="example.org", dkim_selector="s1", dkim_key=str(tmp_path / "dkim.pem")
        )
        with running_server(pop3="off", imap="off", smtp_relay_config=path) as s:
            mid = send(s, ["someone@example.org"])
            api(s, "POST", f"/api/v1/message/{mid}/release", {"To": ["signed@example.net"]})
            wait_until(lambda: upstream_boxes(up, "signed@example.net") == 1)
            got = up.app.store.get_raw(
                up.app.store.list_messages(mailbox="signed@example.net").messages[0].id
            )
            assert got is not None
            relayed = got[got.index(b"DKIM-Signature:") :]  # without the upstream's own Received line
            assert b"d=example.org" in relayed and b"s=s1" in relayed

            def dns(name: bytes, timeout: int = 5) -> bytes:
                return record if name == b"s1._domainkey.example.org." else b""

            assert dkim.verify(relayed, dnsfunc=dns)
            assert not dkim.verify(relayed.replace(b"hello", b"HELLO"), dnsfunc=dns)  # a changed body fails


def _serve(db: Path, relay: str) -> tuple[subprocess.Popen[bytes], int, int]:
    smtp, http = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "postroom", "serve", "--smtp", f"127.0.0.1:{smtp}", "--http", f"127.0.0.1:{http}",
         "--pop3", "off", "--imap", "off", "--db", str(db), "--quiet", "--smtp-relay-config", relay, "--smtp-relay-all"],
        start_new_session=True,
    )  # fmt: skip
    wait_for_port(http, proc=proc)
    wait_for_port(smtp, proc=proc)
    return proc, smtp, http


def _get(http: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{http}{path}", timeout=30) as r:
        return json.load(r)


def test_queued_mail_survives_kill_9_and_is_sent_once(tmp_path: Path) -> None:
    upstream_port = free_port()
    relay = tmp_path / "relay.yaml"
    relay.write_text(
        f"host: 127.0.0.1\nport: {upstream_port}\nretry-base: 0.2s\nretry-max: 0.5s\nretry-for: 10m\n"
    )
    db = tmp_path / "store.db"
    proc, smtp, http = _serve(db, str(relay))
    try:
        with smtplib.SMTP("127.0.0.1", smtp, timeout=20) as c:
            for i in range(10):
                c.sendmail("app@example.org", [f"k{i}@example.net"], MSG)
        # the upstream is down: every row is queued and being retried
        wait_until(lambda: _get(http, "/api/v2/outbound")["Counts"].get("queued", 0)
                   + _get(http, "/api/v2/outbound")["Counts"].get("sending", 0) == 10)  # fmt: skip
        wait_until(lambda: all(d["Attempts"] >= 1 for d in _get(http, "/api/v2/outbound")["Deliveries"]))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(20)
    with running_server(smtp=f"127.0.0.1:{upstream_port}", pop3="off", imap="off", http="off") as up:
        proc, smtp, http = _serve(db, str(relay))
        try:
            wait_until(lambda: _get(http, "/api/v2/outbound")["Counts"] == {"sent": 10}, timeout=60)
            for i in range(10):
                assert upstream_boxes(up, f"k{i}@example.net") == 1
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)


def test_relay_to_postfix_smtp_sink(tmp_path: Path) -> None:
    sink = require_tool("smtp-sink", "postfix")
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    proc = subprocess.Popen([sink, *user, f"127.0.0.1:{port}", "100"], start_new_session=True)
    try:
        wait_for_port(port, proc=proc)
        path = tmp_path / "relay.yaml"
        path.write_text(f"host: 127.0.0.1\nport: {port}\nrate: 1000\nconcurrency: 10\n")
        with running_server(pop3="off", imap="off", smtp_relay_config=str(path)) as s:
            mid = send(s, ["someone@example.org"])
            api(s, "POST", f"/api/v1/message/{mid}/release", {"To": [f"s{i}@example.net" for i in range(50)]})
            wait_until(lambda: api(s, "GET", "/api/v2/outbound")["Counts"] == {"sent": 50})
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_each_attempt_is_a_websocket_event(tmp_path: Path) -> None:
    import asyncio

    import aiohttp

    with (
        running_server(chaos=CHAOS, pop3="off", imap="off", http="off") as up,
        running_server(pop3="off", imap="off", smtp_relay_config=relay_file(tmp_path, up)) as s,
    ):
        mid = send(s, ["someone@example.org"])

        async def watch() -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = []
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(s.http_url + "/api/events") as ws,
            ):
                await asyncio.to_thread(
                    api, s, "POST", f"/api/v1/message/{mid}/release", {"To": ["x@bounce.example"]}
                )
                async with asyncio.timeout(20):
                    async for msg in ws:
                        frame = json.loads(msg.data)
                        if frame["Type"] == "delivery":
                            got.append(frame["Data"])
                            break
            return got

        [event] = asyncio.run(watch())
        assert event["MessageID"] == mid and event["To"] == "x@bounce.example"
        assert event["Outcome"] == "failed" and "5.1.1" in event["Reply"] and event["Attempts"] == 1


def test_postroom_send_queue_goes_through_the_relay(tmp_path: Path) -> None:
    with (
        running_server(pop3="off", imap="off", http="off") as up,
        running_server(pop3="off", imap="off", smtp_relay_config=relay_file(tmp_path, up)) as s,
    ):
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
        postroom = str(Path(sys.executable).with_name("postroom"))
        r = subprocess.run(
            [postroom, "send", "--queue", "--url", s.http_url, "--from", "app@example.org",
             "--to", "q1@example.net, q2@example.net", "--subject", "queued", "--text", "hi"],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert "queued for 2 recipients" in r.stdout
        wait_until(
            lambda: upstream_boxes(up, "q1@example.net") == 1 and upstream_boxes(up, "q2@example.net") == 1
        )
        assert s.app.store.list_messages().total == 0  # it went out; it was never captured
        kinds = {d["Kind"] for d in api(s, "GET", "/api/v2/outbound")["Deliveries"]}
        assert kinds == {"send"}


def test_mx_delivery_resolves_each_domain(tmp_path: Path) -> None:
    from tests.dns_zone import dns_server

    zones = {
        ("mx.test", "MX"): ["20 backup.mx.test.", "10 smtp1.mx.test."],
        ("smtp1.mx.test", "A"): ["127.0.0.1"],
        ("backup.mx.test", "A"): ["127.0.0.1"],
        ("nullmx.test", "MX"): ["0 ."],
        ("plain.test", "A"): ["127.0.0.1"],  # no MX: the domain itself (RFC 5321 5.1)
    }
    with dns_server(zones) as (dns_host, dns_port), running_server(pop3="off", imap="off", http="off") as up:
        path = tmp_path / "mx.yaml"
        path.write_text(
            f"mx: true\nmx-port: {up.smtp_port}\ndns-server: {dns_host}:{dns_port}\nretry-base: 0.2s\n"
        )
        with running_server(pop3="off", imap="off", smtp_relay_config=str(path)) as s:
            mid = send(s, ["someone@example.org"])
            to = ["a@mx.test", "b@plain.test", "c@nullmx.test", "d@nowhere.test"]
            api(s, "POST", f"/api/v1/message/{mid}/release", {"To": to})

            def settled() -> dict[str, dict[str, Any]] | None:
                rows = {r["To"]: r for r in api(s, "GET", f"/api/v2/message/{mid}/deliveries")}
                return (
                    rows
                    if len(rows) == 4 and all(r["State"] in ("sent", "failed") for r in rows.values())
                    else None
                )

            rows = wait_until(settled)
            assert rows["a@mx.test"]["State"] == "sent" and rows["b@plain.test"]["State"] == "sent"
            assert (
                rows["a@mx.test"]["History"][0]["Destination"] == f"smtp1.mx.test:{up.smtp_port}"
            )  # lowest preference
            assert (
                rows["c@nullmx.test"]["State"] == "failed" and "null MX" in rows["c@nullmx.test"]["LastReply"]
            )
            assert (
                rows["d@nowhere.test"]["State"] == "failed"
                and "does not exist" in rows["d@nowhere.test"]["LastReply"]
            )
            assert upstream_boxes(up, "a@mx.test") == 1 and upstream_boxes(up, "b@plain.test") == 1
