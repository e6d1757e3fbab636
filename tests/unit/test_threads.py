"""Threading: RFC 5256 base subjects, REFERENCES / ORDEREDSUBJECT trees, THREAD responses and
the incremental conversation index, against the vectors in tests/vectors/threads/ and
property tests (every message exactly once, no cycles, incremental == batch)."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postroom.threads import (
    DEFAULT_SUBJECT_WINDOW,
    MemoryThreadIndex,
    SubjectPolicy,
    ThreadError,
    ThreadingOptions,
    ThreadMessage,
    ThreadNode,
    assign_thread,
    base_subject,
    conversations,
    format_thread_response,
    parse_message_ids,
    thread_keys,
    thread_orderedsubject,
    thread_references,
    walk,
)
from tests.thread_vectors import Vector, load_all

VECTORS = load_all()
DAY = 86400.0


def _ids(vs: Sequence[Vector]) -> list[str]:
    return [v.name for v in vs]


def _options(variant: dict[str, object]) -> ThreadingOptions:
    days = variant["subject_window_days"]
    return ThreadingOptions(
        subject_policy=SubjectPolicy(str(variant["subject_policy"])),
        subject_window=None if days is None else float(days) * DAY,  # type: ignore[arg-type]
    )


def _uids(groups: Sequence[Sequence[ThreadMessage]]) -> list[list[int]]:
    return [[m.uid for m in g] for g in groups]


def _incremental(messages: Sequence[ThreadMessage], options: ThreadingOptions) -> list[list[int]]:
    index = MemoryThreadIndex(options)
    for m in messages:
        index.add(m)
    return index.partition()


# -- the vectors -----------------------------------------------------------------------------


def test_vector_corpus_covers_the_issue() -> None:
    names = {v.name for v in VECTORS}
    for needed in (
        "missing-in-reply-to",
        "broken-references",
        "looping-references",
        "duplicate-message-ids",
        "replies-before-parents",
        "subject-prefixes-localized",
        "long-chain",
        "same-subject-far-apart",
    ):
        assert needed in names
    assert max(len(v.messages) for v in VECTORS) >= 2000


@pytest.mark.parametrize("vector", VECTORS, ids=_ids(VECTORS))
def test_vector_references(vector: Vector) -> None:
    records = vector.records()
    assert format_thread_response(thread_references(records)).decode() == vector.expect["references"]
    localized = vector.expect.get("references_localized", vector.expect["references"])
    assert format_thread_response(thread_references(records, localized=True)).decode() == localized


@pytest.mark.parametrize("vector", VECTORS, ids=_ids(VECTORS))
def test_vector_orderedsubject(vector: Vector) -> None:
    records = vector.records()
    want = vector.expect["orderedsubject"]
    assert format_thread_response(thread_orderedsubject(records)).decode() == want
    localized = vector.expect.get("orderedsubject_localized", want)
    assert format_thread_response(thread_orderedsubject(records, localized=True)).decode() == localized


@pytest.mark.parametrize("vector", VECTORS, ids=_ids(VECTORS))
def test_vector_conversations_batch_and_incremental(vector: Vector) -> None:
    records = vector.records()
    cases = [(ThreadingOptions(), vector.expect["conversations"])]
    cases += [(_options(v), v["groups"]) for v in vector.expect.get("conversation_variants", [])]
    shuffled = list(records)
    random.Random(vector.name).shuffle(shuffled)
    for options, groups in cases:
        assert _uids(conversations(records, options)) == groups
        for order in (records, records[::-1], shuffled):
            assert _incremental(order, options) == groups


def test_vector_thread_ids_are_the_oldest_conversation() -> None:
    (v,) = [v for v in VECTORS if v.name == "replies-before-parents"]
    index = MemoryThreadIndex()
    got = [index.add(m) for m in v.records()]
    # uid 1 starts the conversation; everything later joins it, uid 4 (the parent) included
    assert [a.thread_id for a in got] == [1, 1, 1, 1]
    assert [a.created for a in got] == [True, False, False, False]


# -- base subjects ---------------------------------------------------------------------------

RFC_SUBJECTS = [
    ("Hello", "Hello", False),
    ("Re: Hello", "Hello", True),
    ("RE: re: Fw: FWD: hello", "hello", True),
    ("Re[2]: Hello", "Hello", True),
    ("Re [2] : Hello", "Hello", True),
    ("[list] Re: Hello", "Hello", True),
    ("[list] Hello", "Hello", False),
    ("[a][b] Hello", "Hello", False),
    ("[list]", "[list]", False),
    ("Re: [list]", "[list]", True),
    ("Hello (fwd)", "Hello", True),
    ("Hello (FWD) (fwd)  ", "Hello", True),
    ("[Fwd: Hello]", "Hello", True),
    ("[fwd: Re: [fwd: Hello] (fwd)]", "Hello", True),
    ("  Hello \t\r\n world  ", "Hello world", False),
    ("Reply: Hello", "Reply: Hello", False),
    ("Fwdx: Hello", "Fwdx: Hello", False),
    ("ＲＥ：Hello", "Hello", True),
    ("RE： Hello", "Hello", True),
    ("AW: Hello", "AW: Hello", False),
    ("", "", False),
    ("Re:", "", True),
    ("[", "[", False),
    ("Re: [unclosed Hello", "[unclosed Hello", True),
]

LOCALIZED_SUBJECTS = [
    ("AW: Angebot", "Angebot", True),
    ("WG: AW: Angebot", "Angebot", True),
    ("SV: VS: VB: Angebot", "Angebot", True),
    ("Antw: Doorst: Angebot", "Angebot", True),
    ("Odp: PD: Angebot", "Angebot", True),
    ("Rif: Angebot", "Angebot", True),
    ("Réf. : Angebot", "Angebot", True),
    ("TR: RV: ENC: RES: Angebot", "Angebot", True),
    ("回复：Angebot", "Angebot", True),
    ("回复: 转发: 答复: Angebot", "Angebot", True),
    ("回覆：轉寄：Angebot", "Angebot", True),
    ("회신: 전달: Angebot", "Angebot", True),
    ("ΑΠ: ΠΡΘ: Angebot", "Angebot", True),
    ("YNT: İLT: Angebot", "Angebot", True),
    ("Re(2): Re^3: Angebot", "Angebot", True),
    ("[ext] AW: [list] SV: Angebot", "Angebot", True),
    ("aw: Angebot", "Angebot", True),
    ("AWESOME: Angebot", "AWESOME: Angebot", False),
    ("R: plotting tips", "R: plotting tips", False),
    ("Angebot", "Angebot", False),
]


@pytest.mark.parametrize(("subject", "text", "reply"), RFC_SUBJECTS)
def test_base_subject_rfc(subject: str, text: str, reply: bool) -> None:
    got = base_subject(subject, localized=False)
    assert (got.text, got.is_reply_or_forward) == (text, reply)


@pytest.mark.parametrize(("subject", "text", "reply"), RFC_SUBJECTS[:19] + LOCALIZED_SUBJECTS)
def test_base_subject_localized(subject: str, text: str, reply: bool) -> None:
    got = base_subject(subject, localized=True)
    assert (got.text, got.is_reply_or_forward) == (text, reply)


def test_base_subject_key_ignores_case_and_compatibility_forms() -> None:
    assert base_subject("Straße").key != base_subject("STRASSE").key  # simple case mapping, as Dovecot
    assert base_subject("Re: Grüße").key == base_subject("grüße").key
    assert base_subject("Ｈｅｌｌｏ").key == base_subject("hello").key
    assert base_subject("Café").key == base_subject("CAFE\u0301").key
    assert base_subject("Hello").key != base_subject("Hello!").key
    assert base_subject(None).key == ""


@given(st.text(max_size=40))
def test_base_subject_total_and_idempotent(s: str) -> None:
    for localized in (False, True):
        once = base_subject(s, localized=localized)
        twice = base_subject(once.text, localized=localized)
        assert twice.text == once.text
        assert twice.key == once.key


# -- Message-IDs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ids"),
    [
        ("<a@b>", ["a@b"]),
        ("  <a@b.example>  <c@d>", ["a@b.example", "c@d"]),
        ("junk <a@b> more <nope> <c\r\n @d>", ["a@b", "c@d"]),
        ("Your message of Tue <x.y@z> (sent)", ["x.y@z"]),
        ('<"quoted local"@host>', ["quoted local@host"]),
        ("<(comment) a@b>", ["a@b"]),
        ("<a@[127.0.0.1]>", ["a@[127.0.0.1]"]),
        ("bare@host", ["bare@host"]),
        ("bare host", []),
        ("<unterminated@x", []),
        ("", []),
        (None, []),
    ],
)
def test_parse_message_ids(value: str | None, ids: list[str]) -> None:
    assert parse_message_ids(value) == ids


@given(st.text(alphabet=st.sampled_from('<>@"()[] \t\r\nab.\\'), max_size=60))
def test_parse_message_ids_total(value: str) -> None:
    for mid in parse_message_ids(value):
        assert "@" in mid
        assert not re.search(r"[ \t\r\n]", mid)


def test_from_headers() -> None:
    m = ThreadMessage.from_headers(
        7,
        message_id="<m@x>",
        in_reply_to="Your mail <p@x> of today",
        references=["r1@x", "<r2@x>"],
        subject="=?UTF-8?Q?Re=3A_Gr=C3=BC=C3=9Fe?=",
        date="Tue, 02 Jan 2024 10:00:00 +0200",
        internaldate=5.0,
    )
    assert (m.message_id, m.in_reply_to, m.references) == ("m@x", "p@x", ("r1@x", "r2@x"))
    assert m.subject == "Re: Grüße"
    assert m.date == 1704182400.0
    assert m.sort_date == 1704182400
    broken = ThreadMessage.from_headers(8, date="yesterday", subject="=?bogus?Q?x?=", internaldate=9.5)
    assert (broken.date, broken.sort_date) == (None, 9)
    assert broken.subject == "x"  # an unknown charset reads as UTF-8 (issue 14 item 5)


# -- trees and the THREAD response -------------------------------------------------------------


def _n(uid: int, *children: ThreadNode) -> ThreadNode:
    return ThreadNode(ThreadMessage(uid), list(children))


def test_format_thread_response_rfc_example() -> None:
    # RFC 5256 section 4: (2)(3 6 (4 23)(44 7 96))
    trees = [_n(2), _n(3, _n(6, _n(4, _n(23)), _n(44, _n(7, _n(96)))))]
    assert format_thread_response(trees) == b"(2)(3 6 (4 23)(44 7 96))"
    dummy = ThreadNode(None, [_n(3), _n(5, _n(6))])
    assert format_thread_response([dummy, _n(9)]) == b"((3)(5 6))(9)"
    assert format_thread_response([]) == b""
    seq = {2: 1, 3: 2, 6: 3, 4: 4, 23: 5, 44: 6, 7: 7, 96: 8}
    assert format_thread_response(trees, key=lambda m: seq[m.uid]) == b"(1)(2 3 (4 5)(6 7 8))"


def test_deep_chain_needs_no_recursion() -> None:
    n = 5000  # well past the interpreter's default recursion limit of 1000
    chain = [
        ThreadMessage(i, f"m{i}@x", references=(f"m{i - 1}@x",) if i > 1 else (), subject="x", date=float(i))
        for i in range(n, 0, -1)
    ]
    trees = thread_references(chain)
    assert format_thread_response(trees) == ("(" + " ".join(map(str, range(1, n + 1))) + ")").encode()
    assert max(d for d, _ in walk(trees)) == n - 1
    assert repr(trees[0]) == "ThreadNode(1, children=1)"


def test_duplicate_uids_are_refused() -> None:
    with pytest.raises(ThreadError):
        thread_references([ThreadMessage(1), ThreadMessage(1)])
    with pytest.raises(ThreadError):
        conversations([ThreadMessage(2), ThreadMessage(2)])
    with pytest.raises(ThreadError):
        ThreadingOptions(subject_window=-1)


# -- the incremental threader --------------------------------------------------------------------


def test_assign_thread_merges_into_the_oldest() -> None:
    index = MemoryThreadIndex(ThreadingOptions(subject_policy=SubjectPolicy.OFF))
    index.add(ThreadMessage(10, "a@x", subject="A"))
    index.add(ThreadMessage(20, "b@x", subject="B"))
    index.add(ThreadMessage(30, "c@x", references=("b@x",)))
    joined = index.add(ThreadMessage(40, "d@x", references=("c@x", "a@x")))
    assert (joined.thread_id, joined.merged, joined.created) == (10, (20,), False)
    assert index.partition() == [[10, 20, 30, 40]]
    assert joined.keys.ids == ("d@x", "c@x", "a@x")


def test_assign_thread_parent_after_reply() -> None:
    index = MemoryThreadIndex()
    index.add(ThreadMessage(1, "r@x", references=("p@x",), subject="Re: P"))
    got = index.add(ThreadMessage(2, "p@x", subject="P"))
    assert (got.thread_id, got.merged) == (1, ())


def test_subject_window_and_policy() -> None:
    base = 1_700_000_000.0

    def msg(uid: int, subject: str, day: float, refs: tuple[str, ...] = ()) -> ThreadMessage:
        return ThreadMessage(uid, f"{uid}@x", references=refs, subject=subject, date=base + day * DAY)

    msgs = [
        msg(1, "Invoice", 0),
        msg(2, "Invoice", 1),  # not a reply: never joins by subject under REPLIES
        msg(3, "Re: Invoice", 29),  # a reply without references: joins 1 and 2 (within 30 days)
        msg(4, "Re: Invoice", 80),  # too far from everything
        msg(5, "Re: Invoice", 81, refs=("zzz@x",)),  # has references: subject alone is not enough
    ]
    default = ThreadingOptions()
    assert default.subject_window == DEFAULT_SUBJECT_WINDOW
    assert _uids(conversations(msgs, default)) == [[1, 2, 3], [4, 5]]
    assert _incremental(msgs, default) == [[1, 2, 3], [4, 5]]
    off = ThreadingOptions(subject_policy=SubjectPolicy.OFF)
    assert _uids(conversations(msgs, off)) == [[1], [2], [3], [4], [5]]
    every = ThreadingOptions(subject_policy=SubjectPolicy.ALL, subject_window=None)
    assert _uids(conversations(msgs, every)) == [[1, 2, 3, 4, 5]]
    assert thread_keys(msgs[2]).subject_eligible and not thread_keys(msgs[4]).subject_eligible
    assert not thread_keys(msgs[0]).subject_eligible
    assert thread_keys(msgs[0], every).subject_eligible


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def threads_by_message_ids(self, ids: Sequence[str]) -> list[int]:
        self.calls.append(("ids", tuple(ids)))
        return [7, 3]

    def threads_by_subject(
        self, key: str, since: float | None, until: float | None, *, eligible_only: bool
    ) -> list[int]:
        self.calls.append(("subject", key, since, until, eligible_only))
        return [5]


def test_assign_thread_asks_the_lookup_the_documented_questions() -> None:
    rec = _Recorder()
    m = ThreadMessage(9, "n@x", in_reply_to="p@x", subject="Re: Hi", date=1000.0)
    got = assign_thread(m, rec, new_thread_id=9, options=ThreadingOptions(subject_window=100.0))
    assert rec.calls == [("ids", ("n@x", "p@x")), ("subject", "HI", 900.0, 1100.0, True)]
    assert (got.thread_id, got.merged) == (3, (5, 7))


# -- properties ----------------------------------------------------------------------------------

_POOL = [f"m{i}@x" for i in range(8)]
_SUBJECTS = ["", "Hi", "Re: Hi", "AW: Hi", "Fwd: Hi (fwd)", "[x] Other", "Re: Other", "other"]


@st.composite
def _messages(draw: st.DrawFn) -> list[ThreadMessage]:
    n = draw(st.integers(0, 14))
    out = []
    for uid in range(1, n + 1):
        date = draw(st.one_of(st.none(), st.integers(0, 40).map(lambda d: d * DAY / 4)))
        out.append(
            ThreadMessage(
                uid,
                message_id=draw(st.sampled_from(["", *_POOL])),
                in_reply_to=draw(st.sampled_from(["", *_POOL])),
                references=tuple(draw(st.lists(st.sampled_from(_POOL), max_size=5))),
                subject=draw(st.sampled_from(_SUBJECTS)),
                date=date,
                internaldate=float(draw(st.integers(0, 10))),
            )
        )
    return out


_OPTIONS = st.builds(
    ThreadingOptions,
    subject_policy=st.sampled_from(list(SubjectPolicy)),
    subject_window=st.one_of(st.none(), st.sampled_from([0.0, DAY, 3 * DAY])),
    localized=st.booleans(),
)


def _check_forest(trees: list[ThreadNode], messages: Sequence[ThreadMessage]) -> None:
    seen: set[int] = set()
    nodes: set[int] = set()
    for depth, node in walk(trees):
        assert id(node) not in nodes  # a node reached twice would mean a cycle or a shared child
        nodes.add(id(node))
        if node.message is None:
            assert depth == 0 and len(node.children) >= 2  # dummies only at the root, pruned
        else:
            assert node.message.uid not in seen
            seen.add(node.message.uid)
        keys = [(c.message.sort_date, c.message.uid) for c in node.children if c.message]
        assert len(keys) == len(node.children) and keys == sorted(keys)
    assert seen == {m.uid for m in messages}
    rendered = format_thread_response(trees).decode()
    assert sorted(map(int, re.findall(r"\d+", rendered))) == sorted(seen)
    assert rendered.count("(") == rendered.count(")")


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(_messages(), st.booleans(), st.booleans())
def test_references_every_message_once_no_cycles(
    messages: list[ThreadMessage], localized: bool, grouped: bool
) -> None:
    trees = thread_references(messages, localized=localized, group_by_subject=grouped)
    _check_forest(trees, messages)
    roots = [(t.message or t.children[0].message) for t in trees]
    keys = [(m.sort_date, m.uid) for m in roots if m is not None]
    assert keys == sorted(keys)


@given(_messages(), st.booleans())
def test_orderedsubject_every_message_once(messages: list[ThreadMessage], localized: bool) -> None:
    trees = thread_orderedsubject(messages, localized=localized)
    _check_forest(trees, messages)
    assert all(depth <= 1 for depth, _ in walk(trees))
    assert len(trees) == len({base_subject(m.subject, localized=localized).key for m in messages})


@settings(max_examples=300)
@given(_messages(), _OPTIONS, st.randoms(use_true_random=False))
def test_incremental_equals_batch_in_any_order(
    messages: list[ThreadMessage], options: ThreadingOptions, rnd: random.Random
) -> None:
    want = _uids(conversations(messages, options))
    assert sorted(u for g in want for u in g) == [m.uid for m in messages]
    order = list(messages)
    rnd.shuffle(order)
    assert _incremental(order, options) == want


def _partition(trees: list[ThreadNode]) -> list[list[int]]:
    groups = []
    for t in trees:
        groups.append(sorted(n.message.uid for _, n in walk([t]) if n.message is not None))
    return sorted(groups)


@given(_messages())
def test_reference_trees_refine_conversations(messages: list[ThreadMessage]) -> None:
    conv = conversations(messages, ThreadingOptions(subject_policy=SubjectPolicy.OFF))
    group_of = {m.uid: i for i, g in enumerate(conv) for m in g}
    for group in _partition(thread_references(messages, group_by_subject=False)):
        assert len({group_of[u] for u in group}) == 1


@st.composite
def _consistent_forest(draw: st.DrawFn) -> list[ThreadMessage]:
    """Messages of a true reply forest: References name the nearest ancestors in order (the
    oldest may be cut off, none skipped), some messages missing, any delivery order. (Cutting
    the middle out, as clients also do, can hide a link from REFERENCES that a conversation
    still sees; the refinement test above covers that.)"""
    n = draw(st.integers(1, 16))
    parents = [draw(st.integers(-1, i - 1)) for i in range(n)]
    present = [draw(st.booleans()) or i == 0 for i in range(n)]
    out = []
    for i in range(n):
        chain, p = [], parents[i]
        while p >= 0:
            chain.append(f"t{p}@x")
            p = parents[p]
        chain.reverse()
        refs = chain[len(chain) - draw(st.integers(1, len(chain))) :] if chain else []
        irt_only = bool(chain) and draw(st.booleans()) and len(refs) == 1
        if present[i]:
            out.append(
                ThreadMessage(
                    0,
                    f"t{i}@x",
                    in_reply_to=chain[-1] if chain else "",
                    references=() if irt_only else tuple(refs),
                    date=float(draw(st.integers(0, 5))),
                )
            )
    order = draw(st.permutations(out))
    return [
        ThreadMessage(uid, m.message_id, m.in_reply_to, m.references, date=m.date)
        for uid, m in enumerate(order, 1)
    ]


@settings(max_examples=300)
@given(_consistent_forest())
def test_reference_trees_equal_conversations_for_consistent_headers(messages: list[ThreadMessage]) -> None:
    conv = _uids(conversations(messages, ThreadingOptions(subject_policy=SubjectPolicy.OFF)))
    assert _partition(thread_references(messages, group_by_subject=False)) == sorted(conv)
