"""PostgreSQL backend: one database shared by any number of postroom nodes.

The same model and contract as SQLite (``store/base.py``, ``tests/contract/``), built from
collaborators that share one :class:`~postroom.store.postgres_db.Db` (pool, transactions,
events): :class:`~postroom.store.postgres_read.Reader` (listings, summaries, threads),
:class:`~postroom.store.postgres_changes.Changes` (read state, tags, deletion) and
:class:`~postroom.store.postgres_changes.Folders` (the IMAP/POP3 view); this module adds
ingest, the work one node does for all (indexing and retention) and the listener that
turns other nodes' notifications into events on this node's bus.

* **Ingest.** :meth:`PostgresStore.deliver` scans the header block, compresses the
  message (LZ4, ``rawcodec.py``), and commits the summary row, the raw row and one
  delivery per recipient mailbox in one transaction; it returns (so SMTP answers 250)
  after the commit. Folders are locked in name order, so concurrent deliveries, also
  from other nodes, cannot deadlock each other; each takes its UID from its folder row.
* **One node indexes and prunes by age.** The node that holds a session advisory lock
  (:data:`~postroom.store.postgres_db.ADVISORY_INDEXER`) parses new messages (snippet,
  attachment count, ``tsvector``, conversation) and applies ``--max-age``; when it stops,
  another node takes the lock within a second. ``--max`` is applied in the ingest
  transaction that goes over it, by whichever node holds a transaction advisory lock
  (:data:`~postroom.store.postgres_db.ADVISORY_RETENTION`) at that moment.
* **Events across nodes.** Every change's events go out with ``pg_notify`` in its own
  transaction (``postgres_events.py``); each node listens on a connection of its own and
  publishes what other nodes sent on its bus, so WebSocket clients, ``/api/v2/wait``,
  webhooks and IMAP IDLE on one node see mail that another accepted.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import psycopg

from ..events import Event, MessagesIndexed, MessagesPruned, MessageStored
from .base import (
    Envelope,
    NotFound,
    StoreClosed,
)
from .composed import Composed
from .header_scan import header_rows
from .postgres_changes import Changes, Folders, delete_ids, tag_id
from .postgres_db import ADVISORY_INDEXER, Conn, Db
from .postgres_events import CHANNEL, StoredRef, decode
from .postgres_ingest import Ingester
from .postgres_outbound import PostgresOutbound
from .postgres_read import Reader
from .postgres_search import compile_query, words
from .rawcodec import unpack

if TYPE_CHECKING:
    from ..config import Settings
    from ..events import Bus
    from .thread_index import ConversationIndex

__all__ = ["PostgresStore", "is_postgres_url"]

log = logging.getLogger(__name__)

INDEX_BATCH = 200  # messages the indexer parses per transaction
INDEX_POLL = 0.5  # seconds between looks for new messages when nobody woke the indexer
LEADER_RETRY = 1.0  # seconds between attempts of a standby node to become the indexer
PRUNE_INTERVAL = 60.0  # seconds between two --max-age passes
LISTEN_START_LIMIT = 10.0  # seconds start() waits for the LISTEN of the event listener
MAX_TSV_CHARS = 200_000  # text per message in the tsvector (PostgreSQL caps one at 1 MB)
# The planner's statistics of the searched tables are gathered by the indexing node when it
# has caught up and the store has grown or shrunk ANALYZE_GROWTH-fold since they were taken
# (from ANALYZE_FROM messages), as SQLite's side does (sqlite_background.py): a server with
# autovacuum off (CI's) would never take them, and a plan for counts from an empty table's
# statistics reads every row. ANALYZE samples at most 30,000 rows a table (~0.1-0.3 s).
ANALYZE_FROM = 1000
ANALYZE_GROWTH = 2.0
ANALYZED = ("message", "message_text", "header_field", "delivery")


def is_postgres_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def _jaddr(items: list[tuple[str, str]]) -> str:
    import json

    return json.dumps([[n, a] for n, a in items], ensure_ascii=False)


class PostgresStore(Composed):
    """The :class:`~postroom.store.base.Store` on PostgreSQL (see the module docstring)."""

    def __init__(self, url: str, settings: Settings, bus: Bus) -> None:
        self.url = url
        self.settings = settings
        self.bus = bus
        self.node = uuid.uuid4().hex[:12]
        self.db = Db(url, bus, self.node)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._listening = threading.Event()  # the listener's LISTEN is in place
        self.reader = Reader(self.db)
        self.message_changes = Changes(self.db)  # typed as itself: delete_mailbox too
        self.folder_view = Folders(self.db)  # ... and the IMAP cache
        super().__init__(self.reader, self.message_changes, self.folder_view)
        self._outbound = PostgresOutbound(self.db)
        self.ingester = Ingester(self.db, settings, self._wake.set)
        self._threads: list[threading.Thread] = []
        self._tag_rules: list[tuple[str, list[Any], tuple[str, ...]]] = []

    @property
    def outbound(self) -> PostgresOutbound:
        """The outbound queue in this database (:class:`postroom.store.outbound.HasOutbound`)."""
        return self._outbound

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.db.open()
        for rule in self.settings.extra.get("tags") or []:
            from .indexer import TagRules

            TagRules([rule])  # validates (RuleError names the problem)
            tags = rule.get("tags")
            names = tuple(
                t.strip() for t in (tags.split(",") if isinstance(tags, str) else tags) if t.strip()
            )
            sql, params = compile_query(rule.get("query", rule.get("match")))
            self._tag_rules.append((sql, params, names))
        self.ingester.start()
        for target, name in ((self._listen, "postroom-pg-listen"), (self._lead, "postroom-pg-indexer")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        # Started means hearing the other nodes: a notification sent before this node's
        # LISTEN is lost to it (a session in IDLE would never hear of that message).
        if not self._listening.wait(LISTEN_START_LIMIT):
            log.warning("not listening for other nodes' events after %.0f s; going on", LISTEN_START_LIMIT)

    def close(self) -> None:
        if self._stop.is_set():
            return
        self.ingester.stop()  # what was queued is stored first
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(5)
        self.db.close()

    # -- ingest ----------------------------------------------------------------------------
    async def deliver(self, envelope: Envelope, raw: bytes, *, tags: tuple[str, ...] = ()) -> str:
        if self.db.closed:
            raise StoreClosed("store is closed")
        pid, _ = await asyncio.wrap_future(self.ingester.submit(envelope, raw, tags))
        return pid

    async def append(
        self,
        mailbox: str,
        folder: str,
        raw: bytes,
        flags: frozenset[str] = frozenset(),
        internaldate: float | None = None,
        thread_key: str = "",
    ) -> tuple[int, int]:
        info = await asyncio.to_thread(self.folder_info, mailbox, folder)
        if info is None:
            raise NotFound(f"no folder {folder!r}")
        env = Envelope(mail_from="", rcpt_to=(mailbox,), received_at=internaldate or time.time())
        _, uid = await asyncio.wrap_future(
            self.ingester.submit(env, raw, (), (info.mailbox, info.name), flags, thread_key)
        )
        return info.uidvalidity, uid

    # -- the node that indexes ----------------------------------------------------------------
    def _lead(self) -> None:
        """Become the indexing node when no other is, then index and prune by age."""
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as lock:
                    while not self._stop.is_set():
                        if lock.execute(
                            "SELECT pg_try_advisory_lock(%s)", (ADVISORY_INDEXER,)
                        ).fetchone() == (True,):
                            self._index_forever()
                            return
                        self._stop.wait(LEADER_RETRY)
            except psycopg.Error:
                if self._stop.is_set():
                    return
                log.warning("indexer lost its database connection; retrying", exc_info=True)
                self._stop.wait(LEADER_RETRY)

    def _index_forever(self) -> None:
        from .thread_index import ConversationIndex, options_from_settings, record_from_row

        options = options_from_settings(self.settings)
        index = ConversationIndex(options) if options is not None else None
        if index is not None:
            with self.db.read() as conn:
                for r in conn.execute(
                    "SELECT id, message_id, in_reply_to, refs, subject, date, created, thread_key, thread_id FROM message "
                    "WHERE indexed = 1 ORDER BY id"
                ):
                    index.add(record_from_row(r), int(r[8]) if r[8] and r[8].isdigit() else None)
        last_prune = 0.0
        grown = True  # look at the statistics once at start, then after indexing
        while not self._stop.is_set():
            try:
                did = self._index_batch(index)
                if time.monotonic() - last_prune > PRUNE_INTERVAL:
                    last_prune = time.monotonic()
                    self._prune_age()
                if did:
                    grown = True
                elif grown:
                    grown = False
                    self._clean_pending()
                    self._maybe_analyze()
            except (StoreClosed, psycopg.Error):
                if self._stop.is_set():
                    return
                log.warning("indexing failed; retrying", exc_info=True)
                did = False
            if not did:
                self._wake.wait(INDEX_POLL)
                self._wake.clear()

    def _clean_pending(self) -> None:
        """Move the pending entries of the searched GIN indexes into the indexes proper.

        A GIN index takes new entries into a pending list (``fastupdate``), which every
        search reads whole until VACUUM or the list's size limit (4 MB) merges it: with
        autovacuum off, or between its rounds, a rare word's search read ~9 ms of pending
        list for 36 matches. The indexing node merges it when it has caught up."""
        with self.db.read() as conn:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'gin' AND i.indrelid = ANY(%s::regclass[])",
                    (list(ANALYZED),),
                )
            ]
            for name in names:
                conn.execute("SELECT gin_clean_pending_list(%s::regclass)", (name,))

    def _maybe_analyze(self) -> None:
        """ANALYZE the searched tables when the store has changed size ``ANALYZE_GROWTH``-fold
        since their statistics were taken (``reltuples`` of message_text: -1 before any)."""
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT (SELECT coalesce(sum(messages), 0) FROM message_count), "
                "(SELECT reltuples FROM pg_class WHERE oid = 'message_text'::regclass)"
            ).fetchone()
            assert row is not None
            messages, analyzed = int(row[0]), float(row[1])
            if messages < ANALYZE_FROM:
                return
            if analyzed > 0 and analyzed / ANALYZE_GROWTH < messages < analyzed * ANALYZE_GROWTH:
                return
            conn.execute("ANALYZE " + ", ".join(ANALYZED))

    def _index_batch(self, index: ConversationIndex | None) -> bool:
        from .indexer import extract
        from .thread_index import record_from_row

        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT m.id, m.message_id, m.in_reply_to, m.refs, m.subject, m.date, m.created, m.thread_key, m.pid, r.data "
                "FROM message m JOIN raw r ON r.id = m.id WHERE m.indexed = 0 ORDER BY m.id LIMIT %s",
                (INDEX_BATCH,),
            ).fetchall()
        if not rows:
            return self._count_inline()
        results = []
        for r in rows:
            raw = unpack(bytes(r[9]))
            data = extract(raw)
            text = " ".join(words(" ".join((data.subject, data.addresses, data.body, data.attachment_names))))
            thread, merged = "", tuple[str, ...]()
            if index is not None:
                a = index.add(record_from_row(r[:8]))
                thread, merged = str(a.thread_id), tuple(str(m) for m in a.merged)
            results.append(
                (
                    r[0],
                    r[8],
                    data.snippet,
                    data.attachments,
                    data.inline,
                    text[:MAX_TSV_CHARS],
                    thread,
                    merged,
                    header_rows(raw, packed=False),
                )
            )

        def fn(conn: Conn, events: list[Event]) -> None:
            done = []
            for mid, pid, snippet, attachments, inline, text, thread, merged, fields in results:
                got = conn.execute(
                    "UPDATE message SET snippet = %s, attachments = %s, inline_parts = %s, thread_id = %s, "
                    "indexed = 1, headers = '' WHERE id = %s AND indexed = 0 RETURNING read",
                    (snippet, attachments, inline, thread, mid),
                ).fetchone()
                if merged:
                    conn.execute(
                        "UPDATE message SET thread_id = %s WHERE thread_id = ANY(%s)", (thread, list(merged))
                    )
                if got is None:
                    continue  # deleted meanwhile
                # header: reads header_field from now on, so the header lines (~0.7 KB of a
                # ~2 KB row with a Received trail and a DKIM signature) are dropped: every scan
                # or row visit of the message table reads fewer pages.
                # The full text and the read flag free text counts read (0020_message_text.sql);
                # the message's row stays locked by the update above until the commit, so a
                # change of its read state waits and then updates this row by its trigger
                conn.execute(
                    "INSERT INTO message_text (id, read, tsv) VALUES (%s, %s, to_tsvector('simple', %s)) "
                    "ON CONFLICT (id) DO UPDATE SET read = excluded.read, tsv = excluded.tsv",
                    (mid, got[0], text),
                )
                with conn.cursor() as cur:  # header: reads these once indexed = 1 (0016)
                    cur.executemany(
                        "INSERT INTO header_field (message, seq, name, value) VALUES (%s, %s, %s, %s) "
                        "ON CONFLICT DO NOTHING",
                        [(mid, seq, name, value) for name, seq, value in fields],
                    )
                done.append(pid)
                for sql, params, names in self._tag_rules:
                    if conn.execute(
                        f"SELECT 1 FROM message m WHERE m.id = %s AND ({sql})", [mid, *params]
                    ).fetchone():
                        for t in names:
                            conn.execute(
                                "INSERT INTO message_tag (message, tag) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                                (mid, tag_id(conn, t)),
                            )
            if done:
                events.append(MessagesIndexed(tuple(done)))

        self.db.write(fn)
        return True

    def _count_inline(self) -> bool:
        """Count the inline parts of up to INDEX_BATCH indexed messages stored before the
        count existed (``inline_parts`` NULL); False when there are none left."""
        from .indexer import count_inline

        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT m.id, r.data FROM message m JOIN raw r ON r.id = m.id "
                "WHERE m.inline_parts IS NULL AND m.indexed = 1 ORDER BY m.id LIMIT %s",
                (INDEX_BATCH,),
            ).fetchall()
        if not rows:
            return False
        counts = [(count_inline(bytes(data)), mid) for mid, data in rows]

        def fn(conn: Conn, events: list[Event]) -> None:
            with conn.cursor() as cur:
                cur.executemany(
                    "UPDATE message SET inline_parts = %s WHERE id = %s AND inline_parts IS NULL", counts
                )

        self.db.write(fn)
        return True

    def _prune_age(self) -> None:
        age = self.settings.max_age_seconds
        if not age:
            return
        cutoff = time.time() - age

        def fn(conn: Conn, events: list[Event]) -> None:
            victims = [r[0] for r in conn.execute("SELECT id FROM message WHERE created < %s", (cutoff,))]
            if victims:
                events.append(MessagesPruned(tuple(delete_ids(conn, victims, events))))

        self.db.write(fn)

    def wait_indexed(self, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while self.reader.pending():
            if time.monotonic() >= deadline:
                return False
            self._wake.set()
            time.sleep(0.02)
        return True

    # -- events from other nodes ----------------------------------------------------------------
    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.25):
                            self._received(note.payload)
            except psycopg.Error:
                if self._stop.is_set():
                    return
                log.warning("event listener lost its database connection; retrying", exc_info=True)
                self._stop.wait(1.0)

    def _received(self, payload: str) -> None:
        try:
            node, ev = decode(payload)
        except ValueError:
            log.warning("ignoring an event notification that does not parse")
            return
        if node == self.node:
            return
        if isinstance(ev, StoredRef):
            summary = self.reader.get_summary(ev.id)
            if summary is None:
                return
            ev = MessageStored(summary, ev.placed)
        self.bus.publish(ev)

    # -- served by the parts (composed.Composed) but for these ---------------------------------
    def unindexed(self, ids: list[str]) -> list[str]:
        return self.reader.unindexed(ids)

    def delete_mailbox(self, mailbox: str) -> list[str]:
        return self.message_changes.delete_mailbox(mailbox)

    def imap_cache_get(self, kind: str, ids: list[str], prefix: int | None = None) -> dict[str, bytes]:
        return self.folder_view.imap_cache_get(kind, ids, prefix)

    def imap_cache_put(self, kind: str, items: dict[str, bytes]) -> None:
        self.folder_view.imap_cache_put(kind, items)

    def conversation_ids(self, ids: list[str]) -> dict[str, tuple[int, str, bool]]:
        return self.folder_view.conversation_ids(ids)

    def message_tags(self, ids: list[str]) -> dict[str, list[str]]:
        return self.folder_view.message_tags(ids)
