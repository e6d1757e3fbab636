"""The indexer's conversation index: which conversation (``ThreadID``) each new message joins.

The indexer is the one authority on conversations (docs/threads.md). It keeps this index
in memory -- built at its start from the ``message`` table, then grown one message at a
time with :func:`postroom.threads.assign_thread` -- and ships each message's thread id,
and the conversations it merged, to the store's writer with the rest of its results.
Threading this way costs about a dict probe per Message-ID, off the SMTP path; the same
questions asked of SQL inside the writer's transaction cost 23-62 % of ingest time.

Thread ids are integers: the row id (``message.id``) of a conversation's first message.
When a message connects conversations, the oldest (smallest) id survives; merges are
recorded as a union-find forest, so a merge costs O(1) here and one ``UPDATE`` in the
store. The store keeps the id as decimal text (``message.thread_id``, the API's
``ThreadID``, ``thread:`` in search).

Loading trusts the stored ids: a conversation keeps its id across restarts, even when
its first message was pruned. Where stored ids disagree with the current options (say
the subject policy went from ``replies`` to ``all``), loading merges conversations, in
the same oldest-wins way; it never splits one.

Errors: none of its own; :class:`postroom.threads.ThreadError` for invalid options.
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..threads import (
    SubjectPolicy,
    ThreadAssignment,
    ThreadingOptions,
    ThreadMessage,
    assign_thread,
)

if TYPE_CHECKING:
    from ..config import Settings

__all__ = [
    "SUBJECT_POLICIES",
    "ConversationIndex",
    "LoadResult",
    "options_from_settings",
    "record_from_row",
    "worker_args",
]

SUBJECT_POLICIES: dict[str, SubjectPolicy] = {p.value: p for p in SubjectPolicy}
DAY = 86400.0

# Columns :func:`record_from_row` reads, in order (after the row id).
RECORD_COLUMNS = "message_id, in_reply_to, refs, subject, date, created, thread_key"

# (row id, thread id, merged thread ids): a stored message whose thread id must change.
LoadResult = tuple[int, int, tuple[int, ...]]


def options_from_settings(settings: Settings) -> ThreadingOptions | None:
    """The threading options of ``settings``; None when threading is switched off.

    ``threads_subject`` and ``threads_window`` (days, 0 = no limit) are the public options;
    ``threading = false`` in the config file's extra keys is an internal switch that turns
    conversations off altogether (benchmarks compare ingest with and without them).
    """
    if settings.extra.get("threading", True) is False:
        return None
    window = float(settings.threads_window) * DAY if settings.threads_window > 0 else None
    return ThreadingOptions(subject_policy=SUBJECT_POLICIES[settings.threads_subject], subject_window=window)


def worker_args(options: ThreadingOptions | None) -> list[str]:
    """Command-line arguments that give the indexer process ``options``."""
    if options is None:
        return ["--no-threads"]
    days = 0.0 if options.subject_window is None else options.subject_window / DAY
    return ["--threads-subject", options.subject_policy.value, "--threads-window", repr(days)]


def record_from_row(row: Sequence[Any], id: str = "") -> ThreadMessage:
    """A threading record from ``(row id, *RECORD_COLUMNS)`` of the ``message`` table.

    The store keeps Message-IDs normalized (without ``<>``) and the subject decoded, so no
    header parsing happens here.
    """
    uid, message_id, in_reply_to, refs, subject, date, created, thread_key = row[:8]
    return ThreadMessage(
        uid=uid,
        message_id=message_id or "",
        in_reply_to=in_reply_to or "",
        references=tuple(refs.split()) if refs else (),
        subject=subject or "",
        date=date,
        internaldate=created or 0.0,
        id=id,
        thread_key=thread_key or "",
    )


class _SubjectRows:
    """Messages with one base-subject key: sort dates in order, and their thread ids."""

    __slots__ = ("tids", "whens")

    def __init__(self) -> None:
        self.whens: list[int] = []
        self.tids: list[int] = []

    def add(self, when: int, tid: int) -> None:
        i = bisect_right(self.whens, when)  # arrival order is nearly date order: i is mostly the end
        self.whens.insert(i, when)
        self.tids.insert(i, tid)

    def between(self, since: float | None, until: float | None) -> list[int]:
        lo = 0 if since is None else bisect_left(self.whens, since)
        hi = len(self.whens) if until is None else bisect_right(self.whens, until)
        return self.tids[lo:hi]


class ConversationIndex:
    """An in-memory :class:`postroom.threads.ThreadLookup` that applies its own assignments.

    Args:
        options: subject policy, window and prefixes (see :class:`ThreadingOptions`).
    """

    def __init__(self, options: ThreadingOptions | None = None) -> None:
        self.options = options if options is not None else ThreadingOptions()
        self.messages = 0  # messages added or loaded (the size that compaction watches)
        self._ref: dict[str, int] = {}  # Message-ID (own or referenced) -> thread id (maybe merged)
        self._merged_into: dict[int, int] = {}  # merged thread id -> the older one it joined
        self._all: dict[str, _SubjectRows] = {}  # subject key -> every message with it
        self._eligible: dict[str, _SubjectRows] = {}  # subject key -> subject-eligible messages

    # -- the ThreadLookup protocol -------------------------------------------------------
    def find(self, tid: int) -> int:
        """The thread id that ``tid`` is known by now (after merges)."""
        root = tid
        merged = self._merged_into
        while root in merged:
            root = merged[root]
        while tid != root:  # path compression: later finds are one step
            nxt = merged[tid]
            merged[tid] = root
            tid = nxt
        return root

    def _roots(self, tids: set[int]) -> set[int]:
        merged = self._merged_into
        if merged.keys().isdisjoint(tids):  # the common case: no merged ids among them
            return tids
        return {self.find(t) for t in tids}

    def threads_by_message_ids(self, ids: Sequence[str]) -> set[int]:
        get = self._ref.get
        found = {get(i) for i in ids}
        found.discard(None)
        return self._roots(found)  # type: ignore[arg-type]  # None was discarded

    def threads_by_subject(
        self, key: str, since: float | None, until: float | None, *, eligible_only: bool
    ) -> set[int]:
        rows = (self._eligible if eligible_only else self._all).get(key)
        if rows is None:
            return set()
        return self._roots(set(rows.between(since, until)))

    # -- growing ---------------------------------------------------------------------------
    def add(self, message: ThreadMessage, stored: int | None = None) -> ThreadAssignment:
        """Thread a message and record it; ``message.uid`` is its row id.

        Args:
            message: the new message; its uid must be larger than every thread id in use.
            stored: the thread id the store already holds for it (loading), if any.
        Returns:
            The assignment: ``thread_id`` and the conversations ``merged`` into it.
        """
        a = assign_thread(message, self, new_thread_id=message.uid, options=self.options)
        if stored is not None:  # loading: keep the stored id unless an older one joins
            root = self.find(stored)
            found = {root, *a.merged} | ({a.thread_id} if not a.created else set())
            winner = min(found)
            a = ThreadAssignment(winner, tuple(sorted(found - {winner})), a.keys, created=False)
        tid = a.thread_id
        for old in a.merged:
            self._merged_into[old] = tid
        ref = self._ref
        for mid in a.keys.ids:
            if mid not in ref:  # present ids belong to tid or to a conversation merged into it
                ref[mid] = tid
        k = a.keys
        if k.subject_key:
            self._rows(self._all, k.subject_key).add(k.when, tid)
            if k.subject_eligible:
                self._rows(self._eligible, k.subject_key).add(k.when, tid)
        self.messages += 1
        return a

    @staticmethod
    def _rows(table: dict[str, _SubjectRows], key: str) -> _SubjectRows:
        rows = table.get(key)
        if rows is None:
            rows = table[key] = _SubjectRows()
        return rows

    def load(self, conn: sqlite3.Connection) -> Iterator[LoadResult]:
        """Rebuild from the stored messages (those already indexed), in row id order.

        Yields the messages whose stored thread id has to change: messages stored before
        conversations existed (no thread id yet), and conversations that the current
        options join. A store threaded with the same options yields nothing.
        """
        cur = conn.execute(
            f"SELECT id, {RECORD_COLUMNS}, thread_id FROM message WHERE indexed = 1 ORDER BY id"
        )
        for row in cur:
            stored = row[8]
            tid = int(stored) if stored and stored.isdigit() else None
            a = self.add(record_from_row(row), tid)
            if a.merged or a.thread_id != tid:
                yield row[0], a.thread_id, a.merged
