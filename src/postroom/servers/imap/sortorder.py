"""SORT orders kept per folder and criteria, shared by sessions (issue 19: warm SORT).

A SORT's order is a strict total order on the messages: the criteria's keys (each fixed
for good once a message is stored) and then the sequence number, which for one folder
follows the UID. So the order of a folder's messages under some criteria, computed once,
answers every later SORT with those criteria in that folder: for the same messages as
they are (the usual warm SORT ALL), or for a subset (a SORT with search keys, or a session
that has seen fewer messages) by keeping the order's members that are in it. Only when a
SORT asks about a message the kept order does not hold (new mail, another session's view)
is the folder sorted again, once, for everyone.

A UID names the same message for as long as the folder's UIDVALIDITY holds (RFC 3501
2.3.1.1), so orders are kept by (mailbox, folder, UIDVALIDITY) and criteria, as UIDs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["ORDERS_KEPT", "Criteria", "FolderKey", "SortOrders"]

# Orders kept over all folders and criteria (our choice: an order of 100,000 messages is
# ~2 MB of UID lists, ~4 MB more once a subset has been asked of it, and its ~0.6 MB
# response line; so at most ~50 MB at that size).
ORDERS_KEPT = 8

FolderKey = tuple[str, str, int]  # mailbox, folder, UIDVALIDITY
Criteria = tuple[tuple[str, bool], ...]  # (criterion, reverse), as parse_sort gives them


class _Order:
    __slots__ = ("line", "members", "order", "uids")

    def __init__(self, uids: list[int], order: list[int]) -> None:
        self.uids = uids  # the messages sorted, ascending (the folder as one session saw it)
        self.order = order  # the same UIDs, sorted
        self.members: set[int] | None = None  # set(uids), once a subset is asked for
        self.line: bytes | None = None  # "* SORT <uids>\r\n" of the whole order, once sent


class SortOrders:
    """Kept orders (see the module docstring). Thread-safe; an order handed out is never
    changed afterwards (a new computation replaces it)."""

    def __init__(self, kept: int = ORDERS_KEPT) -> None:
        self.kept = kept
        self._orders: OrderedDict[tuple[FolderKey, Criteria], _Order] = OrderedDict()
        self._lock = threading.Lock()

    def sorted_uids(
        self,
        folder: FolderKey,
        criteria: Criteria,
        found: list[int],
        universe: Callable[[], list[int]],
        compute: Callable[[list[int]], list[int]],
    ) -> list[int]:
        """``found`` (ascending UIDs) in the order of ``criteria``.

        ``universe`` gives every UID the session knows in the folder (ascending, a superset
        of ``found``); ``compute`` sorts a list of UIDs. Either is called only when no kept
        order holds all of ``found``.
        """
        got = self._get(folder, criteria)
        if got is not None:
            sub = _restrict(got, found)
            if sub is not None:
                return sub
        uids = universe()
        order = compute(uids)
        got = _Order(uids, order)
        with self._lock:
            self._orders[(folder, criteria)] = got
            self._orders.move_to_end((folder, criteria))
            while len(self._orders) > self.kept:
                self._orders.popitem(last=False)
        sub = _restrict(got, found)
        assert sub is not None  # found is a subset of the universe
        return sub

    def line(self, folder: FolderKey, criteria: Criteria, order: list[int]) -> bytes:
        """``* SORT <order>\\r\\n``, kept with the order when ``order`` is a whole kept
        order (a warm UID SORT ALL then writes the same bytes again)."""
        got = self._get(folder, criteria)
        if got is not None and got.order is order:
            if got.line is None:
                got.line = sort_line(order)
            return got.line
        return sort_line(order)

    def _get(self, folder: FolderKey, criteria: Criteria) -> _Order | None:
        with self._lock:
            got = self._orders.get((folder, criteria))
            if got is not None:
                self._orders.move_to_end((folder, criteria))
            return got


def _restrict(got: _Order, found: list[int]) -> list[int] | None:
    """The kept order of ``found``; None if it lacks some of them."""
    if found == got.uids:
        return got.order
    if got.members is None:
        got.members = set(got.uids)  # (two threads may both build it: the same set)
    if not got.members.issuperset(found):
        return None
    wanted = set(found)
    return [u for u in got.order if u in wanted]


def sort_line(nums: list[int]) -> bytes:
    """``* SORT n n ...\\r\\n`` (RFC 5256 section 4)."""
    if not nums:
        return b"* SORT\r\n"
    return b"* SORT " + b" ".join(b"%d" % n for n in nums) + b"\r\n"
