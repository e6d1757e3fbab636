"""Outbound mail in a running postroom: release (API and UI), relay-all, relay-matching and
forward, all through the persistent queue and the delivery worker.

Built by the composition root when the settings ask for a relay or a forward and the store
keeps an outbound queue (:class:`~postroom.store.outbound.HasOutbound`, checked once).
Relay and forward decisions are made when the bus announces a stored message, after the
SMTP client already has its 250: enqueueing runs in a thread, never on the ingest path.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

from ..config import ConfigError, Settings
from ..events import Bus, Event, MessageStored
from ..store.base import Store
from ..store.outbound import HasOutbound, NewDelivery, OutboundQueue
from .relay_config import (
    ForwardConfig,
    RelayConfig,
    forward_from_keys,
    load_forward,
    load_relay,
    relay_from_keys,
)
from .worker import Worker

__all__ = ["Outbound", "ReleaseError", "build", "read_configs"]

log = logging.getLogger("postroom.outbound")
_C = TypeVar("_C", RelayConfig, ForwardConfig)


class ReleaseError(ValueError):
    """A release the relay configuration does not allow; the text says which recipient."""


class Outbound:
    """Queue, workers and triggers of one postroom."""

    def __init__(self, store: Store, queue: OutboundQueue, relay: RelayConfig | None,
                 forward: ForwardConfig | None, relay_all: bool, matching: str) -> None:  # fmt: skip
        self.store = store
        self.queue = queue
        self.relay = relay
        self.forward = forward
        self.relay_all = relay_all
        self.matching = re.compile(matching, re.IGNORECASE) if matching else None
        self.relay_worker = Worker(queue, relay, ("relay", "release", "send")) if relay else None
        # forwarded copies go through the forward file's own server
        self.forward_worker = Worker(queue, forward.relay, ("forward",)) if forward else None
        self._tasks: list[asyncio.Task[Any]] = []

    def start(self, bus: Bus, spawn: Callable[[Any], asyncio.Task[Any]]) -> None:
        for w in (self.relay_worker, self.forward_worker):
            if w is not None:
                w.on_attempt = bus.publish
                spawn(w.run())
        if self.relay_all or self.matching or self.forward:
            bus.subscribe(lambda ev: self._on_event(ev, spawn))

    def _on_event(self, ev: Event, spawn: Callable[[Any], asyncio.Task[Any]]) -> None:
        if isinstance(ev, MessageStored):
            spawn(self._auto(ev.id))

    async def _auto(self, msg_id: str) -> None:
        items = await asyncio.to_thread(self._auto_items, msg_id)
        for kind, batch in items.items():
            if batch:
                cfg = self.forward.relay if kind == "forward" and self.forward else self.relay
                assert cfg is not None
                await asyncio.to_thread(self.queue.enqueue, batch, give_up_after=cfg.retry_for)
                worker = self.forward_worker if kind == "forward" else self.relay_worker
                if worker is not None:
                    worker.wake()

    def _auto_items(self, msg_id: str) -> dict[str, list[NewDelivery]]:
        env = self.store.get_envelope(msg_id)
        raw = self.store.get_raw(msg_id)
        out: dict[str, list[NewDelivery]] = {"relay": [], "forward": []}
        if env is None or raw is None:
            return out
        if self.relay is not None and (self.relay_all or self.matching):
            for rcpt in env.rcpt_to:
                if (self.relay_all or (self.matching and self.matching.search(rcpt))) and self.relay.permits(
                    rcpt
                ):
                    out["relay"].append(NewDelivery(msg_id, "relay", env.mail_from, rcpt, raw))
        if self.forward is not None:
            for rcpt in self.forward.to:
                out["forward"].append(NewDelivery(msg_id, "forward", env.mail_from, rcpt, raw))
        return out

    def release(self, msg_id: str, recipients: list[str]) -> list[int]:
        """Queue ``msg_id`` for ``recipients`` (its envelope recipients when empty).

        Raises:
            ReleaseError: no relay configured, a recipient the configuration forbids, or no
                such message.
        """
        if self.relay is None:
            raise ReleaseError("no relay is configured (start postroom with --smtp-relay-config FILE)")
        env = self.store.get_envelope(msg_id)
        raw = self.store.get_raw(msg_id)
        if env is None or raw is None:
            raise ReleaseError(f"no message {msg_id}")
        rcpts = [r.strip() for r in recipients if r.strip()] or list(env.rcpt_to)
        for r in rcpts:
            if "@" not in r or any(c.isspace() or c in "<>" for c in r):
                raise ReleaseError(f"not an address: {r!r}")
            if not self.relay.permits(r):
                raise ReleaseError(f"the relay configuration does not allow {r}")
        items = [NewDelivery(msg_id, "release", env.mail_from, r, raw) for r in rcpts]
        ids = self.queue.enqueue(items, give_up_after=self.relay.retry_for)
        return ids

    def submit(self, mail_from: str, recipients: list[str], raw: bytes) -> list[int]:
        """Queue a message that is not in the store (``postroom send --queue``).

        Raises:
            ReleaseError: no relay, or a recipient the configuration forbids.
        """
        if self.relay is None:
            raise ReleaseError("no relay is configured (start postroom with --smtp-relay-config FILE)")
        for r in recipients:
            if "@" not in r or any(c.isspace() or c in "<>" for c in r):
                raise ReleaseError(f"not an address: {r!r}")
            if not self.relay.permits(r):
                raise ReleaseError(f"the relay configuration does not allow {r}")
        items = [NewDelivery("", "send", mail_from, r, raw) for r in recipients]
        return self.queue.enqueue(items, give_up_after=self.relay.retry_for)

    def wake(self) -> None:
        if self.relay_worker is not None:
            self.relay_worker.wake()


def _config(
    path: str,
    keys: tuple[tuple[str, str], ...],
    load: Callable[[str], _C],
    from_keys: Callable[[dict[str, str]], _C],
) -> _C | None:
    # a file (MP_SMTP_*_CONFIG), else Mailpit's per-key variables (MP_SMTP_RELAY_HOST ...)
    if path:
        return load(path)
    return from_keys(dict(keys)) if keys else None


def read_configs(s: Settings) -> tuple[RelayConfig | None, ForwardConfig | None]:
    """The relay and forward configurations of the settings (each None when not given).

    Raises:
        ConfigError: a configuration file or variable is wrong.
    """
    relay = _config(s.smtp_relay_config, s.smtp_relay_keys, load_relay, relay_from_keys)
    forward = _config(s.smtp_forward_config, s.smtp_forward_keys, load_forward, forward_from_keys)
    return relay, forward


def build(settings: Settings, store: Store) -> Outbound | None:
    """The outbound service the settings ask for, or None.

    Raises:
        ConfigError: a relay or forward is configured but the store keeps no queue, or a
            configuration file is wrong.
    """
    s = settings
    if not (s.smtp_relay_config or s.smtp_relay_keys or s.smtp_forward_config or s.smtp_forward_keys):
        return None
    if not isinstance(store, HasOutbound):
        raise ConfigError(
            "this store backend keeps no outbound queue: relay and forward need the SQLite store"
        )
    relay, forward = read_configs(s)
    return Outbound(
        store, store.outbound, relay, forward, settings.smtp_relay_all, settings.smtp_relay_matching
    )
