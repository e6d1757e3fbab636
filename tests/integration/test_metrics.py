"""``GET /metrics``: Prometheus' text format, the counters it promises, behind the API's auth."""

from __future__ import annotations

import base64
import imaplib
import poplib
import re
import smtplib
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from postroom.events import DeliveryAttempted
from postroom.store.outbound import NewDelivery
from tests.helpers import RunningServer, running_server
from tests.integration._api_client import Api, smtp_send

SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-z_]+="(?:[^"\\\n]|\\.)*"\})? (-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)$'
)


def parse(text: str) -> dict[str, float]:
    """Samples by name and labels; fails on any line outside the exposition format, a metric
    without HELP and TYPE before its samples, or TYPE given twice."""
    assert text.endswith("\n")
    typed: set[str] = set()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram") and name not in typed, line
            typed.add(name)
            if kind == "histogram":
                typed |= {name + "_bucket", name + "_sum", name + "_count"}
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        assert m.group(1) in typed, f"{m.group(1)} has no TYPE line"
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def test_metrics_count_what_happened() -> None:
    with running_server(chaos="message:554:100%:times=1", ui_auth="ops:secret") as s:
        api = Api(s)
        auth = {"Authorization": "Basic " + base64.b64encode(b"ops:secret").decode()}
        url = s.http_url + "/metrics"
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(url, timeout=10)
        assert denied.value.code == 401  # protected like the API
        with pytest.raises(smtplib.SMTPDataError):  # chaos refuses the first message
            smtp_send(s, b"Subject: one\r\n\r\nx\r\n", ["a@example.org"])
        smtp_send(s, b"Subject: two\r\n\r\nx\r\n", ["a@example.org"])
        # two rows in the outbound queue, as a release without a running worker leaves them
        s.app.store.outbound.enqueue(  # type: ignore[attr-defined]
            [NewDelivery("m0", "release", "a@example.org", f"r{i}@example.org", b"x") for i in range(2)],
            give_up_after=3600,
        )
        s.app.bus.publish(DeliveryAttempted("m1", "x@example.org", "sent", "250 ok", 1))
        s.app.bus.publish(DeliveryAttempted("m2", "y@example.org", "retry", "451 later", 1, 99.0))
        api.wait_indexed()
        with urllib.request.urlopen(urllib.request.Request(url, headers=auth), timeout=10) as r:
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            m = parse(r.read().decode())
    assert m["postroom_messages_received_total"] == 1 and m["postroom_messages"] == 1
    assert m["postroom_smtp_sessions_total"] == 2 and m["postroom_smtp_rejected_total"] == 1
    assert m['postroom_outbound_attempts_total{outcome="delivered"}'] == 1
    assert m['postroom_outbound_attempts_total{outcome="deferred"}'] == 1
    assert m['postroom_outbound_attempts_total{outcome="bounced"}'] == 0
    assert m['postroom_outbound_queue{state="queued"}'] == 2
    assert m['postroom_outbound_queue{state="sending"}'] == 0
    assert m["mailpit_messages"] == 1 and m["mailpit_smtp_rejected_total"] == 1
    assert m["postroom_memory_bytes"] > 0 and "postroom_smtp_sessions" in m
    # histograms: the one stored message's size, and HTTP answers (the refused scrape among them)
    assert (
        m["postroom_message_size_bytes_count"] == 1
        and m['postroom_message_size_bytes_bucket{le="+Inf"}'] == 1
    )
    assert m['postroom_message_size_bytes_bucket{le="1000"}'] == 1  # a small message
    assert (
        m['postroom_http_requests_total{code="4xx"}'] >= 1
        and m["postroom_http_request_duration_seconds_count"] >= 1
    )


def test_metrics_count_imap_and_pop3_sessions_and_logins(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("alice@example.org:right\n")
    with running_server(auth_file=str(users), auth_failure_delay=0.0) as s:
        imap_host, imap_port = s.addr("imap")
        with imaplib.IMAP4(imap_host, imap_port, timeout=10) as imap:
            with pytest.raises(imaplib.IMAP4.error):
                imap.login("alice@example.org", "wrong")
            imap.login("alice@example.org", "right")
            m = parse(_scrape(s))
            assert m["postroom_imap_sessions"] == 1  # this one, still open
            imap.logout()
        pop_host, pop_port = s.addr("pop3")
        pop = poplib.POP3(pop_host, pop_port, timeout=10)
        pop.user("alice@example.org")
        pop.pass_("right")
        pop.quit()
        for _ in range(2):
            pop = poplib.POP3(pop_host, pop_port, timeout=10)
            pop.user("alice@example.org")
            with pytest.raises(poplib.error_proto):
                pop.pass_("wrong")
            pop.quit()
        deadline = time.monotonic() + 10  # a session is counted closed once its task ends
        while (m := parse(_scrape(s)))["postroom_pop3_sessions"] and time.monotonic() < deadline:
            time.sleep(0.05)
    assert m["postroom_imap_sessions_total"] == 1 and m["postroom_imap_refused_total"] == 0
    assert m['postroom_imap_logins_total{result="ok"}'] == 1
    assert m['postroom_imap_logins_total{result="failed"}'] == 1
    assert m["postroom_pop3_sessions_total"] == 3
    assert m['postroom_pop3_logins_total{result="ok"}'] == 1
    assert m['postroom_pop3_logins_total{result="failed"}'] == 2
    assert m["postroom_pop3_sessions"] == 0 and m["postroom_imap_sessions"] == 0  # all closed


def _scrape(s: RunningServer) -> str:
    with urllib.request.urlopen(s.http_url + "/metrics", timeout=10) as r:
        return str(r.read().decode())
