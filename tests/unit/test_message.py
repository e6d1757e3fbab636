"""The parsed message view, the indexer's extract, and the send-API message builder."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.message import (
    SNIPPET_LENGTH,
    canonical_header_name,
    html_to_text,
    make_snippet,
    parse_message,
)
from postroom.store.indexer import extract
from postroom.web.send import SendError, build_message

NESTED = (
    b"From: =?utf-8?q?J=C3=B6rg?= <jorg@example.com>\r\n"
    b'To: a@example.com, "Bee, B" <b@example.com>\r\n'
    b"Subject: =?utf-8?b?SGVsbG8g8J+Riw==?=\r\n"
    b"Message-ID: <m1@example.com>\r\n"
    b"Return-Path: <bounce@example.com>\r\n"
    b"Date: Tue, 07 May 2024 10:00:00 +0200\r\n"
    b"X-Folded: one\r\n two\r\n"
    b"List-Unsubscribe: <mailto:u@example.com>, <https://example.com/u?x=1>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=OUT\r\n\r\n"
    b"--OUT\r\nContent-Type: multipart/alternative; boundary=ALT\r\n\r\n"
    b"--ALT\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Caf=E9 ready\r\n"
    b"--ALT\r\nContent-Type: multipart/related; boundary=REL\r\n\r\n"
    b"--REL\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b'<html><head><style>p{}</style></head><body><p>Caf\xc3\xa9 <img src="cid:img1"></p></body></html>\r\n'
    b"--REL\r\nContent-Type: image/gif\r\nContent-ID: <img1>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"R0lGODlhAQABAAAAACw=\r\n--REL--\r\n--ALT--\r\n"
    b'--OUT\r\nContent-Type: application/pdf; name="=?utf-8?q?r=C3=A9sum=C3=A9.pdf?="\r\n'
    b"Content-Disposition: attachment\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n"
    b"--OUT\r\nContent-Type: message/rfc822\r\n\r\nFrom: inner@example.com\r\nSubject: inner\r\n\r\ninner body\r\n"
    b"--OUT--\r\n"
)


def test_nested_message() -> None:
    pm = parse_message(NESTED)
    assert pm.subject == "Hello 👋"
    assert pm.from_ == ("Jörg", "jorg@example.com")
    assert pm.to == [("", "a@example.com"), ("Bee, B", "b@example.com")]
    assert pm.message_id == "m1@example.com" and pm.return_path == "bounce@example.com"
    assert pm.date is not None and int(pm.date) == 1715068800
    assert pm.text.strip() == "Café ready"
    assert 'src="cid:img1"' in pm.html
    [inline] = pm.inline
    assert (inline.part_id, inline.content_id, inline.content_type) == ("1.2.2", "img1", "image/gif")
    names = [(a.part_id, a.filename, a.content_type) for a in pm.attachments]
    assert names == [("2", "résumé.pdf", "application/pdf"), ("3", "message.eml", "message/rfc822")]
    assert pm.parts["2"].payload == b"%PDF"
    assert b"Subject: inner" in pm.parts["3"].payload  # the attached message is one part
    j = pm.parts["2"].to_json()
    assert j["Size"] == 4 and j["Checksums"]["SHA1"] == hashlib.sha1(b"%PDF").hexdigest()
    assert pm.headers_json()["X-Folded"] == ["one two"]
    assert pm.list_unsubscribe() == {
        "Header": "<mailto:u@example.com>, <https://example.com/u?x=1>",
        "Links": ["mailto:u@example.com", "https://example.com/u?x=1"],
        "Errors": "",
        "HeaderPost": "List-Unsubscribe=One-Click",
    }


def test_single_part_ids_and_html_only() -> None:
    pm = parse_message(b"Subject: x\r\nContent-Type: text/html\r\n\r\n<h1>Title</h1><p>Body &amp; more</p>")
    assert pm.html.startswith("<h1>") and pm.text == "Title\n\nBody & more"
    pm = parse_message(
        b"Content-Type: image/png\r\nContent-Disposition: attachment; filename=a.png\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"PNG")
    )
    assert [(p.part_id, p.filename) for p in pm.attachments] == [("1", "a.png")]


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("message-id", "Message-Id"), ("X-MAILER", "X-Mailer"), ("dkim-signature", "Dkim-Signature")],
)
def test_canonical_header_name(name: str, canonical: str) -> None:
    assert canonical_header_name(name) == canonical


def test_html_to_text_and_snippet() -> None:
    assert html_to_text("<script>x()</script><p>a</p><p>b&nbsp;c</p>") == "a\n\nb c"
    long = "word " * 200
    s = make_snippet(long)
    assert len(s) <= SNIPPET_LENGTH and s.endswith("...")
    assert make_snippet("  a\n\n b  ") == "a b"


def test_extract() -> None:
    d = extract(NESTED)
    assert d.subject == "Hello 👋" and d.attachments == 2
    assert "résumé.pdf" in d.attachment_names and "message.eml" in d.attachment_names
    assert "Jörg jorg@example.com" in d.addresses and "Bee, B b@example.com" in d.addresses
    assert "Café ready" in d.body and d.snippet == "Café ready"


@given(st.binary(max_size=2000))
def test_parse_never_raises(raw: bytes) -> None:
    pm = parse_message(raw)
    extract(raw)
    assert isinstance(pm.text, str)


@given(
    st.lists(
        st.sampled_from(
            [
                b"Content-Type: multipart/mixed; boundary=X\r\n",
                b"\r\n",
                b"--X\r\n",
                b"--X--\r\n",
                b"Content-Type: message/rfc822\r\n",
                b"Content-Transfer-Encoding: base64\r\n",
                b"=?utf-8?q?=ZZ?=",
                b"body\r\n",
                b"Subject: s\r\n",
            ]
        ),
        max_size=30,
    ).map(b"".join)
)
def test_parse_never_raises_on_mime_soup(raw: bytes) -> None:
    parse_message(raw)


# -- the send builder (POST /api/v1/send) ----------------------------------------------------


def test_build_message_structure() -> None:
    png = base64.b64encode(b"\x89PNG").decode()
    raw, rcpts, tags, sender = build_message(
        {
            "From": {"Email": "a@example.com", "Name": "Ä"},
            "To": [{"Email": "b@example.com"}],
            "Cc": [{"Email": "c@example.com", "Name": "C"}],
            "Bcc": ["d@example.com", "b@example.com"],
            "Subject": "s",
            "Text": "t",
            "HTML": '<img src="cid:logo">',
            "Tags": ["x", " "],
            "Headers": {"X-Test": "1"},
            "Attachments": [
                {"Filename": "logo.png", "Content": png, "ContentID": "logo"},
                {"Filename": "a.csv", "Content": base64.b64encode(b"1,2").decode()},
            ],
        }
    )
    assert (
        rcpts == ["b@example.com", "c@example.com", "d@example.com"]
        and tags == ["x"]
        and sender == "a@example.com"
    )
    # as Mailpit's store: the recipients only the envelope names in Bcc, the sender in Return-Path
    assert b"\r\nBcc: d@example.com\r\n" in raw and b"\r\nReturn-Path: <a@example.com>\r\n" in raw
    assert b"X-Test: 1\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    pm = parse_message(raw)
    assert pm.from_ == ("Ä", "a@example.com") and pm.text.strip() == "t"
    assert [(p.content_id, p.payload) for p in pm.inline] == [("logo", b"\x89PNG")]
    assert [(p.filename, p.content_type) for p in pm.attachments] == [("a.csv", "text/csv")]


@pytest.mark.parametrize("text", ["a\nb", "a\r\nb\r\n", "line\n", "one line", "ünï\ncode", "x" * 2000])
def test_build_message_text_reads_back_unchanged(text: str) -> None:
    """Text and HTML come back byte for byte, LF line ends included (issue 22)."""
    raw, *_ = build_message(
        {
            "from": {"email": "a@example.com"},
            "to": [{"EMAIL": "b@example.com"}],
            "text": text,
            "Html": f"<p>{text}</p>",
        }
    )
    assert b"\n" not in raw.replace(b"\r\n", b"")  # the message itself is CRLF, as on the wire
    pm = parse_message(raw)
    assert pm.text == text and pm.html == f"<p>{text}</p>"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"To": [{"Email": "b@x.org"}]}, "From is required"),
        ({"From": "a@x.org", "To": [{"Email": "b@x.org"}]}, "From must be an object"),
        ({"From": {"Email": "a@x.org"}, "To": "b@x.org"}, "To must be an array"),
        ({"From": {"Email": "a@x.org"}, "To": [{"Name": "B"}]}, "To[0].Email is required"),
        ({"From": {"Email": "a@x.org"}, "Bcc": [1]}, "Bcc must be an array"),
        (
            {"From": {"Email": "a@x.org"}, "To": [{"Email": "b@x.org"}], "Headers": {"Content-Type": "x"}},
            "cannot be set",
        ),
        (
            {"From": {"Email": "a@x.org"}, "To": [{"Email": "b@x.org"}], "Subject": 3},
            "Subject must be a string",
        ),
        ({"From": {"Email": "a@x.org"}, "To": [{"Email": "b@x.org"}], "Tags": "x"}, "Tags must be an array"),
        (
            {"From": {"Email": "a@x.org"}, "To": [{"Email": "b@x.org"}], "Attachments": [{"Content": ""}]},
            "Filename",
        ),
    ],
)
def test_build_message_errors(body: dict[str, object], message: str) -> None:
    with pytest.raises(SendError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_message(body)
