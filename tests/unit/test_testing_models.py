"""postroom.testing's message model and criteria, without sockets."""

from __future__ import annotations

import re

import pytest

from postroom.store.base import Envelope
from postroom.testing import Message, extract_code, extract_links
from postroom.testing.reader import Criteria, listing

RAW = (
    b"From: =?utf-8?q?Caf=C3=A9?= <cafe@example.com>\r\n"
    b"To: Alice <alice@example.com>, bob@example.org\r\n"
    b"Cc: carol@example.net\r\n"
    b"Subject: =?utf-8?q?Your_code_=E2=80=94_482913?=\r\n"
    b"X-Tag: one\r\n"
    b"X-Tag: two\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b"\r\n'
    b"\r\n"
    b"--b\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    b"Open https://app.example/verify?t=1&u=2. Or (https://app.example/help).\r\n"
    b"--b\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n\r\n"
    b'<a href="https://app.example/verify?t=1&amp;u=2">verify</a> <a href="mailto:help@app.example">mail</a>'
    b' <a href="#">top</a>\r\n'
    b"--b--\r\n"
)


def test_fields_and_headers() -> None:
    env = Envelope("bounce@example.com", ("Alice@Example.com", "dave@example.com"))
    m = Message(RAW, envelope=env)
    assert m.from_ is not None and (m.from_.name, m.from_.address) == ("Café", "cafe@example.com")
    assert [a.address for a in m.to] == ["alice@example.com", "bob@example.org"]
    assert m.subject == "Your code — 482913"
    assert m.headers.get_all("x-tag") == ["one", "two"] and m.header("X-TAG") == "one"
    assert m.header("Missing", "-") == "-" and len(m.headers) == 8 and "X-Tag" in list(m.headers)
    with pytest.raises(KeyError):
        m.headers["Missing"]
    assert m.recipients == ["alice@example.com", "dave@example.com"] and m.sender == "bounce@example.com"
    assert m.to_dict()["recipients"] == ["alice@example.com", "dave@example.com"]
    assert m.code() == "482913"  # found in the subject first


def test_links_html_first_then_text_without_duplicates() -> None:
    m = Message(RAW)
    assert m.links == [
        "https://app.example/verify?t=1&u=2",
        "mailto:help@app.example",
        "#",
        "https://app.example/help",
    ]
    assert m.link(pattern=r"help$") == "https://app.example/help"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see https://x.example/a.", ["https://x.example/a"]),
        ("<https://x.example/b>, and 'https://x.example/c'!", ["https://x.example/b", "https://x.example/c"]),
        ("nothing here", []),
        ("https://x.example/p?q=1 https://x.example/p?q=1", ["https://x.example/p?q=1"]),
    ],
)
def test_extract_links(text: str, expected: list[str]) -> None:
    assert extract_links(text) == expected


@pytest.mark.parametrize(
    ("text", "pattern", "expected"),
    [
        ("Your code is 123456.", None, "123456"),
        ("Order 2024-05-01 code 8841", None, "8841"),  # dates are not codes
        ("call 555-1234", None, None),
        ("token: AB-12-CD", r"token: ([A-Z0-9-]+)", "AB-12-CD"),
        ("PIN 12", None, None),
    ],
)
def test_extract_code(text: str, pattern: str | None, expected: str | None) -> None:
    got = extract_code(text) if pattern is None else extract_code(text, pattern)
    assert got == expected


def test_criteria() -> None:
    m = Message(RAW, envelope=Envelope("bounce@example.com", ("hidden@example.com",)))
    assert Criteria(to="ALICE@example.com").matches(m)
    assert Criteria(to="hidden@example.com").matches(m)  # envelope-only recipient
    assert Criteria(to="@example.org").matches(m) and not Criteria(to="@nowhere.example").matches(m)
    assert Criteria(from_="cafe@example.com").matches(m) and Criteria(from_="bounce@").matches(m)
    assert Criteria(subject="your CODE").matches(m) and not Criteria(subject=re.compile("^code")).matches(m)
    assert Criteria(text="verify?t=1").matches(m)
    assert Criteria(predicate=lambda x: "482913" in x.subject).matches(m)
    text = str(Criteria.build(lambda x: True, "Box@X", "a@b", None, re.compile("s+"), None))
    assert text == "mailbox 'box@x', to='a@b', subject=/s+/, predicate <lambda>"
    with pytest.raises(TypeError):
        Criteria.build(42, None, None, None, None, None)  # type: ignore[arg-type]
    assert listing([]) == "  (no messages at all)"
    many = listing([m] * 30)
    assert many.count("\n") == 25 and many.endswith("... and 5 more")
