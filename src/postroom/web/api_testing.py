"""HTTP routes of the testing features: chaos (Mailpit's and postroom's) and webhooks.

* ``GET /api/v1/chaos`` -> Mailpit's ``ChaosTriggers`` (``Sender``, ``Recipient``,
  ``Authentication``: ``{"ErrorCode", "Probability"}``)
* ``PUT /api/v1/chaos`` sets them (omitted triggers reset; ``{}`` resets all), answers
  the new values. Both answer ``400`` unless chaos is enabled (``--enable-chaos``,
  ``--chaos``, or an in-process :class:`postroom.Server`), as Mailpit does.
* ``GET /api/v2/chaos`` -> ``{"Enabled", "Triggers", "Faults": [...]}`` (every fault,
  with how often it fired)
* ``PUT /api/v2/chaos`` ``{"Spec": "rcpt:451:50%;..."}`` replaces the faults (the
  ``--chaos`` syntax; ``""`` removes them)
* ``POST /api/v2/chaos`` ``{"Spec": ...}`` adds faults, answers ``{"Faults": [...]}`` (the
  new ones, with their ``ID``); ``DELETE /api/v2/chaos`` ``{"IDs": [...]}`` removes those
  faults only: how :class:`postroom.Client` scopes its faults on a shared server
* ``GET /api/v2/webhooks`` -> ``{"URLs", "Retries", "Deliveries": [...]}`` (the log)
* ``PUT /api/v2/webhooks`` ``{"URLs": [...]}`` replaces the URLs

Errors: plain text ``400`` naming the problem (see :mod:`postroom.web.common`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .common import APP_KEY, bad_request, json_body, json_response

if TYPE_CHECKING:
    from ..runtime.chaos import Chaos
    from ..runtime.webhooks import Webhooks

__all__ = ["add_routes", "chaos_get", "chaos_put"]


def _chaos(request: web.Request, *, require_enabled: bool = True) -> Chaos:
    chaos: Chaos = request.app[APP_KEY].chaos
    if require_enabled and not chaos.enabled:
        raise bad_request("Chaos is not enabled (start postroom with --enable-chaos)")
    return chaos


def _webhooks(request: web.Request) -> Webhooks:
    hooks: Webhooks = request.app[APP_KEY].webhooks
    return hooks


async def chaos_get(request: web.Request) -> web.Response:
    """Mailpit's ``GET /api/v1/chaos``."""
    return json_response(_chaos(request).mailpit_triggers())


async def chaos_put(request: web.Request) -> web.Response:
    """Mailpit's ``PUT /api/v1/chaos``."""
    from ..runtime.chaos import ChaosError

    chaos = _chaos(request)
    body = await json_body(request)
    try:
        chaos.set_mailpit_triggers(body)
    except ChaosError as e:
        raise bad_request(str(e)) from None
    return json_response(chaos.mailpit_triggers())


def _chaos_state(chaos: Chaos) -> dict[str, object]:
    return {
        "Enabled": chaos.enabled,
        "Triggers": chaos.mailpit_triggers(),
        "Faults": [f.to_json() for f in chaos.faults],
    }


async def chaos_v2_get(request: web.Request) -> web.Response:
    return json_response(_chaos_state(_chaos(request, require_enabled=False)))


async def chaos_v2_put(request: web.Request) -> web.Response:
    from ..runtime.chaos import ChaosError, parse_spec

    chaos = _chaos(request)
    body = await json_body(request, required=True)
    spec = body.get("Spec", "")
    if not isinstance(spec, str):
        raise bad_request("Spec must be a string in the --chaos syntax")
    try:
        faults = parse_spec(spec)
    except ChaosError as e:
        raise bad_request(str(e)) from None
    chaos.replace_faults(faults)
    return json_response(_chaos_state(chaos))


async def chaos_v2_post(request: web.Request) -> web.Response:
    from ..runtime.chaos import ChaosError

    chaos = _chaos(request)
    body = await json_body(request, required=True)
    spec = body.get("Spec")
    if not isinstance(spec, str) or not spec.strip():
        raise bad_request("Spec must be a non-empty string in the --chaos syntax")
    try:
        added = chaos.load(spec)
    except ChaosError as e:
        raise bad_request(str(e)) from None
    return json_response({"Faults": [f.to_json() for f in added]})


async def chaos_v2_delete(request: web.Request) -> web.Response:
    chaos = _chaos(request)
    body = await json_body(request, required=True)
    ids = body.get("IDs")
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise bad_request("IDs must be a list of fault IDs (numbers)")
    chaos.remove(ids)
    return json_response(_chaos_state(chaos))


async def webhooks_get(request: web.Request) -> web.Response:
    return json_response(_webhooks(request).to_json())


async def webhooks_put(request: web.Request) -> web.Response:
    hooks = _webhooks(request)
    body = await json_body(request, required=True)
    urls = body.get("URLs")
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise bad_request("URLs must be a list of http(s) URLs")
    try:
        hooks.set_urls(urls)
    except ValueError as e:
        raise bad_request(str(e)) from None
    return json_response(hooks.to_json())


def add_routes(r: web.UrlDispatcher, prefix: str) -> None:
    """Register the v2 chaos and webhook routes under ``prefix`` (ending in '/')."""
    p = prefix + "api/v2"
    r.add_get(p + "/chaos", chaos_v2_get)
    r.add_put(p + "/chaos", chaos_v2_put)
    r.add_post(p + "/chaos", chaos_v2_post)
    r.add_delete(p + "/chaos", chaos_v2_delete)
    r.add_get(p + "/webhooks", webhooks_get)
    r.add_put(p + "/webhooks", webhooks_put)
