"""Conversation threading: RFC 5256 base subjects, THREAD=REFERENCES / ORDEREDSUBJECT, and
the incremental conversation index behind ``ThreadID``.

Pure: no I/O, no clock, no globals that change. Three layers:

* :func:`base_subject` -- RFC 5256 section 2.1 subject canonicalisation, optionally extended
  with the localized reply/forward prefixes real clients send (``AW:``, ``SV:``, ``回复:`` ...),
  and :func:`parse_message_ids`; both live in :mod:`postroom.threadkeys`, re-exported here.
* :func:`thread_references` and :func:`thread_orderedsubject` -- the RFC 5256 section 3
  algorithms over a set of :class:`ThreadMessage` records (one IMAP folder, one search
  result), returning :class:`ThreadNode` trees; :func:`format_thread_response` renders them
  as the IMAP ``THREAD`` response data. Where the RFC leaves room, the choices are
  Dovecot's, so that answers equal Dovecot's for the same mailbox (docs/threads.md lists
  them; tests/interop/test_thread_dovecot.py checks it).
* :func:`assign_thread` -- the incremental conversation threader for the store: a new
  message joins, or merges, the conversations it is connected to through Message-IDs
  (its own, References, In-Reply-To) and, optionally, its base subject within a time
  window. The store answers the questions through the small :class:`ThreadLookup`
  protocol (indexed SQL); :class:`MemoryThreadIndex` is the in-memory reference.
  :func:`conversations` is the batch definition the incremental result always equals.

Nothing here recurses: chains thousands of messages deep are ordinary input.

Errors::

    ThreadError (ValueError)      invalid arguments (two records with one uid, bad window)
"""

from __future__ import annotations

import enum
import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Protocol

from postroom.charsets import date_timestamp
from postroom.threadkeys import (
    LOCALIZED_FORWARD_PREFIXES,
    LOCALIZED_REPLY_PREFIXES,
    BaseSubject,
    base_subject,
    decode_subject,
    parse_message_ids,
    subject_key,
)

__all__ = [
    "DEFAULT_SUBJECT_WINDOW",
    "LOCALIZED_FORWARD_PREFIXES",
    "LOCALIZED_REPLY_PREFIXES",
    "BaseSubject",
    "MemoryThreadIndex",
    "SubjectPolicy",
    "ThreadAssignment",
    "ThreadError",
    "ThreadKeys",
    "ThreadLookup",
    "ThreadMessage",
    "ThreadNode",
    "ThreadingOptions",
    "assign_thread",
    "base_subject",
    "conversations",
    "decode_subject",
    "format_thread_response",
    "parse_message_ids",
    "subject_key",
    "thread_keys",
    "thread_orderedsubject",
    "thread_references",
    "walk",
]

# Subject-only grouping never links two messages whose dates are further apart than this
# (seconds). Thirty days: long enough for a slow reply, short enough that the monthly
# "Your invoice" mails of a test suite stay apart. Configurable per call.
DEFAULT_SUBJECT_WINDOW = 30 * 24 * 3600.0


class ThreadError(ValueError):
    """Invalid arguments to a threading function (the message says which)."""


# -- records and trees -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    """What threading needs to know about one message.

    ``uid`` orders messages by arrival (an IMAP UID, or the store's row id) and breaks
    ties between equal dates. Message-IDs are normalized (no ``<>``; see
    :func:`parse_message_ids`). ``date`` is the Date: header in UTC epoch seconds (None
    when missing or unparsable); ``internaldate`` (arrival) stands in for it then, as
    RFC 5256 section 2.2 says. ``id`` is the caller's handle, untouched here.
    """

    uid: int
    message_id: str = ""
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    subject: str = ""
    date: float | None = None
    internaldate: float = 0.0
    id: str = ""
    # a conversation key from outside the headers (Gmail's X-GM-THRID, kept by postroom
    # fetch): messages sharing one connect as if they shared a Message-ID; never a
    # Message-ID itself (the store's keys hold white space, which no parsed id does)
    thread_key: str = ""

    @property
    def sort_date(self) -> int:
        """The sent date in whole seconds, or the internal date when there is none."""
        d = self.date if self.date else self.internaldate
        return math.floor(d)

    @classmethod
    def from_headers(
        cls,
        uid: int,
        *,
        message_id: str | None = None,
        in_reply_to: str | None = None,
        references: str | Sequence[str] | None = None,
        subject: str | None = None,
        date: str | float | None = None,
        internaldate: float = 0.0,
        id: str = "",
    ) -> ThreadMessage:
        """Build a record from raw header values (or already-split lists).

        Encoded words in ``subject`` are decoded (RFC 2047); ``date`` may be a Date:
        header value or epoch seconds. Unusable values count as absent.
        """
        if references is not None and not isinstance(references, str):
            references = " ".join(r if "<" in r else f"<{r}>" for r in references)
        ids = parse_message_ids(message_id)
        irt = parse_message_ids(in_reply_to)
        if isinstance(date, str):
            date = date_timestamp(date)
        return cls(
            uid=uid,
            message_id=ids[0] if ids else "",
            in_reply_to=irt[0] if irt else "",
            references=tuple(parse_message_ids(references)),
            subject=decode_subject(subject),
            date=date,
            internaldate=internaldate,
            id=id,
        )


@dataclass(eq=False, repr=False, slots=True)
class ThreadNode:
    """One node of a thread tree; ``message`` is None only for a dummy at the root."""

    message: ThreadMessage | None
    children: list[ThreadNode] = field(default_factory=list)

    def __repr__(self) -> str:  # shallow on purpose: trees can be thousands deep
        uid = "dummy" if self.message is None else self.message.uid
        return f"ThreadNode({uid}, children={len(self.children)})"


def walk(trees: Iterable[ThreadNode]) -> Iterator[tuple[int, ThreadNode]]:
    """Yield ``(depth, node)`` for every node, depth first, in order (no recursion)."""
    stack = [(0, n) for n in reversed(list(trees))]
    while stack:
        depth, node = stack.pop()
        yield depth, node
        stack.extend((depth + 1, c) for c in reversed(node.children))


def format_thread_response(
    trees: Sequence[ThreadNode], key: Callable[[ThreadMessage], int] = lambda m: m.uid
) -> bytes:
    """Render trees as RFC 5256 section 4 ``thread-list`` data, e.g. ``(2)(3 6 (4 23)(44 7 96))``.

    A node with one child is followed by it in the same list; two or more children
    each get a parenthesized list; a dummy root shows only its children, ``((3)(5))``.

    Args:
        trees: the roots, in order (as returned by the threading functions).
        key: the number to show: the UID (``UID THREAD``) or the sequence number.
    Returns:
        The bytes after ``* THREAD `` (empty when there are no messages).
    """
    out: list[str] = []
    stack: list[str | tuple[Sequence[ThreadNode], bool]] = [(trees, True)]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        nodes, top = item
        if not top and len(nodes) == 1:
            node = nodes[0]
            if node.message is not None:
                out.append(str(key(node.message)))
                if node.children:
                    out.append(" ")
            if node.children:
                stack.append((node.children, False))
            continue
        for node in reversed(nodes):
            if not node.children:
                if node.message is not None:
                    stack.append(f"({key(node.message)})")
                continue
            stack.append(")")
            stack.append((node.children, False))
            stack.append("(" if node.message is None else f"({key(node.message)} ")
    return "".join(out).encode("ascii")


# -- THREAD=REFERENCES (RFC 5256 section 3) ------------------------------------------------


class _C:
    """A container: one Message-ID's place in the tree, with or without its message."""

    __slots__ = ("dummy_root", "ignore", "kids", "msg", "parent", "reply", "sort", "up")

    def __init__(self, msg: ThreadMessage | None = None) -> None:
        self.msg = msg
        self.parent: _C | None = None
        self.kids: list[_C] = []
        self.sort: tuple[int, int] = (0, 0)
        self.up: _C | None = None  # subject merging: the next root towards the table entry
        self.reply = False
        self.ignore = False
        self.dummy_root = False


def _link(parent: _C, child: _C) -> None:
    """Make ``parent`` the parent of ``child`` unless it has one or that would loop."""
    if child.parent is not None:
        return  # RFC 5256 3 (1)(A): an existing link is kept
    p: _C | None = parent
    while p is not None:
        if p is child:
            return  # the link would introduce a loop
        p = p.parent
    child.parent = parent


def _sort_key(c: _C) -> tuple[int, int]:
    return c.sort


def _check_uids(messages: Sequence[ThreadMessage]) -> list[ThreadMessage]:
    ordered = sorted(messages, key=lambda m: m.uid)
    for a, b in pairwise(ordered):
        if a.uid == b.uid:
            raise ThreadError(f"two messages with uid {a.uid}")
    return ordered


def _link_all(ordered: Sequence[ThreadMessage]) -> list[_C]:
    """Step (1): containers for every Message-ID and the links between them."""
    table: dict[str, _C] = {}
    unique: list[_C] = []

    def get(mid: str) -> _C:
        c = table.get(mid)
        if c is None:
            c = table[mid] = _C()
        return c

    for m in ordered:
        c = table.get(m.message_id) if m.message_id else None
        if c is None and m.message_id:
            c = table[m.message_id] = _C(m)
        elif c is not None and c.msg is None:
            c.msg = m
        else:  # no Message-ID, or a duplicate: the first keeps the id, this one gets its own
            c = _C(m)
            unique.append(c)
        refs = m.references or ((m.in_reply_to,) if m.in_reply_to else ())
        parent: _C | None = None
        if refs:
            parent = get(refs[0])
            for r in refs[1:]:
                nxt = get(r)
                _link(parent, nxt)
                parent = nxt
        # (1)(B): the message's own references win over what others presumed
        if c.parent is not None and c.parent is not parent:
            c.parent = None
        if parent is not None and c.parent is not parent:
            _link(parent, c)
    return [*table.values(), *unique]


def _prune(containers: list[_C]) -> list[_C]:
    """Steps (2)-(4): attach each message below its nearest real ancestor; return roots."""
    roots: list[_C] = []
    for c in containers:
        if c.parent is None:
            roots.append(c)
            continue
        if c.msg is None:
            continue  # a dummy inside a tree disappears; its messages move up
        p = c.parent
        while p.msg is None and p.parent is not None:
            p = p.parent
        p.kids.append(c)
    out: list[_C] = []
    for r in roots:
        if r.msg is not None:
            out.append(r)
        elif len(r.kids) == 1:
            out.append(r.kids[0])  # a dummy root with one child: the child is the root
        elif r.kids:
            r.dummy_root = True
            out.append(r)
    return out


def _set_sort_keys(roots: Iterable[_C]) -> None:
    """Sort every sibling list by (sent date, uid); a dummy sorts as its first child."""
    order: list[_C] = []
    stack = list(roots)
    while stack:
        c = stack.pop()
        order.append(c)
        stack.extend(c.kids)
    for c in reversed(order):  # children before parents
        if c.kids:
            c.kids.sort(key=_sort_key)
        if c.msg is not None:
            c.sort = (c.msg.sort_date, c.msg.uid)
        elif c.kids:
            c.sort = c.kids[0].sort


def _group_by_subject(roots: list[_C], localized: bool) -> list[_C]:
    """Step (5): merge root threads whose thread subject is the same."""
    table: dict[str, _C] = {}
    for r in roots:
        first = r.kids[0].msg if r.dummy_root else r.msg
        bs = base_subject(first.subject if first is not None else "", localized=localized)
        if not bs.key:
            continue
        h = table.get(bs.key)
        if h is None:
            table[bs.key] = r
        elif not h.dummy_root and (r.dummy_root or (h.reply and not bs.is_reply_or_forward)):
            h.up = r
            table[bs.key] = r
        else:
            r.up = h
        r.reply = bs.is_reply_or_forward
    i = 0
    while i < len(roots):  # roots grows while merging; new dummies never merge again
        cur = roots[i]
        i += 1
        if cur.up is None or cur.ignore:
            continue
        top = cur.up
        while top.up is not None:
            top = top.up
        if cur.dummy_root:  # both dummies: the children become siblings
            top.kids.extend(cur.kids)
            cur.kids = []
            cur.ignore = True
        elif top.dummy_root or (cur.reply and not top.reply):
            top.kids.append(cur)
            cur.ignore = True
        else:  # two thread starters: a new dummy holds both
            dummy = _C()
            dummy.dummy_root = True
            dummy.kids = [top, cur]
            top.up = dummy
            top.ignore = cur.ignore = True
            roots.append(dummy)
    return [r for r in roots if not r.ignore]


def _to_nodes(roots: list[_C]) -> list[ThreadNode]:
    out = [ThreadNode(None if r.dummy_root else r.msg) for r in roots]
    stack = list(zip(roots, out, strict=True))
    while stack:
        c, node = stack.pop()
        for k in c.kids:
            child = ThreadNode(k.msg)
            node.children.append(child)
            stack.append((k, child))
    return out


def thread_references(
    messages: Sequence[ThreadMessage], *, localized: bool = False, group_by_subject: bool = True
) -> list[ThreadNode]:
    """Thread messages with the REFERENCES algorithm (RFC 5256 section 3, after JWZ).

    Links come from References (or, without it, the first In-Reply-To id); existing
    links are kept and loops refused; a duplicate Message-ID keeps its first message;
    dummies are pruned; root threads with the same base subject are gathered; siblings
    are sorted by sent date, then uid.

    Args:
        messages: the records (any order; ``uid`` gives the processing order).
        localized: strip localized reply prefixes when gathering by subject (False:
            exactly RFC 5256, which is what Dovecot answers).
        group_by_subject: run step (5); False threads by references only.
    Returns:
        The thread roots, sorted. Every message appears exactly once.
    Raises:
        ThreadError: two records share a uid.
    """
    ordered = _check_uids(messages)
    roots = _prune(_link_all(ordered))
    _set_sort_keys(roots)
    roots.sort(key=_sort_key)
    if group_by_subject:
        roots = _group_by_subject(roots, localized)
        _set_sort_keys(roots)
        roots.sort(key=_sort_key)
    return _to_nodes(roots)


def thread_orderedsubject(messages: Sequence[ThreadMessage], *, localized: bool = False) -> list[ThreadNode]:
    """Thread messages with ORDEREDSUBJECT (RFC 5256 section 3).

    Messages sorted by (base subject, sent date, uid) form one thread per base subject
    (messages without one form a thread together); its first message is the parent of
    the others. Threads are sorted by their first message's sent date, then uid.

    Raises:
        ThreadError: two records share a uid.
    """
    keyed = [
        (base_subject(m.subject, localized=localized).key, m.sort_date, m.uid, m)
        for m in _check_uids(messages)
    ]
    keyed.sort(key=lambda t: t[:3])
    threads: list[ThreadNode] = []
    prev: str | None = None
    for k, _, _, m in keyed:
        if k != prev:
            threads.append(ThreadNode(m))
            prev = k
        else:
            threads[-1].children.append(ThreadNode(m))
    threads.sort(key=lambda n: (n.message.sort_date, n.message.uid) if n.message else (0, 0))
    return threads


# -- conversations: the store's incremental ThreadID -----------------------------------------


class SubjectPolicy(enum.Enum):
    """When a message may join a conversation by its base subject alone."""

    OFF = "off"  # never: Message-IDs only
    REPLIES = "replies"  # a reply/forward with no References/In-Reply-To (Thunderbird's default)
    ALL = "all"  # any message with no References/In-Reply-To (JWZ's subject gathering)


@dataclass(frozen=True, slots=True)
class ThreadingOptions:
    """How conversations are formed (see docs/threads.md)."""

    subject_policy: SubjectPolicy = SubjectPolicy.REPLIES
    subject_window: float | None = DEFAULT_SUBJECT_WINDOW  # seconds; None: no limit
    localized: bool = True

    def __post_init__(self) -> None:
        if self.subject_window is not None and not self.subject_window >= 0:
            raise ThreadError(f"subject_window must be >= 0 seconds, not {self.subject_window!r}")


@dataclass(frozen=True, slots=True)
class ThreadKeys:
    """What the store records about a message so that later messages can find it."""

    ids: tuple[str, ...]  # own Message-ID (if any) and every referenced id, deduplicated
    subject_key: str  # base-subject key; "" when subject matching is off or empty
    subject_eligible: bool  # this message may join others by subject alone
    when: int  # sort date (seconds) used for the subject window


def thread_keys(message: ThreadMessage, options: ThreadingOptions = ThreadingOptions()) -> ThreadKeys:
    """Compute the lookup keys of a message (pure; what the store indexes)."""
    ids = dict.fromkeys(
        x for x in (message.message_id, *message.references, message.in_reply_to, message.thread_key) if x
    )
    key, eligible = "", False
    if options.subject_policy is not SubjectPolicy.OFF:
        bs = base_subject(message.subject, localized=options.localized)
        key = bs.key
        if key and not message.references and not message.in_reply_to:
            eligible = options.subject_policy is SubjectPolicy.ALL or bs.is_reply_or_forward
    return ThreadKeys(tuple(ids), key, eligible, message.sort_date)


class ThreadLookup(Protocol):
    """The two indexed questions the incremental threader asks the store.

    ``thread_ref(message_id PRIMARY KEY, thread_id)`` answers the first: it holds every
    Message-ID seen so far, a message's own and every one it referenced, so it also
    finds earlier replies whose parent is only now arriving. An index on the message
    rows' ``(subject_key, sort_date)`` answers the second. See docs/threads.md.
    """

    def threads_by_message_ids(self, ids: Sequence[str]) -> Iterable[int]:
        """Thread ids recorded for any of ``ids``."""
        ...

    def threads_by_subject(
        self, key: str, since: float | None, until: float | None, *, eligible_only: bool
    ) -> Iterable[int]:
        """Thread ids of messages with this subject key dated within [since, until]
        (None: unbounded), only subject-eligible messages when ``eligible_only``."""
        ...


@dataclass(frozen=True, slots=True)
class ThreadAssignment:
    """The threader's answer for one new message."""

    thread_id: int  # the conversation the message belongs to
    merged: tuple[int, ...]  # existing conversations to fold into ``thread_id``
    keys: ThreadKeys  # to record: thread_ref rows for keys.ids, the subject columns
    created: bool = False  # True: the message starts a conversation (``new_thread_id``)


def assign_thread(
    message: ThreadMessage,
    lookup: ThreadLookup,
    *,
    new_thread_id: int,
    options: ThreadingOptions = ThreadingOptions(),
) -> ThreadAssignment:
    """Decide the conversation of a new message and which conversations it joins together.

    A message is connected to every earlier message that shares a Message-ID with it
    (its own id, References, In-Reply-To: replies that came before their parent are
    found through the parent's id), and, by subject, to messages with the same base
    subject dated within the window when either of the two is subject-eligible. All
    conversations it connects merge; the oldest (smallest) thread id survives, so a
    conversation's id never changes once given unless it merges into an older one.

    Args:
        message: the new message.
        lookup: the store's answers (see :class:`ThreadLookup`).
        new_thread_id: the id to use when the message connects to nothing; must be
            greater than every existing thread id (e.g. the message's row id).
        options: subject policy, window and prefixes.
    Returns:
        The :class:`ThreadAssignment`; the store then records ``keys`` under
        ``thread_id`` and rewrites the ``merged`` conversations to ``thread_id``.
    """
    keys = thread_keys(message, options)
    found: set[int] = set(lookup.threads_by_message_ids(keys.ids)) if keys.ids else set()
    if keys.subject_key:
        w = options.subject_window
        since, until = (None, None) if w is None else (keys.when - w, keys.when + w)
        found.update(
            lookup.threads_by_subject(keys.subject_key, since, until, eligible_only=not keys.subject_eligible)
        )
    if not found:
        return ThreadAssignment(new_thread_id, (), keys, created=True)
    winner = min(found)
    return ThreadAssignment(winner, tuple(sorted(found - {winner})), keys)


class MemoryThreadIndex:
    """An in-memory :class:`ThreadLookup` that also applies assignments (tests, tools).

    It does what the SQL store does: a ``thread_ref`` map, per-message subject rows,
    and conversation merges. Thread ids are the uid of each conversation's first message.
    """

    def __init__(self, options: ThreadingOptions = ThreadingOptions()) -> None:
        self.options = options
        self.thread_of: dict[int, int] = {}  # uid -> thread id
        self._ref: dict[str, int] = {}  # message-id -> thread id
        self._ids_of: dict[int, list[str]] = {}  # thread id -> message-ids recorded for it
        self._members: dict[int, list[int]] = {}  # thread id -> uids
        self._subjects: dict[str, list[tuple[int, bool, int]]] = {}  # key -> (when, eligible, uid)

    def threads_by_message_ids(self, ids: Sequence[str]) -> set[int]:
        return {t for t in (self._ref.get(i) for i in ids) if t is not None}

    def threads_by_subject(
        self, key: str, since: float | None, until: float | None, *, eligible_only: bool
    ) -> set[int]:
        return {
            self.thread_of[uid]
            for when, eligible, uid in self._subjects.get(key, ())
            if (since is None or when >= since)
            and (until is None or when <= until)
            and (eligible or not eligible_only)
        }

    def add(self, message: ThreadMessage) -> ThreadAssignment:
        """Thread ``message`` (its uid must be new and larger than the thread ids in use)."""
        if message.uid in self.thread_of:
            raise ThreadError(f"uid {message.uid} was already added")
        a = assign_thread(message, self, new_thread_id=message.uid, options=self.options)
        tid = a.thread_id
        members = self._members.setdefault(tid, [])
        ids = self._ids_of.setdefault(tid, [])
        for old in a.merged:
            for uid in self._members.pop(old):
                self.thread_of[uid] = tid
                members.append(uid)
            for mid in self._ids_of.pop(old):
                self._ref[mid] = tid
                ids.append(mid)
        for mid in a.keys.ids:
            if mid not in self._ref:
                self._ref[mid] = tid
                ids.append(mid)
        self.thread_of[message.uid] = tid
        members.append(message.uid)
        if a.keys.subject_key:
            self._subjects.setdefault(a.keys.subject_key, []).append(
                (a.keys.when, a.keys.subject_eligible, message.uid)
            )
        return a

    def partition(self) -> list[list[int]]:
        """The conversations as sorted lists of uids, sorted by their first uid."""
        return sorted(sorted(v) for v in self._members.values())


def conversations(
    messages: Sequence[ThreadMessage], options: ThreadingOptions = ThreadingOptions()
) -> list[list[ThreadMessage]]:
    """The conversations of a set of messages, computed at once (the batch definition).

    Two messages are in one conversation when a chain of links joins them: sharing any
    Message-ID (own, References, In-Reply-To), or the same base subject within the window
    with at least one of them subject-eligible. :class:`MemoryThreadIndex` and any store
    using :func:`assign_thread` reach the same partition whatever the arrival order.

    Returns:
        Groups of messages sorted by uid, groups ordered by their first uid.
    Raises:
        ThreadError: two records share a uid.
    """
    ordered = _check_uids(messages)
    parent = list(range(len(ordered)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    owner: dict[str, int] = {}
    by_subject: dict[str, list[tuple[int, int, bool]]] = {}
    for i, m in enumerate(ordered):
        keys = thread_keys(m, options)
        for mid in keys.ids:
            j = owner.setdefault(mid, i)
            union(i, j)
        if keys.subject_key:
            by_subject.setdefault(keys.subject_key, []).append((keys.when, i, keys.subject_eligible))
    w = options.subject_window
    for rows in by_subject.values():
        rows.sort()
        whens = [r[0] for r in rows]
        # each eligible message links everything dated within the window around it: an
        # interval of the sorted rows; intervals sharing a row make one group
        spans = sorted(
            (0, len(rows) - 1)
            if w is None
            else (bisect_left(whens, when - w), bisect_right(whens, when + w) - 1)
            for when, _, eligible in rows
            if eligible
        )
        joined: list[list[int]] = []
        for lo, hi in spans:
            if joined and lo <= joined[-1][1]:
                joined[-1][1] = max(joined[-1][1], hi)
            else:
                joined.append([lo, hi])
        for lo, hi in joined:
            for k in range(lo + 1, hi + 1):
                union(rows[lo][1], rows[k][1])
    groups: dict[int, list[ThreadMessage]] = {}
    for i, m in enumerate(ordered):
        groups.setdefault(find(i), []).append(m)
    return sorted(groups.values(), key=lambda g: g[0].uid)
