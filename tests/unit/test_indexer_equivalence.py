"""The indexer's fast path gives what the stdlib parsers give.

Two fast pieces are checked against their references:

* :func:`postroom.mimeparse.parse_bytes` must build exactly the ``compat32`` tree that
  ``email.parser.BytesParser`` builds (headers, payload strings, structure, preamble,
  epilogue), or decline (``None``);
* :func:`postroom.message.html_to_text` (lexbor, an HTML5 parser) must give the text that
  ``html.parser`` gives for well-formed markup, equal after whitespace normalisation, and
  some text (never an error) for any markup.

And end to end, :func:`extract` against :func:`extract_reference`: subject, addresses,
attachment count and names exactly, body and snippet after whitespace normalisation.
The corpus is built with ``email.message.EmailMessage`` (attachments, inline images,
charsets, transfer encodings, nesting) plus hand-made malformed messages, then property
tests build and mutate MIME trees and HTML.
"""

from __future__ import annotations

import importlib
import random
import sys
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from postroom.message import BLOCK_TAGS, SKIPPED_TAGS, html_to_text, parse_message, tidy_text
from postroom.mimeparse import MAX_DEPTH, parse_bytes
from postroom.store.indexer import IndexData, extract, extract_reference


def tree(m: Message) -> Any:
    """Everything of a parsed message the rest of postroom can read."""
    p = m._payload  # type: ignore[attr-defined]
    sub = [tree(x) for x in p] if isinstance(p, list) else p
    return (m._headers, m.get_unixfrom(), m.preamble, m.epilogue, m.get_default_type(), sub)  # type: ignore[attr-defined]


def stdlib(raw: bytes) -> Message:
    return BytesParser(policy=policy.compat32).parsebytes(raw)


def words(text: str) -> list[str]:
    return text.split()


def assert_same_index(raw: bytes) -> IndexData:
    fast, ref = extract(raw), extract_reference(raw)
    assert fast.subject == ref.subject
    assert fast.addresses == ref.addresses
    assert fast.attachments == ref.attachments
    assert fast.attachment_names == ref.attachment_names
    assert words(fast.body) == words(ref.body)
    assert words(fast.snippet) == words(ref.snippet)
    return fast


def check(raw: bytes) -> bool:
    """Assert fast == reference for ``raw``; True when the fast splitter took it."""
    mine = parse_bytes(raw)
    if mine is not None:
        assert tree(mine) == tree(stdlib(raw))
    assert_same_index(raw)
    return mine is not None


# -- a corpus built with EmailMessage ----------------------------------------------------

TEXTS = {
    "utf-8": "Grüße aus Köln — naïve café, 日本語も少し. Order #42 shipped.\nSecond line.\n",
    "iso-8859-1": "Café crème à la carte, déjà vu.\nLine two.\n",
    "iso-2022-jp": "こんにちは、注文は発送されました。\n",
    "us-ascii": "Plain ASCII text with a =sign and a long line " + "word " * 30 + "\n",
}
HTMLS = [
    "<html><head><title>T</title><style>p{color:red}</style></head><body><p>Hello &amp; welcome,"
    " <b>Alice</b>!</p><table><tr><td>one</td><td>two</td></tr></table></body></html>",
    "<!DOCTYPE html><html><body><!--[if mso]><table><tr><td><![endif]--><div>Outlook&nbsp;safe"
    '</div><a href="https://x.example/?a=1&amp;b=2" title="a > b">link</a><br/>end</body></html>',
    "<div><script>if (a < b) { document.write('</div>') }</script>after<SCRIPT>x</SCRIPT>"
    "<p>caf&eacute; &#233; &#x263a; &notanentity;</p></div>",
    "<p>no html element, just a paragraph with <i>inline</i> tags</p>",
    "<html><body><h1>Title</h1><ul><li>a</li><li>b</li></ul><pre>  spaced\n  text</pre></body></html>",
]


def corpus() -> list[bytes]:
    rng = random.Random(1234)
    out: list[bytes] = []
    for i in range(160):
        m = EmailMessage()
        m["From"] = rng.choice(
            ["Shop <noreply@shop.example>", "=?utf-8?q?J=C3=B6rg?= <j@example.com>", "a@b.c"]
        )
        m["To"] = rng.choice(["Alice <alice@example.org>", "a@x.org, Bob <b@x.org>", '"Doe, J" <j@d.org>'])
        if rng.random() < 0.3:
            m["Cc"] = "Carol <c@example.org>"
        m["Subject"] = rng.choice(["Your order", "Grüße — ünïcödé", "Re: [list] a very long subject " * 3])
        m["Message-ID"] = f"<m{i}@example.org>"
        charset = rng.choice(list(TEXTS))
        cte = rng.choice([None, "quoted-printable", "base64", "8bit"])
        shape = rng.choice(["text", "html", "alt", "mixed", "related", "deep", "empty"])
        text = TEXTS[charset]
        html = rng.choice(HTMLS)
        kw: dict[str, Any] = {"charset": charset}
        if cte and not (cte == "8bit" and charset == "iso-2022-jp"):
            kw["cte"] = cte
        try:
            if shape == "text":
                m.set_content(text, **kw)
            elif shape == "html":
                m.set_content(html, subtype="html", **kw)
            elif shape == "empty":
                m.set_content("")
            else:
                m.set_content(text, **kw)
                m.add_alternative(html, subtype="html")
                if shape in ("related", "deep"):
                    html_part = cast(EmailMessage, list(m.iter_parts())[1])
                    html_part.add_related(
                        b"GIF89a\x01\x00", "image", "gif", cid="<img1@x>", filename="logo.gif"
                    )
                if shape in ("mixed", "deep"):
                    m.add_attachment(
                        rng.randbytes(rng.randint(0, 3000)),
                        maintype="application",
                        subtype="pdf",
                        filename=rng.choice(["report.pdf", "résumé.pdf", "a b;c.pdf", "données.tar.gz"]),
                    )
                    m.add_attachment("col1,col2\n1,2\n", subtype="csv", filename="data.csv")
                if shape == "deep":
                    inner = EmailMessage()
                    inner.set_content("inner text")
                    inner.add_alternative("<p>inner html</p>", subtype="html")
                    outer = EmailMessage()
                    outer.make_mixed()
                    outer.attach(inner)
                    m.attach(outer)
        except (ValueError, LookupError, UnicodeError):
            m.set_content(text)
        raw = m.as_bytes(policy=policy.default)
        out.append(
            raw.replace(b"\r\n", b"\n") if i % 2 else raw.replace(b"\n", b"\r\n").replace(b"\r\r", b"\r")
        )
    return out


CORPUS = corpus()


def test_corpus_fast_and_reference_agree() -> None:
    fast = sum(check(raw) for raw in CORPUS)
    # Every corpus shape is common: the fast splitter must take (nearly) all of them.
    assert fast >= len(CORPUS) - 5, f"only {fast} of {len(CORPUS)} took the fast path"


def test_fixture_shapes_take_fast_path() -> None:
    bench = Path(__file__).resolve().parents[2] / "benchmarks"
    sys.path.insert(0, str(bench))
    try:
        fixtures = importlib.import_module("fixtures")
    finally:
        sys.path.remove(str(bench))
    for kind in ("small", "html", "attachment"):
        raw = fixtures.build(kind)
        assert check(raw), kind
        assert check(raw.replace(b"\n", b"\r\n")), kind


# -- hand-made shapes, malformed ones included -------------------------------------------

H = b"From: a@example.com\nTo: b@example.com\nSubject: s\n"
MP = H + b"Content-Type: multipart/mixed; boundary=XX\n\n"

CASES: dict[str, bytes] = {
    "no content-type": H + b"\nbody\n",
    "no body": H,
    "no blank line": H + b"this line is not a header\nbody\n",
    "header with space before colon": H + b"X-Foo : bar\n\nbody\n",
    "continuation first": b" folded\n" + H + b"\nbody\n",
    "colon line": H + b": nameless\n\nbody\n",
    "unix from": b"From someone Mon Jan  1 00:00:00 2024\n" + H + b"\nbody\n",
    "from in headers": H + b"From x\n\nbody\n",
    "bare cr header": H + b"X-A: 1\rX-B: 2\n\nbody\n",
    "bare cr body": H + b"\nline one\rline two\n",
    "bare cr boundary": MP + b"--XX\r\nContent-Type: text/plain\n\nhi\r--XX--\n",
    "bare cr after boundary": MP + b"--XX\rjunk\n\nhi\n--XX--\n",
    "crlf multipart": (MP + b"--XX\nContent-Type: text/plain\n\nhi\n--XX--\n").replace(b"\n", b"\r\n"),
    "mixed line ends": MP + b"--XX\r\nContent-Type: text/plain\r\n\nhi\r\n--XX--\n",
    "simple multipart": MP + b"pre\n--XX\nContent-Type: text/plain\n\nhi\n--XX\n\n"
    b"no headers\n--XX--\nepi\nlogue\n",
    "boundary with blanks": MP + b"--XX  \nContent-Type: text/plain\n\nhi\n--XX-- \t\n",
    "close at eof": MP + b"--XX\nContent-Type: text/plain\n\nhi\n--XX--",
    "boundary prefix text": MP + b"--XX\n\n--XXY is not a boundary\n--XX--\n",
    "no close boundary": MP + b"--XX\nContent-Type: text/plain\n\nhi\n",
    "no start boundary": MP + b"just text\n",
    "close first": MP + b"--XX--\nafter\n",
    "boundaries in a row": MP + b"--XX\n--XX\nContent-Type: text/plain\n\nhi\n--XX--\n",
    "close after boundary": MP + b"--XX\n--XX--\n",
    "no boundary param": H + b"Content-Type: multipart/mixed\n\n--XX\n\nhi\n--XX--\n",
    "quoted boundary": H + b'Content-Type: multipart/mixed;\n boundary="a b=c"\n\n--a b=c\n\nhi\n--a b=c--\n',
    "rfc2231 boundary": H + b"Content-Type: multipart/mixed; boundary*=''XX\n\n--XX\n\nhi\n--XX--\n",
    "digest": H + b"Content-Type: multipart/digest; boundary=XX\n\n--XX\n\nSubject: in\n\nx\n--XX--\n",
    "rfc822 part": MP + b"--XX\nContent-Type: message/rfc822\n\nSubject: in\n\nx\n--XX--\n",
    "nested same boundary": MP + b"--XX\nContent-Type: multipart/alternative; boundary=XX\n\n"
    b"--XX\n\nhi\n--XX--\n--XX--\n",
    "inner without close": MP + b"--XX\nContent-Type: multipart/alternative; boundary=YY\n\n"
    b"--YY\n\nhi\n--XX\n\nnext\n--XX--\n",
    "inner epilogue": MP + b"--XX\nContent-Type: multipart/alternative; boundary=YY\n\n"
    b"--YY\n\nhi\n--YY--\ninner epilogue\n\n--XX--\n",
    "rfc2231 filename": MP + b"--XX\nContent-Type: application/octet-stream\nContent-Disposition: attachment;"
    b" filename*=utf-8''r%C3%A9sum%C3%A9.pdf\nContent-Transfer-Encoding: base64\n\nJVBERg==\n--XX--\n",
    "continued filename": MP + b'--XX\nContent-Type: text/plain; name*0="long"; name*1="-name.txt"\n\n'
    b"x\n--XX--\n",
    "encoded-word filename": MP + b"--XX\nContent-Type: application/pdf;"
    b' name="=?utf-8?q?r=C3=A9sum=C3=A9.pdf?="\n\nx\n--XX--\n',
    "8bit headers": MP + b"--XX\nContent-Type: text/plain; charset=utf-8\nContent-Disposition: attachment;"
    b' filename="caf\xc3\xa9.txt"\n\n\xc3\xa9\n--XX--\n',
    "latin-1 body undeclared": H + b"Content-Type: text/plain\n\ncaf\xe9\n",
    "unknown charset": H + b"Content-Type: text/plain; charset=x-nope\n\nhello\n",
    "bad base64": H + b"Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n!!!notbase64==\n",
    "base64 no padding": H + b"Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\naGVsbG8\n",
    "cte with blanks": H + b"Content-Type: text/plain\nContent-Transfer-Encoding: base64 \n\naGVsbG8=\n",
    "uuencode": H
    + b"Content-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\nbegin 644 a\n`\nend\n",
    "bad content-type": H + b"Content-Type: textplain\n\n<p>x</p>\n",
    "html only": H + b"Content-Type: text/html; charset=utf-8\n\n<p>Hello <b>there</b></p>\n",
    "two text parts": MP + b"--XX\n\nfirst\n--XX\nContent-Type: image/png\n\nPNG\n--XX\n\nsecond\n--XX--\n",
    "inline no disposition": MP + b"--XX\nContent-Type: image/png\nContent-ID: <a@b>\n\nPNG\n--XX--\n",
    "deep nesting": H
    + b"".join(
        b"Content-Type: multipart/mixed; boundary=B%d\n\n--B%d\n" % (i, i) for i in range(MAX_DEPTH + 2)
    )
    + b"\nleaf\n"
    + b"".join(b"--B%d--\n" % i for i in reversed(range(MAX_DEPTH + 2))),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hand_made(name: str) -> None:
    check(CASES[name])


def test_shapes_that_are_declined() -> None:
    declined = ["unix from", "bare cr header", "no close boundary", "rfc822 part", "digest", "deep nesting"]
    for name in declined:
        assert parse_bytes(CASES[name]) is None, name
    for name in ("simple multipart", "crlf multipart", "8bit headers", "rfc2231 filename", "bare cr body"):
        assert parse_bytes(CASES[name]) is not None, name


# -- property tests: MIME trees -----------------------------------------------------------

header_value = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=30)
body_text = st.lists(
    st.sampled_from([*"ab -=\n\r\t.é<>&;", "--", "\r\n", "=\n", "=E9", "word "]), max_size=30
).map("".join)


@st.composite
def mime(draw: st.DrawFn, depth: int = 0) -> bytes:
    headers: list[bytes] = []
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(["X-A", "Subject", "Content-ID", "Content-Disposition", "X-Folded"]))
        value = draw(header_value).encode()
        if draw(st.booleans()):
            value += b"\n " + draw(header_value).encode()
        headers.append(name.encode() + b": " + value)
    if depth < 3 and draw(st.booleans()):
        boundary = draw(st.sampled_from(["b1", "b1x", "==b==", "a b"])) + str(depth)
        sub = draw(st.sampled_from(["mixed", "alternative", "related"]))
        headers.append(f'Content-Type: multipart/{sub}; boundary="{boundary}"'.encode())
        parts = draw(st.lists(mime(depth + 1), min_size=1, max_size=3))
        sep = b"--" + boundary.encode()
        body = draw(body_text).encode() + b"\n" if draw(st.booleans()) else b""
        for p in parts:
            body += sep + draw(st.sampled_from([b"", b" ", b"--x"])) + b"\n" + p + b"\n"
        body += sep + b"--" + draw(st.sampled_from([b"\n", b"", b"\nepilogue\n"]))
    else:
        ctype = draw(st.sampled_from(["text/plain", "text/html", "image/png", "application/pdf", None]))
        if ctype:
            cs = draw(st.sampled_from(["", "; charset=utf-8", "; charset=iso-8859-1", '; name="f.pdf"']))
            headers.append(f"Content-Type: {ctype}{cs}".encode())
        cte = draw(st.sampled_from([None, "quoted-printable", "base64", "7bit"]))
        if cte:
            headers.append(f"Content-Transfer-Encoding: {cte}".encode())
        body = draw(body_text).encode()
    eol = draw(st.sampled_from([b"\n", b"\r\n"]))
    return (b"\n".join(headers) + b"\n\n" + body).replace(b"\n", eol)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mime())
def test_property_trees(raw: bytes) -> None:
    check(H + raw)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mime(),
    st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from([b"\r", b"\n", b"-", b"--", b" ", b""])), max_size=4
    ),
)
def test_property_mutated(raw: bytes, edits: list[tuple[int, bytes]]) -> None:
    data = bytearray(H + raw)
    for pos, ins in edits:
        pos %= len(data) + 1
        if ins:
            data[pos:pos] = ins
        elif pos < len(data):
            del data[pos]
    check(bytes(data))


# -- property tests: HTML ---------------------------------------------------------------

TAGS = [
    "p",
    "div",
    "br",
    "b",
    "i",
    "a",
    "span",
    "td",
    "tr",
    "table",
    "li",
    "h1",
    "title",
    "head",
    "style",
    "script",
    "noscript",
    "img",
    "P",
    "Br",
    "DIV",
    "TITLE",
]
TEXT_BITS = [
    "hello",
    "world",
    " ",
    "  ",
    "\n",
    "\t",
    "&amp;",
    "&lt;",
    "&nbsp;",
    "&#233;",
    "&#x41;",
    "&bogus;",
    "&l",
    "t;",
    "é",
    "\xa0",
    "a < b",
    "x > y",
    "'",
    '"',
    "=",
    "-",
    "\u2003",
]


@st.composite
def attributes(draw: st.DrawFn) -> str:
    out = ""
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(["href", "class", "title", "data-x"]))
        value = "".join(draw(st.lists(st.sampled_from([*"ab >/<'=&;", "&amp;"]), max_size=8)))
        quote = draw(st.sampled_from(['"', "'"]))
        out += f" {name}={quote}{value.replace(quote, '')}{quote}"
    return out


@st.composite
def html_docs(draw: st.DrawFn) -> str:
    pieces: list[str] = []
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.integers(0, 9))
        if kind < 4:
            pieces.append(draw(st.sampled_from(TEXT_BITS)))
        elif kind < 6:
            pieces.append(f"<{draw(st.sampled_from(TAGS))}{draw(attributes())}>")
        elif kind < 8:
            pieces.append(f"</{draw(st.sampled_from(TAGS))}>")
        elif kind == 8:
            pieces.append(f"<{draw(st.sampled_from(TAGS))}{draw(attributes())}/>")
        else:
            pieces.append(
                draw(
                    st.sampled_from(
                        [
                            "<!-- c <p> -->",
                            "<!DOCTYPE html>",
                            "<!--x-->",
                            "<![CDATA[x]]>",
                            "<?php ?>",
                            "<",
                            "</",
                            "<3",
                        ]
                    )
                )
            )
    return "".join(pieces)


class _Reference(HTMLParser):
    """The text ``html.parser`` reads: block tags give line breaks, skipped elements nothing."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIPPED_TAGS:
            self.skip += 1
        elif tag in BLOCK_TAGS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag in BLOCK_TAGS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(data)


def reference_text(html: str) -> str:
    p = _Reference()
    p.feed(html)
    p.close()
    return tidy_text("".join(p.out))


@settings(max_examples=300, deadline=None)
@given(html_docs())
@example("<p>a<br/>b</p>")
@example("<html><head><title>T</title></head><body>x</body></html>")
@example("<style>a</script>b</style>c")
@example("<title/>after")
def test_property_html(doc: str) -> None:
    # Any markup gives text, the same words tidy or not (HTML5 and html.parser differ on
    # broken markup, so this is not compared with the reference).
    text = html_to_text(doc)
    assert isinstance(text, str)
    assert words(text) == words(html_to_text(doc, tidy=False))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                *"<>/!-ab \"'=&;p",
                "<p>",
                "</p>",
                "<b>",
                "<br/>",
                "<!--",
                "-->",
                "<script>",
                "</script>",
                "<title>",
            ]
        )
    ).map("".join)
)
def test_property_html_junk(doc: str) -> None:
    assert words(html_to_text(doc)) == words(html_to_text(doc, tidy=False))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["p", "div", "b", "i", "span", "li", "h1", "blockquote"]),
            st.sampled_from(TEXT_BITS[:13]),
        ),
        max_size=12,
    )
)
def test_property_well_formed_html_is_the_reference_text(items: list[tuple[str, str]]) -> None:
    doc = "<html><body>" + "".join(f"<{t}>{x}</{t}>" for t, x in items) + "</body></html>"
    assert words(html_to_text(doc)) == words(reference_text(doc))


def test_html_text_is_the_reference_text() -> None:
    for html in HTMLS:
        assert words(html_to_text(html)) == words(reference_text(html))
    assert html_to_text("a<br/>b") == "a\nb"


def test_parse_message_same_view_either_way() -> None:
    for raw in CORPUS[:40] + list(CASES.values()):
        a, b = parse_message(raw), parse_message(raw, fast=False)
        assert (a.subject, a.from_, a.to, a.cc, a.message_id, a.date) == (
            b.subject,
            b.from_,
            b.to,
            b.cc,
            b.message_id,
            b.date,
        )
        assert words(a.text) == words(b.text) and a.html == b.html
        assert [
            (p.part_id, p.filename, p.content_type, p.content_id, p.payload) for p in a.parts.values()
        ] == [(p.part_id, p.filename, p.content_type, p.content_id, p.payload) for p in b.parts.values()]
