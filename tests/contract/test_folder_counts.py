"""Contract: a folder's message and unseen counts (FolderInfo.exists and .unseen: what
SELECT, STATUS and LIST report) stay right through every change, now that the store keeps
them with the folder instead of counting its deliveries on each read (issue 19: SELECT of
100,000 messages)."""

from __future__ import annotations

from postroom.store.base import INBOX

from .conftest import Backend, message

BOX = "alice@example.org"


def counts(backend: Backend, folder: str, mailbox: str = BOX) -> tuple[int, int]:
    """(exists, unseen) as folder_info and folders() report them, checked against the
    folder's listing."""
    info = backend.store.folder_info(mailbox, folder)
    assert info is not None
    listed = {f.name: f for f in backend.store.folders(mailbox)}[info.name]
    entries = backend.store.folder_entries(mailbox, folder)
    actual = (len(entries), sum(1 for e in entries if "\\Seen" not in e.flags))
    assert (info.exists, info.unseen) == (listed.exists, listed.unseen) == actual
    return actual


def test_counts_follow_deliveries_flags_and_expunges(backend: Backend) -> None:
    ids = [backend.deliver(message(f"m{i}")) for i in range(4)]
    assert counts(backend, INBOX) == (4, 4)
    backend.store.update_flags(BOX, INBOX, [1, 2], frozenset({"\\Seen"}), "add")
    assert counts(backend, INBOX) == (4, 2)
    backend.store.update_flags(BOX, INBOX, [1, 2], frozenset({"\\Seen"}), "add")  # no change
    assert counts(backend, INBOX) == (4, 2)
    backend.store.update_flags(BOX, INBOX, [2], frozenset({"\\Flagged"}), "set")  # \Seen goes
    assert counts(backend, INBOX) == (4, 3)
    backend.store.update_flags(BOX, INBOX, [1, 3], frozenset({"\\Deleted"}), "add")
    assert backend.store.expunge(BOX, INBOX) == [1, 3]
    assert counts(backend, INBOX) == (2, 2)
    backend.store.set_read([ids[1]], True)  # through the API
    assert counts(backend, INBOX) == (2, 1)
    backend.store.set_read(None, False, mailbox=BOX)
    assert counts(backend, INBOX) == (2, 2)
    backend.store.delete_messages([ids[3]])
    assert counts(backend, INBOX) == (1, 1)
    backend.reopen()
    assert counts(backend, INBOX) == (1, 1)


def test_counts_follow_append_copy_move_and_folder_changes(backend: Backend) -> None:
    backend.store.create_folder(BOX, "Sent")
    backend.run(backend.store.append(BOX, "Sent", message("a"), frozenset({"\\Seen"})))
    backend.run(backend.store.append(BOX, "Sent", message("b"), frozenset()))
    assert counts(backend, "Sent") == (2, 1)
    backend.store.create_folder(BOX, "Archive")
    backend.store.copy(BOX, "Sent", [1, 2], "Archive")
    assert counts(backend, "Archive") == (2, 1) and counts(backend, "Sent") == (2, 1)
    backend.store.copy(BOX, "Sent", [1], "Archive", move=True)
    assert counts(backend, "Archive") == (3, 1) and counts(backend, "Sent") == (1, 1)
    backend.store.rename_folder(BOX, "Archive", "Old")
    assert counts(backend, "Old") == (3, 1)
    backend.deliver(message("new"))
    backend.store.rename_folder(BOX, INBOX, "Moved")  # RFC 3501: INBOX's messages move
    assert counts(backend, "Moved") == (1, 1) and counts(backend, INBOX) == (0, 0)
    backend.store.delete_folder(BOX, "Old")
    backend.store.create_folder(BOX, "Old")
    assert counts(backend, "Old") == (0, 0)
    assert counts(backend, "Sent") == (1, 1)
    backend.reopen()
    assert counts(backend, "Sent") == (1, 1) and counts(backend, "Moved") == (1, 1)


def test_counts_after_deleting_a_mailbox_or_everything(backend: Backend) -> None:
    backend.deliver(message("both"), BOX, "bob@example.org")
    backend.deliver(message("bob only"), "bob@example.org")
    assert counts(backend, INBOX, "bob@example.org") == (2, 2)
    backend.store.delete_mailbox(BOX)
    assert counts(backend, INBOX, "bob@example.org") == (2, 2)
    backend.deliver(message("again"))
    assert counts(backend, INBOX) == (1, 1)
    backend.store.delete_messages(None)
    assert counts(backend, INBOX) == (0, 0) and counts(backend, INBOX, "bob@example.org") == (0, 0)
    backend.deliver(message("after"))
    assert counts(backend, INBOX) == (1, 1)
