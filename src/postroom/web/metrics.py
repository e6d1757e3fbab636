"""``GET /metrics``: counters and gauges in Prometheus' text exposition format (version 0.0.4).

Counters come from the event bus (messages stored, bytes, deleted, outbound attempts by
outcome, WebSocket-independent), from the SMTP listener's own tallies (sessions, refused
connections, messages answered with an error) and from the IMAP and POP3 listeners'
(sessions, refused connections, logins and failed logins); gauges are read at scrape time
(stored and unread messages, database size, open SMTP/IMAP/POP3 sessions, uptime, memory). The same
figures also appear under Mailpit's metric names (``mailpit_*``), so that a dashboard
built for Mailpit's ``--enable-prometheus`` keeps working.

The route sits behind the UI's basic auth like the API. Counting is per process: SMTP
worker processes (``--smtp-workers``) keep their own session tallies, which are not
added here (the messages they hand over are counted, as stored).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..events import DeliveryAttempted, Event, MessagesDeleted, MessagesPruned, MessageStored
from ..store.outbound import HasOutbound
from .common import APP_KEY, in_thread

__all__ = ["METRICS_KEY", "Histogram", "Metrics", "add_routes", "middleware", "render"]

# Prometheus' text format (https://prometheus.io/docs/instrumenting/exposition_formats/).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# DeliveryAttempted outcomes, as the metric's "outcome" label names them.
OUTCOMES = {"sent": "delivered", "retry": "deferred", "failed": "bounced", "suppressed": "suppressed"}

METRICS_KEY: web.AppKey[Metrics] = web.AppKey("postroom_metrics")


# Histogram buckets (upper bounds): message sizes in bytes, HTTP answer times in seconds.
SIZE_BUCKETS = (1_000, 10_000, 100_000, 1_000_000, 10_000_000, 50_000_000)
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Histogram:
    """Prometheus' cumulative histogram: observations per upper bound, their sum and count."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets = [0] * len(bounds)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.sum += value
        self.count += 1
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.buckets[i] += 1
                break

    def render(self, out: list[str], name: str, help_: str) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} histogram")
        total = 0
        for bound, n in zip(self.bounds, self.buckets, strict=True):
            total += n
            out.append(f'{name}_bucket{{le="{bound:g}"}} {total}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        out.append(f"{name}_sum {self.sum:.6g}")
        out.append(f"{name}_count {self.count}")


class Metrics:
    """Counters and histograms fed by the bus and the HTTP middleware (both on the loop's
    thread: no lock needed)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.sizes = Histogram(SIZE_BUCKETS)
        self.http_seconds = Histogram(SECONDS_BUCKETS)

    def on_event(self, ev: Event) -> None:
        if isinstance(ev, MessageStored):
            self.counts["received"] += 1
            self.counts["received_bytes"] += ev.summary.size
            self.sizes.observe(ev.summary.size)
        elif isinstance(ev, MessagesDeleted | MessagesPruned):
            self.counts["deleted"] += len(ev.ids)
        elif isinstance(ev, DeliveryAttempted):
            self.counts["outbound_" + OUTCOMES.get(ev.outcome, ev.outcome)] += 1


def _line(out: list[str], name: str, kind: str, help_: str, value: float, labels: str = "") -> None:
    if f"# TYPE {name} {kind}" not in out:  # a labelled metric's later lines share them
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
    text = str(int(value)) if float(value).is_integer() else repr(float(value))
    out.append(f"{name}{labels} {text}")


def render(
    counts: Counter[str],
    gauges: dict[str, float],
    smtp: Counter[str],
    tags: dict[str, int],
    m: Metrics | None = None,
    readers: dict[str, Counter[str]] | None = None,
    queue: dict[str, int] | None = None,
) -> str:
    """The exposition text of the given figures (one HELP and TYPE line per metric)."""
    out: list[str] = []
    if m is not None:
        m.sizes.render(out, "postroom_message_size_bytes", "sizes of the messages stored")
        m.http_seconds.render(out, "postroom_http_request_duration_seconds", "time to answer HTTP requests")
        for code in ("2xx", "3xx", "4xx", "5xx"):
            _line(out, "postroom_http_requests_total", "counter", "HTTP requests answered, by status class",
                  counts["http_" + code], f'{{code="{code}"}}')  # fmt: skip
    counters: list[tuple[str, str, int]] = [
        ("postroom_messages_received_total", "messages stored (SMTP, send API, import)", counts["received"]),
        ("postroom_messages_received_bytes_total", "bytes of the messages stored", counts["received_bytes"]),
        ("postroom_messages_deleted_total", "messages deleted or pruned", counts["deleted"]),
        ("postroom_smtp_sessions_total", "SMTP connections accepted", smtp["sessions"]),
        ("postroom_smtp_refused_total", "SMTP connections refused (too many open)", smtp["refused"]),
        ("postroom_smtp_rejected_total", "messages answered with an SMTP error", smtp["rejected"]),
    ]
    for name, help_, value in counters:
        _line(out, name, "counter", help_, value)
    for outcome in OUTCOMES.values():
        _line(out, "postroom_outbound_attempts_total", "counter", "outbound delivery attempts by outcome",
              counts["outbound_" + outcome], f'{{outcome="{outcome}"}}')  # fmt: skip
    for state in sorted({"queued", "sending", *(queue or {})}):  # the outbound queue's rows
        _line(out, "postroom_outbound_queue", "gauge", "outbound deliveries by state",
              (queue or {}).get(state, 0), f'{{state="{state}"}}')  # fmt: skip
    for proto, tally in sorted((readers or {}).items()):  # "imap", "pop3"
        label = proto.upper()
        _line(
            out,
            f"postroom_{proto}_sessions_total",
            "counter",
            f"{label} connections accepted",
            tally["sessions"],
        )
        _line(out, f"postroom_{proto}_refused_total", "counter", f"{label} connections refused (too many open)",
              tally["refused"])  # fmt: skip
        for result, key in (("ok", "logins"), ("failed", "login_failures")):
            _line(out, f"postroom_{proto}_logins_total", "counter", f"{label} logins by result", tally[key],
                  f'{{result="{result}"}}')  # fmt: skip
        _line(out, f"postroom_{proto}_sessions", "gauge", f"{label} sessions open", max(tally["open"], 0))
    for name, help_ in (
        ("postroom_messages", "messages in the store"),
        ("postroom_messages_unread", "unread messages in the store"),
        ("postroom_database_size_bytes", "bytes the store occupies on disk"),
        ("postroom_smtp_sessions", "SMTP sessions open"),
        ("postroom_uptime_seconds", "seconds since the server started"),
        ("postroom_memory_bytes", "resident memory of the server process"),
    ):
        _line(out, name, "gauge", help_, gauges[name])
    # Mailpit's names (its --enable-prometheus), from the same figures
    mailpit: tuple[tuple[str, str, str, float], ...] = (
        ("mailpit_messages", "gauge", "Total number of messages in the database", gauges["postroom_messages"]),
        ("mailpit_messages_unread", "gauge", "Number of unread messages", gauges["postroom_messages_unread"]),
        ("mailpit_database_size_bytes", "gauge", "Size of the database in bytes",
         gauges["postroom_database_size_bytes"]),
        ("mailpit_messages_deleted_total", "counter", "Total number of messages deleted", counts["deleted"]),
        ("mailpit_smtp_accepted_total", "counter", "Total number of SMTP messages accepted", counts["received"]),
        ("mailpit_smtp_accepted_size_bytes_total", "counter", "Total size of accepted SMTP messages in bytes",
         counts["received_bytes"]),
        ("mailpit_smtp_rejected_total", "counter", "Total number of SMTP messages rejected", smtp["rejected"]),
        ("mailpit_smtp_ignored_total", "counter", "Total number of SMTP messages ignored (duplicates)",
         smtp["ignored"]),
        ("mailpit_uptime_seconds", "gauge", "Uptime in seconds", gauges["postroom_uptime_seconds"]),
        ("mailpit_memory_usage_bytes", "gauge", "Memory usage in bytes", gauges["postroom_memory_bytes"]),
    )  # fmt: skip
    for name, kind, help_, figure in mailpit:
        _line(out, name, kind, help_, figure)
    for tag, n in sorted(tags.items()):
        escaped = tag.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        _line(out, "mailpit_tag_messages", "gauge", "Number of messages per tag", n, f'{{tag="{escaped}"}}')
    return "\n".join(out) + "\n"


async def metrics(request: web.Request) -> web.Response:
    from .api_v1 import memory_bytes, tag_counts

    app = request.app[APP_KEY]
    store = app.store
    stats = await in_thread(store.stats)
    smtp: Counter[str] = Counter(app.extras.setdefault("smtp_counters", Counter()))
    smtp["ignored"] = app.extras.get("runtime_stats", {}).get("SMTPIgnored", 0)  # --ignore-duplicate-ids
    gauges = {
        "postroom_messages": float(stats.messages),
        "postroom_messages_unread": float(stats.unread),
        "postroom_database_size_bytes": float(stats.database_size),
        "postroom_smtp_sessions": float(len(app.extras.get("smtp_sessions") or ())),
        "postroom_uptime_seconds": float(int(time.time() - app.extras.get("started_at", time.time()))),
        "postroom_memory_bytes": float(memory_bytes()),
    }
    m = request.app[METRICS_KEY]
    readers = {proto: app.extras.setdefault(f"{proto}_counters", Counter()) for proto in ("imap", "pop3")}
    queue = await in_thread(store.outbound.counts) if isinstance(store, HasOutbound) else {}
    text = render(m.counts, gauges, smtp, await tag_counts(store), m, readers, queue)
    return web.Response(text=text, headers={"Content-Type": CONTENT_TYPE})


def add_routes(wapp: web.Application, prefix: str) -> Callable[[], Any]:
    """Register ``/metrics`` and its bus subscription; returns the unsubscribe function."""
    m = Metrics()
    wapp[METRICS_KEY] = m
    wapp.router.add_get(prefix + "metrics", metrics)
    return wapp[APP_KEY].bus.subscribe(m.on_event)


@web.middleware
async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Count each HTTP answer by status class and time it (the WebSocket's whole life is
    not an answer time: its upgrade is counted, not timed)."""
    m = request.app.get(METRICS_KEY)
    started = time.perf_counter()
    status = 500
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        if m is not None:
            m.counts[f"http_{min(status // 100, 5)}xx"] += 1
            if status != 101:
                m.http_seconds.observe(time.perf_counter() - started)
