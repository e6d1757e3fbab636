"""Contract: "mark all read" and its reverse over a whole store or one mailbox (the UI's
button, ``PUT /api/v1/messages`` with no IDs) keep every derived figure right: the
conversations' unread counts, the store's and each mailbox's counts, and each delivery's
IMAP flags and MODSEQ (RFC 7162 3.1: above every MODSEQ its folder had; other flags kept).
"""

from __future__ import annotations

from postroom.store.base import INBOX, FolderInfo

from .conftest import Backend, message

ALICE, BOB = "alice@example.org", "bob@example.org"


def _conversations(backend: Backend) -> dict[str, tuple[int, int]]:
    """thread ID -> (messages, unread) as the conversation listing gives them."""
    page = backend.store.list_threads(limit=100)
    return {t.thread_id: (t.messages, t.unread) for t in page.threads}


def _grouped(backend: Backend) -> dict[str, tuple[int, int]]:
    """The same figures counted from the messages themselves."""
    out: dict[str, tuple[int, int]] = {}
    for s in backend.store.list_messages(limit=100).messages:
        n, unread = out.get(s.thread_id, (0, 0))
        out[s.thread_id] = (n + 1, unread + (not s.read))
    return out


def _info(backend: Backend, box: str) -> FolderInfo:
    info = backend.store.folder_info(box, INBOX)
    assert info is not None
    return info


def test_mark_all_read_and_unread_keep_conversations_counts_and_flags(backend: Backend) -> None:
    root = backend.deliver(message("Plans", message_id="root@example.com"), ALICE, BOB)
    reply = backend.deliver(
        message("Re: Plans", message_id="r1@example.com", in_reply_to="root@example.com"), ALICE
    )
    other = backend.deliver(message("Elsewhere", message_id="o@example.com"), BOB)
    early = backend.deliver(message("Read already", message_id="e@example.com"), ALICE)
    assert backend.store.wait_indexed(30)
    assert backend.store.set_read([early], True) == [early]
    flagged = backend.store.update_flags(BOB, INBOX, [1], frozenset({"\\Flagged"}), "add")  # root, in bob's
    assert [e.id for e in flagged] == [root]
    assert _conversations(backend) == _grouped(backend)
    assert _conversations(backend)[backend.store.get_summary(root).thread_id] == (2, 2)  # type: ignore[union-attr]
    before = {box: _info(backend, box) for box in (ALICE, BOB)}

    # the whole store: what was unread, and nothing else, changes
    assert sorted(backend.store.set_read(None, True)) == sorted([root, reply, other])
    assert _conversations(backend) == _grouped(backend)
    assert all(unread == 0 for _, unread in _conversations(backend).values())
    assert (backend.store.list_messages().total, backend.store.list_messages().unread) == (4, 0)
    assert all(b.unread == 0 for b in backend.store.mailboxes())
    for box in (ALICE, BOB):
        after = _info(backend, box)
        assert after.unseen == 0 and after.highestmodseq > before[box].highestmodseq
        for e in backend.store.folder_entries(box, INBOX):
            assert "\\Seen" in e.flags
            if e.id != early:  # changed now: a MODSEQ above the folder's before, within its now
                assert before[box].highestmodseq < e.modseq <= after.highestmodseq
    root_in_bob = [e for e in backend.store.folder_entries(BOB, INBOX) if e.id == root]
    assert root_in_bob[0].flags == frozenset({"\\Flagged", "\\Seen"})  # the other flag is kept

    # one mailbox: its messages are unread again, the conversations follow
    assert sorted(backend.store.set_read(None, False, mailbox=BOB)) == sorted([root, other])
    assert _conversations(backend) == _grouped(backend)
    assert sorted(_conversations(backend).values()) == [(1, 0), (1, 1), (2, 1)]
    assert backend.store.list_messages().unread == 2
    assert {b.name: b.unread for b in backend.store.mailboxes()}[BOB] == 2
    assert all("\\Seen" not in e.flags for e in backend.store.folder_entries(BOB, INBOX))
    root_in_bob = [e for e in backend.store.folder_entries(BOB, INBOX) if e.id == root]
    assert root_in_bob[0].flags == frozenset({"\\Flagged"})

    # the whole store unread again
    assert sorted(backend.store.set_read(None, False)) == sorted([reply, early])
    assert _conversations(backend) == _grouped(backend)
    assert all(unread == n for n, unread in _conversations(backend).values())
    assert backend.store.list_messages().unread == 4
