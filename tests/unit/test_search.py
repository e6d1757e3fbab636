"""The search language: text -> AST, and its errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.search import (
    MAX_TERMS,
    And,
    DateBound,
    Field,
    Flag,
    Header,
    Not,
    Or,
    SearchError,
    Size,
    Text,
    parse,
)

NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("", None),
        ("   ", None),
        ("hello", Text("hello")),
        ('"hello world"', Text("hello world", phrase=True)),
        ("hello world", And((Text("hello"), Text("world")))),
        ("-spam", Not(Text("spam"))),
        ("!spam", Not(Text("spam"))),
        ("from:alice@example.com", Field("from", "alice@example.com")),
        ("FROM:Alice", Field("from", "Alice")),
        ('subject:"two words"', Field("subject", "two words")),
        ("message-id:<abc@host>", Field("message-id", "abc@host")),
        ("tag:billing -tag:old", And((Field("tag", "billing"), Not(Field("tag", "old"))))),
        ("is:read", Flag("read")),
        ("is:UNREAD", Flag("unread")),
        ("is:tagged", Flag("tagged")),
        ("has:attachment", Flag("attachment")),
        ("has:attachments", Flag("attachment")),
        ("has:inline", Flag("inline")),
        ("has:INLINE", Flag("inline")),
        ("has:inlines", Flag("inline")),
        ("larger:10k", Size("larger", 10 * 1024)),
        ("smaller:2M", Size("smaller", 2 * 1024 * 1024)),
        ("larger:1.5mb", Size("larger", int(1.5 * 1024 * 1024))),
        ("header:X-Mailer=Foo Bar", And((Header("X-Mailer", "Foo"), Text("Bar")))),
        ('header:X-Mailer="Foo Bar"', Header("X-Mailer", "Foo Bar")),
        ('header:"X-Mailer=Foo Bar"', Header("X-Mailer", "Foo Bar")),
        ("header:X-Flag", Header("X-Flag", None)),
        ("mailbox:Bob@Example.com", Field("mailbox", "Bob@Example.com")),
        ("thread:T1", Field("thread", "T1")),
        ("a OR b", Or((Text("a"), Text("b")))),
        ("a b OR c", Or((And((Text("a"), Text("b"))), Text("c")))),
        ("a (b OR c)", And((Text("a"), Or((Text("b"), Text("c")))))),
        ("-(b OR c)", Not(Or((Text("b"), Text("c"))))),
        ("a or b", And((Text("a"), Text("or"), Text("b")))),  # only upper-case OR is the operator
        ("re:hello", Text("re:hello")),  # unknown keys are text
        ("https://example.com/x", Text("https://example.com/x")),
        ("smile)", Text("smile)")),  # ')' outside a group is text
        ("after:2024-05-01", DateBound("after", datetime(2024, 5, 1, tzinfo=UTC).timestamp())),
        ("before:2024/05/01", DateBound("before", datetime(2024, 5, 1, tzinfo=UTC).timestamp())),
        (
            "after:2024-05-01T10:30:00Z",
            DateBound("after", datetime(2024, 5, 1, 10, 30, tzinfo=UTC).timestamp()),
        ),
        ("after:today", DateBound("after", datetime(2024, 5, 10, tzinfo=UTC).timestamp())),
        ("after:yesterday", DateBound("after", datetime(2024, 5, 9, tzinfo=UTC).timestamp())),
        ("after:3d", DateBound("after", datetime(2024, 5, 7, 12, 0, tzinfo=UTC).timestamp())),
    ],
)
def test_parse(text: str, tree: object) -> None:
    assert parse(text, now=NOW) == tree


def test_tz_sets_day_boundaries() -> None:
    node = parse("tz:Pacific/Auckland after:2024-01-02", now=NOW)
    assert node == DateBound("after", datetime(2024, 1, 1, 11, 0, tzinfo=UTC).timestamp())  # NZDT is UTC+13
    assert parse("after:2024-01-02", tz="Pacific/Auckland", now=NOW) == node


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("(a", "unbalanced '(': missing ')'"),
        ("()", "empty group"),
        ("a OR", "OR needs a term on both sides"),
        ("OR a", "OR needs a term on both sides"),
        ("a OR OR b", "OR needs a term on both sides"),
        ('"open', "unterminated quote"),
        ("from:", "from: needs a value"),
        ('subject:""', "subject: needs a value"),
        ("is:starred", "is:starred is not known"),
        ("has:pictures", "has:pictures is not known"),
        ("after:tomorrowish", "cannot read the date 'tomorrowish'"),
        ("before:2024-13-01", "cannot read the date"),
        ("larger:huge", "cannot read the size 'huge'"),
        ("header:=x", "needs a header name"),
        ("header:Bad:Name=x", "needs a header name"),
        ("tz:Nowhere/City a", "unknown time zone 'Nowhere/City'"),
        ("-tz:UTC", "tz: cannot be negated"),
        ("x" * 5000, "query too long"),
        (" ".join(["a"] * (MAX_TERMS + 1)), "too many terms"),
        ("(" * 30 + "a" + ")" * 30, "nested too deep"),
    ],
)
def test_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(SearchError) as e:
        parse(text, now=NOW)
    assert message in str(e.value)


def test_error_position() -> None:
    with pytest.raises(SearchError) as e:
        parse("hello is:maybe")
    assert e.value.position == 6
    assert "(at character 7)" in str(e.value)


@given(st.text(max_size=200))
def test_parse_never_raises_anything_else(text: str) -> None:
    try:
        parse(text, now=NOW)
    except SearchError:
        pass


@given(st.text(alphabet='ab "()-!:OR\\', max_size=60))
def test_parse_never_raises_anything_else_on_syntax_soup(text: str) -> None:
    try:
        parse(text, now=NOW)
    except SearchError:
        pass
