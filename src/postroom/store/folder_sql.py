"""The SQL of the IMAP folder reads that SQLite and PostgreSQL write alike.

The folders' rows (``folders``, ``folder_info``), a folder's listing (``folder_entries``,
``folder_changed``), its counts (``folder_count``) and the folder row ``imap_cache_range``
checks first are the same statements on both
backends but for the bound parameter (``?`` or ``%s``), as :mod:`.search_sql` shares the
search language's conditions. The cached data's own read by UID range stays in each
backend: SQLite keeps a table per kind, PostgreSQL one table with a ``kind`` column.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FolderSQL"]


@dataclass(frozen=True)
class FolderSQL:
    """The statements in one backend's spelling (:meth:`of` its placeholder)."""

    infos: str  # (mailbox,) -> its folders' rows (as FolderInfo), INBOX first, then by name
    info: str  # (mailbox, folder) -> the folder's row
    entries_after: str  # (mailbox, folder, after_uid) -> Entry columns, by UID
    entries_changed: str  # (mailbox, folder, upto_uid, above_modseq) -> the same
    count: str  # (upto_uid, above_modseq, upto_uid, above_modseq, mailbox, folder) -> (deliveries, of them changed)
    folder: str  # (mailbox, folder) -> (id, uidvalidity)

    @classmethod
    def of(cls, p: str) -> FolderSQL:
        in_folder = (
            "FROM delivery d JOIN folder f ON f.id = d.folder_id JOIN mailbox mb ON mb.id = f.mailbox_id "
        )

        def entries(where: str) -> str:
            return (
                f"SELECT d.uid, m.pid, d.flags, m.size, m.created, d.modseq {in_folder}"
                f"JOIN message m ON m.id = d.message WHERE mb.name = {p} AND f.name = {p} AND {where} "
                "ORDER BY d.uid"
            )

        info = (
            "SELECT f.id, f.name, f.uidvalidity, f.uidnext, f.subscribed, f.special_use, f.modseq, "
            "f.messages, f.unseen "  # kept in each change: SQLite 0019 and 0021 (advance_folder), PostgreSQL 0021
            f"FROM folder f JOIN mailbox mb ON mb.id = f.mailbox_id WHERE mb.name = {p}"
        )
        return cls(
            infos=info + " ORDER BY f.name <> 'INBOX', f.name",
            info=info + f" AND f.name = {p}",
            entries_after=entries(f"d.uid > {p}"),
            entries_changed=entries(f"d.uid <= {p} AND d.modseq > {p}"),
            # the deliveries up to a UID as the folder's kept count less those above it (a
            # range of the (folder_id, uid) key: what was added since, not the folder), and
            # of them those changed since a MODSEQ, counted only if the folder's MODSEQ says
            # a flag changed since (no index on MODSEQ: that count reads every delivery)
            count=(
                "SELECT f.messages - (SELECT count(*) FROM delivery d WHERE d.folder_id = f.id "
                f"AND d.uid > {p}), CASE WHEN f.modseq > {p} THEN (SELECT count(*) FROM delivery d "
                f"WHERE d.folder_id = f.id AND d.uid <= {p} AND d.modseq > {p}) ELSE 0 END "
                f"FROM folder f JOIN mailbox mb ON mb.id = f.mailbox_id WHERE mb.name = {p} AND f.name = {p}"
            ),
            folder=(
                "SELECT f.id, f.uidvalidity FROM folder f JOIN mailbox mb ON mb.id = f.mailbox_id "
                f"WHERE mb.name = {p} AND f.name = {p}"
            ),
        )
