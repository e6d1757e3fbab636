"""IMAP sequence sets (RFC 3501 section 9, ``sequence-set``; RFC 9051 ``$``).

``1:5,7,10:*`` is parsed into ranges; ``*`` is resolved against the largest number in
use (the message count for sequence numbers, the highest UID for UIDs). A range is
unordered (``5:1`` equals ``1:5``). ``$`` (RFC 5182 SEARCHRES) stands for the last
search result and is resolved by the session.

Errors::

    ParseError (from .decoder)   not a sequence set
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from .errors import ParseError

__all__ = ["MAX_NUMBER", "NumSet", "format_numbers", "format_pairs"]

# nz-number is a 32-bit unsigned value (RFC 3501 section 9: "number" is 0..4,294,967,295).
MAX_NUMBER = 4294967295
STAR = 0  # stands for "*" inside a parsed range

_RANGE = re.compile(r"(\d+|\*)(?::(\d+|\*))?\Z")


@dataclass(frozen=True, slots=True)
class NumSet:
    """A parsed sequence set; ``0`` stands for ``*`` until resolved."""

    ranges: tuple[tuple[int, int], ...]
    saved: bool = False  # "$": the saved search result

    @classmethod
    def parse(cls, text: str) -> NumSet:
        """Parse ``1:5,7,*``.

        Raises:
            ParseError: not a sequence set, or a number 0 or above 2^32-1.
        """
        # a set is immutable, and under many clients the same short ones recur
        return _parse_short(text) if len(text) <= MEMO_TEXT else _parse(text)

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Ranges as ordered (lo, hi) pairs with ``*`` replaced by ``largest``."""
        out = []
        for lo, hi in self.ranges:
            a = largest if lo == STAR else lo
            b = largest if hi == STAR else hi
            out.append((min(a, b), max(a, b)))
        return out

    def contains(self, n: int, largest: int) -> bool:
        """Whether ``n`` is in the set."""
        return any(lo <= n <= hi for lo, hi in self.resolve(largest))

    def select(self, numbers: Iterable[int], largest: int) -> list[int]:
        """The members of ``numbers`` that are in the set, in the order given."""
        ranges = self.resolve(largest)
        return [n for n in numbers if any(lo <= n <= hi for lo, hi in ranges)]

    def expand(self, largest: int) -> Iterator[int]:
        """Every number in the set from 1..largest, ascending, without duplicates."""
        done = 0  # every number up to here is out already
        for lo, hi in sorted(self.resolve(largest)):
            lo, hi = max(lo, done + 1), min(hi, largest)
            if lo <= hi:
                yield from range(lo, hi + 1)
                done = hi

    def has_star(self) -> bool:
        return any(STAR in r for r in self.ranges)


def _parse(text: str) -> NumSet:
    if text == "$":
        return NumSet((), saved=True)
    ranges: list[tuple[int, int]] = []
    if not text:
        raise ParseError("empty sequence set")
    for part in text.split(","):
        m = _RANGE.match(part)
        if m is None:
            raise ParseError(f"invalid sequence set {text[:40]!r}")
        lo = _num(m.group(1))
        hi = _num(m.group(2)) if m.group(2) is not None else lo
        ranges.append((lo, hi))
    return NumSet(tuple(ranges))


# Sets of at most MEMO_TEXT characters are parsed once each, MEMO_SETS at most kept (LRU).
MEMO_TEXT = 100
MEMO_SETS = 1024
_parse_short = lru_cache(maxsize=MEMO_SETS)(_parse)


def _num(s: str) -> int:
    if s == "*":
        return STAR
    # more digits than any number in range: int() would refuse past 4,300 digits with a
    # ValueError, not the protocol error (found by make fuzz)
    n = int(s) if len(s.lstrip("0")) <= 10 else MAX_NUMBER + 1
    if n == 0 or n > MAX_NUMBER:
        raise ParseError(f"number out of range: {s[:20]}")
    return n


def format_numbers(numbers: Iterable[int]) -> str:
    """Compact ``1:3,5,7:8`` form of a collection of numbers (sorted, deduplicated)."""
    nums = sorted(set(numbers))
    if not nums:
        return ""
    parts: list[str] = []
    start = prev = nums[0]
    for n in nums[1:]:
        if n == prev + 1:
            prev = n
            continue
        parts.append(f"{start}" if start == prev else f"{start}:{prev}")
        start = prev = n
    parts.append(f"{start}" if start == prev else f"{start}:{prev}")
    return ",".join(parts)


def format_pairs(numbers: list[int]) -> str:
    """``a,b,c`` keeping order (for COPYUID, where source and dest order must match)."""
    return format_numbers(numbers) if numbers == sorted(set(numbers)) else ",".join(map(str, numbers))
