"""What a FETCH item list needs per message (:class:`Plan`), worked out once per command,
and the parsed item lists clients send again and again, remembered.
"""

from __future__ import annotations

from ...protocols.imap.decoder import Token
from ...protocols.imap.fetch import Item, Section, parse_items

__all__ = ["Plan", "parse_items_memo", "plan_of"]

_NEEDS_PART = frozenset({"RFC822.HEADER", "RFC822.TEXT"})
_NEEDS_DERIVED = frozenset({"ENVELOPE", "BODYSTRUCTURE", "BODY"})
_GM_ITEMS = frozenset({"X-GM-MSGID", "X-GM-THRID"})
_WHOLE = Section()


# Parsed FETCH item lists, by their tokens: clients send the same few lists again and
# again (UID FETCH n BODY.PEEK[] ...); a small bound keeps hostile variety harmless.
_ITEMS_MEMO: dict[Token, list[Item]] = {}
_ITEMS_MEMO_MAX = 256


def parse_items_memo(token: Token) -> list[Item]:
    """:func:`parse_items`, remembered (callers copy the list before changing it)."""
    try:
        return list(_ITEMS_MEMO[token])
    except (KeyError, TypeError):  # TypeError: a token that cannot be hashed
        pass
    items = parse_items(token)
    if len(_ITEMS_MEMO) >= _ITEMS_MEMO_MAX:
        _ITEMS_MEMO.clear()
    try:
        _ITEMS_MEMO[token] = items
    except TypeError:
        pass
    return list(items)


class Plan:
    """What a FETCH item list needs per message, worked out once per command."""

    __slots__ = ("derived", "gm", "items", "labels", "names", "part", "raw", "thread")

    def __init__(self, items: list[Item]) -> None:
        self.items = items
        # the response name of each sectioned item, e.g. b"BODY[1.MIME]<0>"
        self.names = [i.response_name().encode("utf-8") if i.section is not None else b"" for i in items]
        self.part = any(
            (i.section is not None and i.section != _WHOLE) or i.name in _NEEDS_PART for i in items
        )
        # the whole message (BODY[], BINARY[], RFC822) needs the bytes but no parse
        self.raw = self.part or any(i.section is not None or i.name == "RFC822" for i in items)
        self.derived = any(i.section is None and i.name in _NEEDS_DERIVED for i in items)
        # X-GM-MSGID / X-GM-THRID; the thread is read from the store each time (it changes on a
        # merge), a message id never changes (kept in memory: imapflow asks for it every FETCH)
        self.gm = any(i.name in _GM_ITEMS for i in items)
        self.thread = any(i.name == "X-GM-THRID" for i in items)
        # X-GM-LABELS: the message's tags, read from the store for each batch (they change
        # through the API and other sessions without an event the session tracks)
        self.labels = any(i.name == "X-GM-LABELS" for i in items)


_PLANS: dict[tuple[Item, ...], Plan] = {}


def plan_of(items: list[Item]) -> Plan:
    """The :class:`_Plan` of an item list, remembered like :data:`_ITEMS_MEMO`."""
    key = tuple(items)
    plan = _PLANS.get(key)
    if plan is None:
        if len(_PLANS) >= _ITEMS_MEMO_MAX:
            _PLANS.clear()
        plan = _PLANS[key] = Plan(items)
    return plan
