"""What ``postroom fetch`` reads from Gmail's X-GM-EXT-1 answers (fetch/gmail.py), on
FETCH data shaped as Gmail sends it, and how labels map to tags and flags."""

from __future__ import annotations

from postroom.fetch.gmail import GmMeta, flags_from, label_arg, labels_by_uid, parse_meta, tags_from


def test_parse_meta_reads_ids_and_labels_as_gmail_sends_them() -> None:
    meta = (
        b"12 (X-GM-THRID 1278455344230334865 X-GM-MSGID 1278455344230334866 X-GM-LABELS "
        b'(\\Inbox \\Starred "Work/Q 1" &AMQ-lter "say \\"hi\\"" NIL) UID 41 FLAGS (\\Flagged \\Seen) '
        b'INTERNALDATE "02-Jan-2024 10:00:00 +0000" BODY[] {123}'
    )
    assert parse_meta(meta) == GmMeta(
        1278455344230334866, 1278455344230334865, ("\\Inbox", "\\Starred", "Work/Q 1", "Älter", 'say "hi"')
    )
    assert parse_meta(b"1 (X-GM-MSGID 5 X-GM-THRID 5 X-GM-LABELS () UID 1 BODY[] {3}") == GmMeta(5, 5, ())
    assert parse_meta(b"1 (X-GM-MSGID 5 X-GM-THRID 5 UID 1 BODY[] {3}") == GmMeta(5, 5, ())
    assert parse_meta(b"1 (UID 1 FLAGS () BODY[] {3}") is None  # a server without X-GM-EXT-1


def test_labels_by_uid_of_a_flags_and_labels_fetch() -> None:
    lines = [
        b"1 (UID 7 FLAGS (\\Seen) X-GM-LABELS (\\Important receipts))",
        (b'2 (UID 9 FLAGS () X-GM-LABELS ("a b"))', b""),
        b"3 (UID 11 FLAGS ())",  # no labels: left out
        None,
    ]
    assert labels_by_uid(lines) == {7: ("\\Important", "receipts"), 9: ("a b",)}


def test_system_labels_map_to_flags_and_tags() -> None:
    labels = ["\\Inbox", "\\Sent", "\\Draft", "\\Trash", "\\Spam", "\\Starred", "\\Important", "\\Chats"]
    assert tags_from([*labels, "work", "Work", " padded ", "bad\x01"]) == ["Important", "padded", "work"]
    assert flags_from(labels) == {"\\Flagged"}
    assert flags_from(["\\Inbox", "work"]) == set()
    assert label_arg(["2026 plans", "Älter", "x"]) == '("2026 plans" &AMQ-lter x)'
    assert label_arg([]) == "()"
