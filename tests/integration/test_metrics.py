"""``GET /metrics``: Prometheus' text format, the counters it promises, behind the API's auth."""

from __future__ import annotations

import base64
import re
import smtplib
import urllib.error
import urllib.request

import pytest

from postroom.events import DeliveryAttempted
from tests.helpers import running_server
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
