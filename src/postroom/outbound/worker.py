"""The delivery worker: takes due rows from the outbound queue and hands them to the relay.

It runs on postroom's event loop but never blocks it (each SMTP hand-over runs in a
thread), and nothing on the SMTP ingest path waits for it: relaying is decided after the
message is committed and acknowledged, by enqueueing rows.

* **Rate and concurrency** per destination server: a token bucket (``rate`` a second,
  ``burst`` at once) and at most ``concurrency`` connections.
* **Retries**: a 4xx reply or a connection failure is retried after
  ``retry-base * 2**(attempts-1)`` (capped at ``retry-max``) with ±50% jitter, until
  ``retry-for`` after the row was queued; then it fails.
* **Bounces**: a 5xx reply fails the row at once. A *hard* bounce (the address itself is
  bad: enhanced status 5.1.x or 5.2.1, RFC 3463; or a plain 550/551/553 without one) also
  puts the recipient on the suppression list, and later mail to a suppressed address is not
  sent. Other 5xx (policy 5.7.x, size 5.3.4, ...) fail without suppressing.
* **DKIM**: with ``dkim-key`` the message is signed (relaxed/relaxed, RSA-SHA256 or
  Ed25519 as the key is) just before it goes out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..events import DeliveryAttempted
from ..store.outbound import Delivery, OutboundQueue, Outcome
from .mx import MxError, addresses, mail_hosts
from .relay_config import RelayConfig
from .smtp_client import DeliveryError, SmtpTarget, deliver

__all__ = ["Classified", "TokenBucket", "Worker", "classify", "prepare_message", "retry_delay"]

log = logging.getLogger("postroom.outbound")

# A claimed row is ours for this long; a node that dies mid-send frees it after it.
LEASE = 300.0
# Seconds between looks at the queue when nothing wakes the worker.
POLL = 1.0


@dataclass(frozen=True)
class Classified:
    outcome: Outcome  # sent, retry or failed
    hard: bool  # a hard bounce: suppress the address


def classify(code: int | None, reply: str) -> Classified:
    """What a reply (or a connection failure, ``code`` None) means for the row."""
    if code is None or 400 <= code < 500:
        return Classified("retry", False)
    if 200 <= code < 300:
        return Classified("sent", False)
    m = re.search(rf"\b{code // 100}\.(\d{{1,3}})\.(\d{{1,3}})\b", reply)  # RFC 3463 class.subject.detail
    if m:
        subject, detail = m.groups()
        return Classified("failed", subject == "1" or (subject == "2" and detail == "1"))
    return Classified("failed", code in (550, 551, 553))


def retry_delay(attempts: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Delay before the next try after ``attempts`` tries: exponential, capped, ±50% jitter."""
    r = rng or random
    return float(min(base * (2 ** max(attempts - 1, 0)), cap) * r.uniform(0.5, 1.5))


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, float(burst), clock
        self.tokens = float(burst)
        self.stamp = clock()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:
            while True:
                now = self.clock()
                self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


def _replace_header(raw: bytes, name: bytes, value: bytes) -> bytes:
    """``raw`` with every ``name:`` header (and its folded lines) replaced by one new line."""
    end = raw.find(b"\r\n\r\n")
    head, body = (raw[: end + 2], raw[end + 2 :]) if end >= 0 else (raw, b"")
    out: list[bytes] = []
    skipping = False
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                out.append(line)
            continue
        skipping = line.lower().startswith(name.lower() + b":")
        if not skipping and line:
            out.append(line)
    if value:
        out.insert(0, name + b": " + value)
    return b"\r\n".join(out) + b"\r\n" + body


def prepare_message(raw: bytes, cfg: RelayConfig) -> bytes:
    """The bytes to relay: postroom's own Received line dropped, From overridden if asked,
    DKIM-signed if configured."""
    data = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if data.startswith(b"Received: ") and b"by postroom" in data[:400]:
        nxt = re.search(rb"\r\n(?![ \t])", data)
        if nxt:
            data = data[nxt.end() :]
    if cfg.override_from:
        data = _replace_header(data, b"From", cfg.override_from.encode())
    if cfg.dkim_key:
        import dkim

        sig = dkim.sign(
            data, cfg.dkim_selector.encode(), cfg.dkim_domain.encode(), cfg.dkim_key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=[h for h in (b"from", b"to", b"cc", b"subject", b"date", b"message-id",
                                         b"reply-to", b"mime-version", b"content-type", b"list-unsubscribe",
                                         b"list-unsubscribe-post") if re.search(rb"(?im)^" + h + rb":", data)],
        )  # fmt: skip
        data = sig.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + data
    return data


class Worker:
    """Delivers the queue of one store through one relay configuration."""

    def __init__(self, queue: OutboundQueue, relay: RelayConfig, kinds: tuple[str, ...]) -> None:
        self.queue = queue
        self.kinds = kinds
        self.relay = relay
        self.node = f"{socket.gethostname()}:{os.getpid()}"
        self.bucket = TokenBucket(relay.rate, relay.burst)
        self.slots = asyncio.Semaphore(relay.concurrency)
        self._wake = asyncio.Event()
        self._per_host: dict[str, tuple[TokenBucket, asyncio.Semaphore]] = {}
        self._running: set[asyncio.Task[None]] = set()
        self.on_attempt: Callable[[DeliveryAttempted], None] | None = None

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._wake.set()  # a slot is free: claim the next due row now, not at the next poll

    def wake(self) -> None:
        """New rows are queued: look at once (call on the loop's thread)."""
        self._wake.set()

    async def run(self) -> None:
        orphans = await asyncio.to_thread(self.queue.requeue_orphans)
        if orphans:
            log.info("outbound: %d deliveries left mid-send by a previous run are queued again", orphans)
        try:
            while True:
                free = self.relay.concurrency * 2 - len(self._running)
                rows = (
                    await asyncio.to_thread(self.queue.claim, self.node, free, LEASE, self.kinds)
                    if free > 0
                    else []
                )
                for row in rows:
                    task = asyncio.get_running_loop().create_task(self._send(row))
                    self._running.add(task)
                    task.add_done_callback(self._finished)
                self._wake.clear()
                if not rows:
                    try:
                        await asyncio.wait_for(self._wake.wait(), POLL)
                    except TimeoutError:
                        pass
                else:
                    await asyncio.sleep(0)
        finally:
            for task in list(self._running):
                task.cancel()

    def _limits(self, host: str) -> tuple[TokenBucket, asyncio.Semaphore]:
        """The rate and connection limits of one destination server (per MX host with ``mx``)."""
        if not self.relay.mx:
            return self.bucket, self.slots
        if host not in self._per_host:
            self._per_host[host] = (
                TokenBucket(self.relay.rate, self.relay.burst),
                asyncio.Semaphore(self.relay.concurrency),
            )
        return self._per_host[host]

    async def _hand_over(
        self, target: SmtpTarget, mail_from: str, rcpt: str, data: bytes
    ) -> tuple[int | None, str]:
        bucket, slots = self._limits(target.host)
        async with slots:
            await bucket.take()
            try:
                refused = await asyncio.to_thread(deliver, target, mail_from, [rcpt], data)
                return (250, "250 accepted") if not refused else _split(refused[rcpt])
            except DeliveryError as e:
                return e.code, str(e)

    async def _attempt(self, row: Delivery) -> tuple[int | None, str, str]:
        """(reply code or None for no connection, reply text, destination) of one try."""
        cfg = self.relay
        mail_from = cfg.return_path or row.mail_from
        data = prepare_message(row.raw, cfg)
        if not cfg.mx:
            code, reply = await self._hand_over(cfg.target, mail_from, row.rcpt, data)
            return code, reply, cfg.target.where
        domain = row.rcpt.rpartition("@")[2]
        try:
            hosts = await asyncio.to_thread(mail_hosts, domain, cfg.dns_server)
        except MxError as e:
            return e.code, str(e), f"MX of {domain}"
        code, reply, where = None, f"no MX host of {domain} answered", f"MX of {domain}"
        for host in hosts:  # RFC 5321 5.1: the next host only when this one could not be reached
            ips = await asyncio.to_thread(addresses, host, cfg.dns_server)
            for ip in ips:
                # opportunistic STARTTLS without certificate checks, as MTAs deliver (RFC 7435)
                target = replace(cfg.target, host=ip, port=cfg.mx_port, tls="auto", verify=False)
                code, reply = await self._hand_over(target, mail_from, row.rcpt, data)
                where = f"{host}:{cfg.mx_port}"
                if code is not None:
                    break
            if code is not None:
                break
        return code, reply, where

    async def _send(self, row: Delivery) -> None:
        cfg = self.relay
        try:
            code, reply, where = await self._attempt(row)
        except Exception as e:  # a bug must not kill the worker; the row is retried
            log.exception("relay of row %d failed unexpectedly", row.id)
            code, reply, where = None, f"internal error: {e}", cfg.target.where or "MX"
        verdict = classify(code, reply)
        next_at: float | None = None
        outcome: Outcome = verdict.outcome
        if outcome == "retry":
            next_at = time.time() + retry_delay(row.attempts + 1, cfg.retry_base, cfg.retry_max)
            if next_at > row.give_up_at:
                outcome, next_at = "failed", None
                reply = f"gave up after {row.attempts + 1} attempts: {reply}"
        await asyncio.to_thread(self.queue.finish, row.id, self.node, outcome, where, reply, next_at)
        if verdict.hard:
            await asyncio.to_thread(self.queue.suppress, row.rcpt, reply)
        log.info("relay %s -> %s: %s (%s)", row.message_id, row.rcpt, outcome, reply[:120])
        if self.on_attempt is not None:
            self.on_attempt(
                DeliveryAttempted(row.message_id, row.rcpt, outcome, reply, row.attempts + 1, next_at)
            )
        if outcome == "retry":
            asyncio.get_running_loop().call_later(max(0.0, next_at - time.time()) + 0.01, self._wake.set)  # type: ignore[operator]


def _split(reply: str) -> tuple[int | None, str]:
    head = reply[:3]
    return (int(head), reply) if head.isdigit() else (None, reply)
