"""Outbound routes: Mailpit's release, and postroom's delivery log and suppression list.

* ``POST /api/v1/message/{ID}/release`` (Mailpit): ``{"To": ["a@example.org"]}`` queues the
  message for those recipients through the relay and answers ``ok`` at once; the delivery
  itself (retries, bounces) is in the delivery log.
* ``GET /api/v2/message/{ID}/deliveries``: every queued copy of the message with each attempt.
* ``GET /api/v2/outbound``: counts per state and the latest rows; ``POST`` queues a message
  that is not in the store (``postroom send --queue``).
* ``GET /api/v2/suppressions``, ``POST`` (``{"Address", "Reason"}``), ``DELETE
  /api/v2/suppressions/{Address}``: the addresses that hard-bounced (or were added by hand),
  to which nothing is sent.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..store.outbound import Delivery
from .common import (
    APP_KEY,
    bad_request,
    fields_of,
    in_thread,
    json_body,
    json_response,
    not_found,
    ok,
    resolve_id,
    rfc3339,
    summary_or_404,
)

if TYPE_CHECKING:
    from ..outbound.service import Outbound

__all__ = ["add_routes", "delivery_json"]


def _release_error() -> type[Exception]:
    """The relay's refusal (outbound/service.py): imported only once a relay is configured,
    which has imported it already (a server without one does not load its DNS modules)."""
    from ..outbound.service import ReleaseError

    return ReleaseError


def _outbound(request: web.Request) -> Outbound:
    service = request.app[APP_KEY].outbound
    if service is None:
        raise bad_request("no relay is configured (start postroom with --smtp-relay-config FILE)")
    return service


def delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "ID": d.id,
        "MessageID": d.message_id,
        "Kind": d.kind,
        "From": d.mail_from,
        "To": d.rcpt,
        "State": d.state,
        "Attempts": d.attempts,
        "Created": rfc3339(d.created),
        "NextAttempt": rfc3339(d.next_at) if d.state == "queued" else None,
        "LastReply": d.last_reply,
        "History": [
            {
                "Time": rfc3339(a.at),
                "Destination": a.destination,
                "Reply": a.reply,
                "Outcome": a.outcome,
                "NextAttempt": rfc3339(a.next_at) if a.next_at else None,
            }
            for a in d.history
        ],
    }


async def release(request: web.Request) -> web.Response:
    service = _outbound(request)
    mid = await resolve_id(request)
    await summary_or_404(request, mid)
    body = fields_of(await json_body(request, required=True), "To")
    to = body.get("To")
    if not isinstance(to, list) or not to or not all(isinstance(t, str) for t in to):
        raise bad_request("To must be a non-empty array of addresses")
    try:
        await in_thread(service.release, mid, to)
    except _release_error() as e:
        raise bad_request(str(e)) from None
    service.wake()
    return ok()


async def deliveries(request: web.Request) -> web.Response:
    service = _outbound(request)
    mid = await resolve_id(request)
    rows = await in_thread(service.queue.deliveries, mid)
    return json_response([delivery_json(d) for d in rows])


async def outbound(request: web.Request) -> web.Response:
    service = _outbound(request)
    counts = await in_thread(service.queue.counts)
    rows = await in_thread(service.queue.deliveries, None, limit=100)
    return json_response({"Counts": counts, "Deliveries": [delivery_json(d) for d in rows]})


async def enqueue(request: web.Request) -> web.Response:
    """``POST /api/v2/outbound`` ``{"From", "To": [...], "Raw": base64}``: queue a message that
    is not in the store (``postroom send --queue``) for delivery through the relay."""
    service = _outbound(request)
    body = fields_of(await json_body(request, required=True), "From", "To", "Raw")
    sender, to, raw64 = body.get("From", ""), body.get("To"), body.get("Raw")
    if not isinstance(sender, str) or not isinstance(raw64, str):
        raise bad_request("From must be a string and Raw the message in base64")
    if not isinstance(to, list) or not to or not all(isinstance(t, str) for t in to):
        raise bad_request("To must be a non-empty array of addresses")
    try:
        raw = base64.b64decode(raw64, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("Raw is not base64") from None
    if len(raw) > request.app[APP_KEY].settings.smtp_max_size:
        raise bad_request("message larger than --smtp-max-size")
    try:
        ids = await in_thread(service.submit, sender, to, raw)
    except _release_error() as e:
        raise bad_request(str(e)) from None
    service.wake()
    return json_response({"IDs": ids})


async def suppressions(request: web.Request) -> web.Response:
    service = _outbound(request)
    rows = await in_thread(service.queue.suppressions)
    return json_response(
        [{"Address": s.address, "Reason": s.reason, "Created": rfc3339(s.created)} for s in rows]
    )


async def add_suppression(request: web.Request) -> web.Response:
    service = _outbound(request)
    body = fields_of(await json_body(request, required=True), "Address", "Reason")
    address, reason = body.get("Address"), body.get("Reason", "added by hand")
    if not isinstance(address, str) or "@" not in address or not isinstance(reason, str):
        raise bad_request("Address must be an email address and Reason a string")
    await in_thread(service.queue.suppress, address.strip(), reason)
    return ok()


async def remove_suppression(request: web.Request) -> web.Response:
    service = _outbound(request)
    if not await in_thread(service.queue.unsuppress, request.match_info["Address"]):
        raise not_found("that address is not suppressed")
    return ok()


def add_routes(r: web.UrlDispatcher, prefix: str) -> None:
    r.add_post(prefix + "api/v1/message/{ID}/release", release)
    p = prefix + "api/v2"
    r.add_get(p + "/message/{ID}/deliveries", deliveries)
    r.add_get(p + "/outbound", outbound)
    r.add_post(p + "/outbound", enqueue)
    r.add_get(p + "/suppressions", suppressions)
    r.add_post(p + "/suppressions", add_suppression)
    r.add_delete(p + "/suppressions/{Address}", remove_suppression)
