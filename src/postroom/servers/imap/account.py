"""What an IMAP login sees: folder names mapped onto (store mailbox, store folder).

A normal login is one store mailbox (the address): IMAP names are the store's folder
names, ``INBOX`` holds the mail. The ``all`` (or ``*``) login sees every mailbox as a
top-level folder: ``alice@example.org`` is that mailbox's INBOX and
``alice@example.org/Work`` its ``Work`` folder. The hierarchy delimiter is ``/``.

Errors: :class:`~postroom.protocols.imap.errors.No` with RFC 5530 response codes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...protocols.imap.errors import No
from ...store.base import INBOX, FolderInfo, ImapStore

__all__ = ["ALL_LOGINS", "DELIMITER", "Account"]

DELIMITER = "/"
ALL_LOGINS = frozenset({"all", "*"})


@dataclass
class Account:
    """The folder namespace of one login (runs in worker threads: every method blocks, but
    the ``*_now`` ones, which answer on the event loop or not at all)."""

    store: ImapStore
    user: str  # the mailbox (lower-cased address), or "all"
    all_view: bool = False

    @classmethod
    def for_login(cls, store: ImapStore, login: str) -> Account:
        name = login.strip().lower()
        if name in ALL_LOGINS:
            return cls(store, "all", True)
        return cls(store, name, False)

    def resolve(self, name: str) -> tuple[str, str]:
        """IMAP name -> (mailbox, folder). Raises No [NONEXISTENT] when it cannot exist."""
        if not self.all_view:
            return self.user, INBOX if name.upper() == INBOX else name
        top, sep, rest = name.partition(DELIMITER)
        if not top or (sep and not rest):
            raise No("no such mailbox", "NONEXISTENT")
        return top.lower(), rest if sep else INBOX

    def imap_name(self, mailbox: str, folder: str) -> str:
        if not self.all_view:
            return folder
        return mailbox if folder == INBOX else f"{mailbox}{DELIMITER}{folder}"

    def info(self, name: str) -> FolderInfo | None:
        mailbox, folder = self.resolve(name)
        if self.all_view and folder == INBOX and mailbox not in self._mailboxes():
            return None
        return self.store.folder_info(mailbox, folder)

    def info_now(self, name: str) -> FolderInfo | None:
        """:meth:`info` of an existing folder when the store can read it on the event loop
        (see :meth:`ImapStore.folder_info_now`), else None: ask :meth:`info` on a worker thread."""
        if self.all_view:
            return None
        mailbox, folder = self.resolve(name)
        return self.store.folder_info_now(mailbox, folder)

    def _mailboxes(self) -> set[str]:
        return {m.name for m in self.store.mailboxes()}

    def folders(self) -> list[tuple[str, FolderInfo]]:
        """Every folder as (IMAP name, info), INBOX first."""
        if not self.all_view:
            return [(f.name, f) for f in self.store.folders(self.user)]
        out: list[tuple[str, FolderInfo]] = []
        for mb in sorted(self._mailboxes()):
            for f in self.store.folders(mb):
                out.append((self.imap_name(mb, f.name), f))
        return out

    def folders_now(self) -> list[tuple[str, FolderInfo]] | None:
        """:meth:`folders` when the store can read them on the event loop, else None (the
        counts may lag mail acknowledged but not yet stored: for LIST, not STATUS)."""
        if self.all_view:
            return None
        got = self.store.folders_now(self.user)
        return None if got is None else [(f.name, f) for f in got]

    def create(self, name: str, special_use: str = "") -> None:
        mailbox, folder = self.resolve(name.rstrip(DELIMITER))
        if folder == INBOX:
            if self.all_view and mailbox not in self._mailboxes():
                self.store.folder_info(mailbox, INBOX)  # creates the mailbox
                return
            raise No("mailbox exists", "ALREADYEXISTS")
        # RFC 3501 6.3.3: create the superior hierarchical names that are needed
        parts = folder.split(DELIMITER)
        for i in range(1, len(parts)):
            parent = DELIMITER.join(parts[:i])
            if parent and self.store.folder_info(mailbox, parent) is None:
                self.store.create_folder(mailbox, parent)
                self.store.set_subscribed(mailbox, parent, False)
        self.store.create_folder(mailbox, folder, special_use)
        # RFC 3501 6.3.3/6.3.6: CREATE does not subscribe (the client SUBSCRIBEs if it wants)
        self.store.set_subscribed(mailbox, folder, False)

    def delete(self, name: str) -> None:
        mailbox, folder = self.resolve(name)
        if folder == INBOX:
            raise No(
                "INBOX cannot be deleted" if not self.all_view else "a mailbox's INBOX cannot be deleted",
                "CANNOT",
            )
        self.store.delete_folder(mailbox, folder)

    def rename(self, old: str, new: str) -> None:
        m1, f1 = self.resolve(old)
        m2, f2 = self.resolve(new)
        if m1 != m2:
            raise No("cannot move folders between mailboxes", "CANNOT")
        if f2 == INBOX:
            raise No("mailbox exists", "ALREADYEXISTS")
        self.store.rename_folder(m1, f1, f2)
