"""Backend-neutral reading: the summary row both backends select, and what is made of it.

SQLite and PostgreSQL keep the same ``message`` columns (see the migrations of each), so a
listing selects :data:`SUMMARY_COLS` over ``message m`` on either and turns the rows into
:class:`~postroom.store.base.Summary` objects here; the tags and mailboxes of the page come
from two queries of the backend's own (:class:`PageExtras`). A conversation's participants
are read the same way (:data:`PARTICIPANT_COLS`, :func:`participants`). Only SQL differs
per backend; what the rows mean is written once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .base import Address, Summary, ThreadInfo, ThreadPage

__all__ = [
    "MAX_PARTICIPANTS",
    "PAGE_LIMIT_MAX",
    "PARTICIPANT_COLS",
    "SUMMARY_COLS",
    "ThreadQuery",
    "clamp_page",
    "group_pairs",
    "participants",
    "summaries_from_rows",
    "thread_info",
    "thread_page",
    "threads_of",
]

PAGE_LIMIT_MAX = 1000  # largest page a listing returns
MAX_PARTICIPANTS = 20  # participants listed per conversation

# The columns of a summary row, in the order summaries_from_rows reads them (m.id first:
# the internal id the page's tags and mailboxes are looked up by).
SUMMARY_COLS = (
    "m.id, m.pid, m.created, m.date, m.message_id, m.subject, m.from_name, m.from_addr, m.to_json, "
    "m.cc_json, m.bcc_json, m.reply_to_json, m.in_reply_to, m.refs, m.size, m.attachments, m.snippet, "
    "m.read, m.username, m.thread_id"
)
# What a conversation's participants are read from (oldest messages first).
PARTICIPANT_COLS = "m.subject, m.from_name, m.from_addr, m.to_json, m.cc_json"


def clamp_page(start: int, limit: int) -> tuple[int, int]:
    """A listing's (start, limit) as the store serves them: not negative, at most a page."""
    return max(0, int(start)), max(0, min(int(limit), PAGE_LIMIT_MAX))


def _addresses(text: str) -> list[Address]:
    return [Address(n, a) for n, a in json.loads(text)] if text and text != "[]" else []


def group_pairs(pairs: Iterable[tuple[int, str]]) -> dict[int, list[str]]:
    """``(message id, name)`` rows as names per message, in row order."""
    out: dict[int, list[str]] = {}
    for mid, name in pairs:
        out.setdefault(mid, []).append(name)
    return out


def summaries_from_rows(
    rows: Sequence[Sequence[Any]], tags: dict[int, list[str]], boxes: dict[int, list[str]]
) -> list[Summary]:
    """Summaries of rows of :data:`SUMMARY_COLS`, with each message's tags (in the order
    given) and mailboxes (sorted, each once) looked up by internal id."""
    return [
        Summary(
            id=r[1],
            created=r[2],
            date=r[3],
            message_id=r[4],
            subject=r[5],
            from_=Address(r[6], r[7]) if (r[6] or r[7]) else None,
            to=_addresses(r[8]),
            cc=_addresses(r[9]),
            bcc=_addresses(r[10]),
            reply_to=_addresses(r[11]),
            in_reply_to=r[12],
            references=r[13].split() if r[13] else [],
            size=r[14],
            attachments=r[15],
            snippet=r[16],
            read=bool(r[17]),
            username=r[18],
            thread_id=r[19],
            tags=tags.get(r[0], []),
            mailboxes=sorted(set(boxes.get(r[0], ()))),
        )
        for r in rows
    ]


def participants(rows: Iterable[Sequence[Any]]) -> list[Address]:
    """Distinct addresses of From, To and Cc of rows of :data:`PARTICIPANT_COLS`, in order
    of first appearance (at most :data:`MAX_PARTICIPANTS`)."""
    out: dict[str, Address] = {}
    for _, from_name, from_addr, to_json, cc_json in rows:
        pairs = [(from_name, from_addr)] if from_addr else []
        for text in (to_json, cc_json):
            if text and text != "[]":
                pairs.extend((n, a) for n, a in json.loads(text))
        for name, addr in pairs:
            key = addr.lower()
            if key and key not in out:
                out[key] = Address(name, addr)
                if len(out) >= MAX_PARTICIPANTS:
                    return list(out.values())
    return list(out.values())


def thread_info(
    thread_id: str, count: int, unread: int, last: float, rows: Sequence[Sequence[Any]]
) -> ThreadInfo:
    """One conversation of a listing: its counts from the grouped index, its subject and
    participants from its first rows of :data:`PARTICIPANT_COLS`."""
    return ThreadInfo(
        thread_id=thread_id,
        subject=rows[0][0] if rows else "",
        messages=int(count),
        unread=int(unread),
        participants=participants(rows),
        last_activity=float(last),
    )


Run = Callable[[str, list[Any]], list[Any]]  # execute SQL with parameters, return all rows


@dataclass(frozen=True)
class ThreadQuery:
    """One backend's SQL for :func:`thread_page` (conditions over ``message m``)."""

    mark: str  # a bound parameter
    unread: str  # aggregate: unread messages of a group
    where: str  # the conversations listed (counted)
    params: list[Any]
    rows_where: str  # the rows a conversation's participants are read from (with m.thread_id)
    rows_params: list[Any]
    rows_limit: int  # at most this many rows per conversation


def thread_page(run: Run, q: ThreadQuery, start: int, limit: int) -> ThreadPage:
    """A page of conversations, newest activity first: counts, unread counts and last
    activity grouped per thread id, then subject and participants of each on the page."""
    p = q.mark
    total = run(f"SELECT count(DISTINCT m.thread_id) FROM message m WHERE {q.where}", q.params)
    groups = run(
        f"SELECT m.thread_id, count(*), {q.unread}, max(m.created), max(m.id) AS last "
        f"FROM message m WHERE {q.where} GROUP BY m.thread_id ORDER BY last DESC LIMIT {p} OFFSET {p}",
        [*q.params, limit, start],
    )
    return threads_of(run, q, int(total[0][0]) if total else 0, groups, start)


def threads_of(run: Run, q: ThreadQuery, total: int, groups: list[Any], start: int) -> ThreadPage:
    """A page of conversations from their grouped rows ``(thread id, messages, unread, last
    activity, last id)``: subject and participants read for each."""
    p = q.mark
    threads = [
        thread_info(
            tid,
            count,
            unread,
            last,
            run(
                f"SELECT {PARTICIPANT_COLS} FROM message m WHERE m.thread_id = {p} AND {q.rows_where} "
                f"ORDER BY m.id LIMIT {p}",
                [tid, *q.rows_params, q.rows_limit],
            ),
        )
        for tid, count, unread, last, _ in groups
    ]
    return ThreadPage(total, start, threads)
