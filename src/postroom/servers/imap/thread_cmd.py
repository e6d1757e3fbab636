"""THREAD (RFC 5256 section 3): ORDEREDSUBJECT and REFERENCES over :mod:`postroom.threads`."""

from __future__ import annotations

from ...protocols.imap.args import Args
from ...protocols.imap.errors import ParseError
from ...protocols.imap.search import CHARSETS, BadCharset, parse_criteria
from ...threads import ThreadMessage, format_thread_response, thread_orderedsubject, thread_references
from .messages import MessageView, prefetch
from .selected import SEARCH_CHUNK, SelectedCommands

__all__ = ["ALGORITHMS", "ThreadCommands"]

Reply = tuple[str, str | None]

ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")


def _record(v: MessageView) -> ThreadMessage:
    return ThreadMessage.from_headers(
        v.uid,
        message_id=v.raw_header("message-id"),
        in_reply_to=v.raw_header("in-reply-to"),
        references=v.raw_header("references"),
        subject=v.raw_header("subject"),
        date=v.raw_header("date"),
        internaldate=v.internaldate,
    )


class ThreadCommands(SelectedCommands):
    def thread_available(self) -> bool:
        return True

    async def cmd_thread(self, args: Args, uid: bool) -> Reply:
        sel = self.require_selected()
        algorithm = args.atom("threading algorithm").upper()
        if algorithm not in ALGORITHMS:
            raise ParseError(f"unknown threading algorithm {algorithm[:20]}")
        charset = args.text("charset").upper()
        if charset not in CHARSETS:
            raise BadCharset(charset)
        key = parse_criteria(args, charset)
        await self.sync_selected(allow_expunge=uid, with_uid=uid)

        def run() -> bytes:
            found = self._run_search(sel, key)
            seqs = {v.uid: v.seq for v in found}
            # the header fields of a chunk at a time, let go once its records are made: a
            # THREAD over a large folder holds the records, not every message's fields
            records = []
            for start in range(0, len(found), SEARCH_CHUNK):
                chunk = found[start : start + SEARCH_CHUNK]
                prefetch(self.cache, chunk, headers=True, text=False)
                records += [_record(v) for v in chunk]
                for v in chunk:
                    v.release()
            trees = (
                thread_references(records) if algorithm == "REFERENCES" else thread_orderedsubject(records)
            )
            return format_thread_response(trees, (lambda m: m.uid) if uid else (lambda m: seqs[m.uid]))

        data = await self.blocking(run)
        self.write(b"* THREAD " + data + b"\r\n" if data else b"* THREAD\r\n")
        return "THREAD completed", None
