"""Conversations over HTTP (postroom's extension; docs/threads.md, docs/api.md).

* ``GET /api/v2/threads?start=&limit=&mailbox=`` -> ``{"total", "start", "threads": [{"ThreadID",
  "Subject", "MessagesCount", "Unread", "Participants", "LastActivity"}]}``, newest activity first
* ``GET /api/v2/thread/{ThreadID}`` -> the same fields plus ``Messages``: the conversation's
  message summaries in tree order (RFC 5256 REFERENCES with localized subject prefixes), each
  with ``Date`` (its Date header, RFC 5322 3.6.1, or its arrival time without one), ``Depth`` (0 at a root), ``Parent`` (the ID of the message it answers, or "") and
  ``Children`` (IDs).

A ``ThreadID`` is stable per conversation, like Gmail's X-GM-THRID: the indexer gives it a
moment after delivery (an empty ``ThreadID`` on a summary means "not yet"), and it only
changes when a message joins the conversation to an older one. ``thread:ID`` in the search
language selects the same messages.

Errors are plain text: 400 for a bad parameter, 404 for an unknown conversation.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..store.base import Address, Summary, ThreadInfo
from ..threads import ThreadMessage, ThreadNode, thread_references
from .common import MAX_LIMIT, in_thread, int_param, json_response, not_found, rfc3339, store_of, summary_json

__all__ = ["add_routes", "thread_tree"]

DEFAULT_LIMIT = 50
# Messages shown for one conversation; a larger one is cut to its oldest messages.
MAX_THREAD_MESSAGES = MAX_LIMIT
MAX_PARTICIPANTS = 20  # as the store's listing


def _info_json(t: ThreadInfo) -> dict[str, Any]:
    return {
        "ThreadID": t.thread_id,
        "Subject": t.subject,
        "MessagesCount": t.messages,
        "Unread": t.unread,
        "Participants": [a.to_json() for a in t.participants],
        "LastActivity": rfc3339(t.last_activity),
    }


async def threads(request: web.Request) -> web.Response:
    start = int_param(request, "start", 0)
    limit = int_param(request, "limit", DEFAULT_LIMIT, maximum=MAX_LIMIT)
    mailbox = (request.query.get("mailbox") or "").strip().lower() or None
    page = await in_thread(store_of(request).list_threads, mailbox=mailbox, start=start, limit=limit)
    return json_response(
        {"total": page.total, "start": page.start, "threads": [_info_json(t) for t in page.threads]}
    )


def thread_tree(messages: list[Summary]) -> list[tuple[Summary, int, str, list[str]]]:
    """Order a conversation's messages as a tree: ``(summary, depth, parent ID, child IDs)``.

    ``messages`` come in arrival order (which breaks ties between equal dates). A missing
    parent with several replies (a dummy in RFC 5256 terms) is left out: its replies become
    roots.
    """
    records = [
        ThreadMessage(
            uid=n,
            message_id=s.message_id,
            in_reply_to=s.in_reply_to,
            references=tuple(s.references),
            subject=s.subject,
            date=s.date,
            internaldate=s.created,
        )
        for n, s in enumerate(messages, start=1)
    ]
    roots = thread_references(records, localized=True)
    out: list[tuple[Summary, int, str, list[str]]] = []
    stack: list[tuple[ThreadNode, int, str]] = [(r, 0, "") for r in reversed(roots)]
    while stack:
        node, depth, parent = stack.pop()
        if node.message is None:  # a dummy root: its children stand at the top
            stack.extend((c, depth, parent) for c in reversed(node.children))
            continue
        s = messages[node.message.uid - 1]
        kids = [messages[c.message.uid - 1].id for c in node.children if c.message is not None]
        out.append((s, depth, parent, kids))
        stack.extend((c, depth + 1, s.id) for c in reversed(node.children))
    return out


def _participants(messages: list[Summary]) -> list[Address]:
    out: dict[str, Address] = {}
    for s in messages:
        for a in [*([s.from_] if s.from_ else []), *s.to, *s.cc]:
            if a.address and a.address.lower() not in out and len(out) < MAX_PARTICIPANTS:
                out[a.address.lower()] = a
    return list(out.values())


async def thread(request: web.Request) -> web.Response:
    tid = request.match_info["ThreadID"]
    messages = await in_thread(store_of(request).thread_messages, tid, limit=MAX_THREAD_MESSAGES)
    if not messages:
        raise not_found(f"thread {tid} not found")
    ordered = thread_tree(messages)
    info = ThreadInfo(
        thread_id=tid,
        subject=messages[0].subject,
        messages=len(messages),
        unread=sum(not s.read for s in messages),
        participants=_participants(messages),
        last_activity=max(s.created for s in messages),
    )
    items = [
        {
            **summary_json(s),
            # the Date header (arrival time when it has none): a conversation reads by it
            "Date": rfc3339(s.date if s.date is not None else s.created),
            "Depth": depth,
            "Parent": parent,
            "Children": kids,
        }
        for s, depth, parent, kids in ordered
    ]
    return json_response({**_info_json(info), "Messages": items})


def add_routes(r: web.UrlDispatcher, prefix: str) -> None:
    """Register the conversation routes under ``prefix`` (the webroot, ending in '/')."""
    p = prefix + "api/v2"
    r.add_get(p + "/threads", threads)
    r.add_get(p + "/thread/{ThreadID}", thread)
