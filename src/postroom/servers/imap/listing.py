"""The tables a folder's listing and the sessions' trackers share, built so that a change
costs in proportion to the change, not to the folder (issue 19: SELECT at 100,000
messages after one new message or one flag change copied every table, ~30 ms).

* :class:`Uids`: the UIDs in sequence order, a prefix of a compact ``array('I')`` that
  any number of listings and trackers share. New mail only appends higher UIDs, so a
  holder that adds UIDs appends them to the shared array itself when nobody has appended
  past its own end (the others see only their own prefix), or takes them as they are if
  another holder appended the same ones there (a session in IDLE heard of the new mail
  first); else it copies its prefix first (4 bytes a UID). Nothing shared is ever
  changed below a holder's end.
* A listing's entries are an immutable *base* dict (as read from the store) and a small
  *patch* dict (entries added or re-flagged since, newer than the base's); a tracker looks
  a message up in its own overlay (the patch it started from, copied at its first change)
  and then in the base.
* :class:`Recent`: the UIDs a session holds as ``\\Recent`` (RFC 3501 2.3.2): the range
  it claimed at SELECT (all the folder's above the last claimed UID: a SELECT after only
  EXAMINEs claims all of a 100,000-message folder) and those it claimed one by one since.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from itertools import islice

__all__ = ["Recent", "Uids", "with_recent"]

# "I" is 4 bytes wherever CPython runs today; UIDs are 32-bit (RFC 3501 section 2.3.1.1)
_CODE = "I" if array("I").itemsize >= 4 else "L"
# taken to append to a shared array (the check that nobody has appended past one's end and
# the append must be one step: listings grow on worker threads, trackers on the event loop)
_APPEND = threading.Lock()


class Uids:
    """Ascending UIDs: the first :attr:`n` of :attr:`arr`, which others may share (and
    may have appended to past :attr:`n`). Reads never look past :attr:`n`."""

    __slots__ = ("arr", "n")

    def __init__(self, uids: Iterable[int] = ()) -> None:
        self.arr = array(_CODE, uids)
        self.n = len(self.arr)

    def share(self) -> Uids:
        """Another holder of the same array and prefix (no copy)."""
        other = Uids.__new__(Uids)
        other.arr, other.n = self.arr, self.n
        return other

    def __len__(self) -> int:
        return self.n

    def __bool__(self) -> bool:
        return self.n > 0

    def __getitem__(self, i: int) -> int:
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError("UID position out of range")
        return self.arr[i]

    def __iter__(self) -> Iterator[int]:
        return islice(self.arr, self.n)

    def __eq__(self, other: object) -> bool:
        """The same UIDs as another :class:`Uids` or a list of them."""
        if isinstance(other, Uids):
            return self.tolist() == other.tolist()
        if isinstance(other, list):
            return self.tolist() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Uids({self.tolist()!r})" if self.n <= 20 else f"Uids(<{self.n} UIDs up to {self.top}>)"

    def tolist(self) -> list[int]:
        return self.arr[: self.n].tolist()

    def slice(self, start: int, stop: int) -> list[int]:
        """The UIDs at positions ``start`` to ``stop`` - 1 (clipped)."""
        return self.arr[max(start, 0) : min(stop, self.n)].tolist()

    @property
    def top(self) -> int:
        """The highest UID, or 0."""
        return self.arr[self.n - 1] if self.n else 0

    def bisect_left(self, uid: int) -> int:
        return bisect_left(self.arr, uid, 0, self.n)

    def bisect_right(self, uid: int) -> int:
        return bisect_right(self.arr, uid, 0, self.n)

    def seq_of(self, uid: int) -> int:
        """The sequence number of ``uid`` (its position + 1), or 0 if it is not here."""
        i = bisect_left(self.arr, uid, 0, self.n)
        return i + 1 if i < self.n and self.arr[i] == uid else 0

    def extend(self, uids: Iterable[int]) -> None:
        """Append higher UIDs: in place if nobody has appended past this holder's end
        (the array is shared, the appended part is this holder's alone); if another
        holder appended these very UIDs there already (new mail is the same for every
        session), take them as they are; else append to a copy of this holder's prefix."""
        new = array(_CODE, uids)
        with _APPEND:
            arr, n, k = self.arr, self.n, len(new)
            if len(arr) == n:
                arr.extend(new)
            elif arr[n : n + k] != new:
                self.arr = arr[:n] + new
            self.n = n + k

    def without(self, positions: list[int]) -> None:
        """Drop the UIDs at ``positions`` (ascending, distinct): a new array of its own
        (one pass of memory copies, whatever the number of positions)."""
        if not positions:
            return
        out, prev, arr = array(_CODE), 0, self.arr
        for p in positions:
            out += arr[prev:p]
            prev = p + 1
        out += arr[prev : self.n]
        self.arr, self.n = out, len(out)


class Recent:
    """The UIDs one session holds as ``\\Recent``: those in (:attr:`lo`, :attr:`hi`]
    (claimed at SELECT, a range whatever its size) and :attr:`extra` (claimed as they
    arrived). An expunged UID leaves the range with the tracker's UIDs; :meth:`discard`
    takes it out of :attr:`extra`."""

    __slots__ = ("extra", "hi", "lo")

    def __init__(self, lo: int = 0, hi: int = 0) -> None:
        self.lo, self.hi = lo, hi
        self.extra: set[int] = set()

    def __contains__(self, uid: int) -> bool:
        return self.lo < uid <= self.hi or uid in self.extra

    def __bool__(self) -> bool:
        return self.hi > self.lo or bool(self.extra)

    def count(self, uids: Uids) -> int:
        """How many of ``uids`` are recent (the range by bisection, not one by one)."""
        n = uids.bisect_right(self.hi) - uids.bisect_right(self.lo) if self.hi > self.lo else 0
        return n + len(self.extra)

    def discard(self, uid: int) -> None:
        self.extra.discard(uid)


RECENT = frozenset({"\\Recent"})
# flag sets with \Recent added, by flag set: a folder has few distinct ones, and a FETCH
# 1:* FLAGS of recent messages shows one per message (bounded against invented keywords)
_WITH_RECENT: dict[frozenset[str], frozenset[str]] = {}
_WITH_RECENT_MAX = 1024


def with_recent(flags: frozenset[str]) -> frozenset[str]:
    got = _WITH_RECENT.get(flags)
    if got is None:
        if len(_WITH_RECENT) >= _WITH_RECENT_MAX:
            _WITH_RECENT.clear()
        got = _WITH_RECENT[flags] = flags | RECENT
    return got
