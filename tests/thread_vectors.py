"""The threading test vectors (tests/vectors/threads/*.json): loading, generating, rendering.

Each file holds ``messages`` (header fields as they appear in a message, one dict per
message, in delivery order: UID n is the n-th) or a ``generate`` rule for the very large
ones, and ``expect``: THREAD responses (``references``, ``orderedsubject``, and
``*_localized`` where localized prefixes change the answer) and ``conversations`` (lists
of UIDs, for the store's conversation grouping with default options, or with the options
given beside them). Used by tests/unit/test_threads.py and tests/interop/test_thread_dovecot.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from postroom.threads import ThreadMessage

VECTOR_DIR = Path(__file__).parent / "vectors" / "threads"
HEADER_FIELDS = ("Message-ID", "In-Reply-To", "References", "Subject", "Date")
BASE_INTERNALDATE = 1_704_067_200  # 2024-01-01T00:00:00Z; message n arrives n minutes later


@dataclass
class Vector:
    name: str
    description: str
    messages: list[dict[str, str]]
    expect: dict[str, Any] = field(default_factory=dict)

    def internaldate(self, uid: int) -> int:
        value = self.messages[uid - 1].get("internaldate")
        if value is None:
            return BASE_INTERNALDATE + 60 * uid
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())

    def records(self) -> list[ThreadMessage]:
        """The messages as threading records, built from the raw header values."""
        return [
            ThreadMessage.from_headers(
                uid,
                message_id=m.get("Message-ID"),
                in_reply_to=m.get("In-Reply-To"),
                references=m.get("References"),
                subject=m.get("Subject"),
                date=m.get("Date"),
                internaldate=self.internaldate(uid),
            )
            for uid, m in enumerate(self.messages, start=1)
        ]

    def eml(self, uid: int) -> bytes:
        """Message ``uid`` as a small RFC 5322 message (CRLF line ends)."""
        m = self.messages[uid - 1]
        lines = ["From: Alice <alice@example.org>", "To: Bob <bob@example.org>"]
        lines += [f"{name}: {m[name]}" for name in HEADER_FIELDS if name in m]
        text = "\r\n".join(lines) + f"\r\n\r\nMessage {uid} of vector {self.name}.\r\n"
        # folded values in the vectors use "\r\n" + white space already
        return text.encode("utf-8")


def _chain(rule: dict[str, Any]) -> tuple[list[dict[str, str]], dict[str, Any]]:
    n, first, last = rule["length"], rule["keep_first"], rule["keep_last"]
    subject = rule["subject"]
    chain: list[dict[str, str]] = []
    for i in range(1, n + 1):
        ancestors = [f"<chain-{k}@example.org>" for k in range(1, i)]
        if len(ancestors) > first + last:
            ancestors = ancestors[:first] + ancestors[-last:]
        m = {
            "Message-ID": f"<chain-{i}@example.org>",
            "Subject": subject if i == 1 else f"Re: {subject}",
            "Date": datetime.fromtimestamp(BASE_INTERNALDATE + 60 * i, UTC).strftime(
                "%a, %d %b %Y %H:%M:%S +0000"
            ),
        }
        if ancestors:
            m["References"] = " ".join(ancestors)
            m["In-Reply-To"] = ancestors[-1]
        chain.append(m)
    delivered = list(reversed(chain)) if rule.get("reverse") else chain
    uid_of = {id(m): uid for uid, m in enumerate(delivered, start=1)}
    order = [str(uid_of[id(m)]) for m in chain]  # chain order = date order
    expect: dict[str, Any] = {
        "references": "(" + " ".join(order) + ")",
        "orderedsubject": f"({order[0]} " + "".join(f"({u})" for u in order[1:]) + ")",
        "conversations": [sorted(int(u) for u in order)],
    }
    limit = rule.get("dovecot_parent_depth_limit")
    if limit is not None and not rule.get("reverse"):
        # Dovecot cuts the chain where the parent would be deeper than ``limit``; each
        # piece after the first is a reply, so subject gathering hangs it under the root.
        size = limit + 2
        pieces = [order[i : i + size] for i in range(0, len(order), size)]
        if len(pieces) > 1:
            first, rest = pieces[0], pieces[1:]
            inner = "".join("(" + " ".join(p) + ")" for p in [first[1:], *rest])
            expect["dovecot_references"] = f"({first[0]} {inner})"
    return delivered, expect


def _dummy_chain(rule: dict[str, Any]) -> tuple[list[dict[str, str]], dict[str, Any]]:
    n = rule["length"]
    ids = [f"<d{k}@example.org>" for k in range(1, n + 1)]
    mid = n * 3 // 5

    def date(minutes: int) -> str:
        return datetime.fromtimestamp(BASE_INTERNALDATE + 60 * minutes, UTC).strftime(
            "%a, %d %b %Y %H:%M:%S +0000"
        )

    messages = [
        {"Message-ID": "<leaf@example.org>", "Subject": "Re: Deep dummies", "Date": date(10),
         "References": " ".join(ids)},
        {"Message-ID": "<side@example.org>", "Subject": "Re: Deep dummies", "Date": date(20),
         "References": " ".join(ids[: n // 2])},
        {"Message-ID": ids[mid - 1], "Subject": "Re: Deep dummies", "Date": date(5),
         "References": " ".join(ids[: mid - 1])},
    ]  # fmt: skip
    expect = {
        # leaf hangs under the real d<mid>; side and d<mid> are siblings under the dummy d1
        "references": "((3 1)(2))",
        "orderedsubject": "(3 (1)(2))",
        "conversations": [[1, 2, 3]],
    }
    return messages, expect


def load(path: Path) -> Vector:
    data = json.loads(path.read_text("utf-8"))
    expect: dict[str, Any] = dict(data.get("expect", {}))
    messages = data.get("messages", [])
    rule = data.get("generate")
    if rule is not None:
        kind = rule["kind"]
        messages, generated = {"chain": _chain, "dummy-chain": _dummy_chain}[kind](rule)
        expect = {**generated, **expect}
    return Vector(path.stem, data["description"], messages, expect)


def load_all() -> list[Vector]:
    return [load(p) for p in sorted(VECTOR_DIR.glob("*.json"))]
