"""What IMAP keeps between commands (issue 19): the parsed FETCH item of each item's text
(imaptest names random lists of items, HEADER.FIELDS of random names, too varied for a
memo of whole lists), the INTERNALDATE item of each timestamp (every session FETCHes
each new message's) and the keywords of each flag set (every session checks every change
it hears of for new keywords). Each is what parsing or formatting afresh gives, and bounded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.protocols.imap import args, fetch
from postroom.protocols.imap.args import format_datetime, internaldate_item
from postroom.protocols.imap.decoder import Atom, Group
from postroom.protocols.imap.errors import ParseError
from postroom.protocols.imap.fetch import parse_items
from postroom.servers.imap import tracker
from postroom.servers.imap.tracker import new_keywords
from postroom.store.base import Entry

FIELDS = ["From", "To", "Cc", "Subject", "References", "In-Reply-To", "Message-ID"]
ITEM = st.one_of(
    st.sampled_from(["UID", "FLAGS", "ENVELOPE", "INTERNALDATE", "BODY", "BODYSTRUCTURE", "RFC822.SIZE",
                     "BODY.PEEK[HEADER]", "RFC822.HEADER", "BODY.PEEK[]", "BODY.PEEK[1]", "BODY[TEXT]<0.10>",
                     "BINARY.PEEK[1]", "BINARY.SIZE[1]"]),
    st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4).map(
        lambda f: f"BODY.PEEK[HEADER.FIELDS ({' '.join(f)})]"
    ),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(ITEM, min_size=1, max_size=4))
def test_items_are_parsed_once_each_and_as_afresh(names: list[str]) -> None:
    token = Group(tuple(Atom(n) for n in names))
    first = parse_items(token)
    assert first == [fetch._parse_item(n) for n in names]
    again = parse_items(Group(tuple(Atom(n) for n in names)))
    assert again == first
    for a, b in zip(first, again, strict=True):
        assert a is b or len(fetch._ITEMS) == 0  # the same parsed item, unless emptied between
    assert len(fetch._ITEMS) <= fetch._ITEMS_MAX


def test_an_item_memo_is_by_the_text_as_sent_and_never_keeps_an_error() -> None:
    low, up = (
        parse_items(Atom("body.peek[header.fields (from)]")),
        parse_items(Atom("BODY.PEEK[HEADER.FIELDS (FROM)]")),
    )
    assert low == [fetch._parse_item("body.peek[header.fields (from)]")]
    assert up == [fetch._parse_item("BODY.PEEK[HEADER.FIELDS (FROM)]")]
    for _ in range(2):
        with pytest.raises(ParseError):
            parse_items(Atom("BODY[HEADER.FIELDS ()]x"))
    assert "BODY[HEADER.FIELDS ()]x" not in fetch._ITEMS
    for i in range(fetch._ITEMS_MAX + 10):
        parse_items(Atom(f"BODY.PEEK[HEADER.FIELDS (X-{i})]"))
        assert len(fetch._ITEMS) <= fetch._ITEMS_MAX


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0, max_value=4102444800, allow_nan=False))
def test_an_internaldate_item_is_the_formatted_date(ts: float) -> None:
    item = internaldate_item(ts)
    assert item == b'INTERNALDATE "' + format_datetime(ts).encode() + b'"'
    assert internaldate_item(ts) is item or len(args._DATES) == 0


def test_internaldate_items_are_kept_and_bounded() -> None:
    first = internaldate_item(836707465.0)
    assert first == b'INTERNALDATE "07-Jul-1996 02:44:25 +0000"'
    assert internaldate_item(836707465.0) is first
    for i in range(args._DATES_MAX * 2):
        internaldate_item(1e9 + i)
        assert len(args._DATES) <= args._DATES_MAX


FLAG = st.sampled_from(
    ["\\Seen", "\\Flagged", "\\Deleted", "\\Answered", "$Label1", "$Label2", "Junk", "nonjunk"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.frozensets(FLAG, max_size=5), max_size=6), st.sets(FLAG.filter(lambda f: f[0] != "\\")))
def test_new_keywords_are_the_keywords_not_known(flag_sets: list[frozenset[str]], known: set[str]) -> None:
    """A session's check for keywords it has not announced (* FLAGS first, RFC 3501
    7.2.6), with the keywords of each flag set kept: what splitting each set gives."""
    entries = [Entry(i + 1, f"m{i}", flags, 10, 0.0) for i, flags in enumerate(flag_sets)]
    want = {f for e in entries for f in e.flags if not f.startswith("\\")} - known
    assert new_keywords(entries, known) == want
    assert new_keywords(entries, known) == want  # again, from the kept keywords
    assert len(tracker._KEYWORDS) <= tracker._FLAG_LISTS_MAX
