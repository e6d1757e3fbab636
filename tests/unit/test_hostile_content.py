"""Hostile message content (issue 14): every parse is linear and bounded.

Each input here once hung or stalled postroom. The parses run in a child interpreter
with a deadline, so that an input that still backtracks fails the test instead of
hanging the test run (a regular expression stuck in C holds the GIL; no in-process
timer can stop it). The bound is generous (the issue asks for one): the real cost is
milliseconds.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from postroom.message import MAX_HTML_TEXT_INPUT, html_to_text, parse_message
from postroom.store.indexer import extract

# Issue 14, item 1: 90 bytes that made the regex tokenizer backtrack without end.
HOSTILE_HTML = "<a x='\">' " + "a=b " * 20
BOUND = 10.0  # seconds for the child interpreter, start-up included


def run_bounded(code: str, data: str = "") -> str:
    """Run ``code`` in a fresh interpreter (``data`` on its stdin); fail when it takes more
    than BOUND seconds."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            input=data,
            capture_output=True,
            text=True,
            timeout=BOUND,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"still parsing after {BOUND} s")
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_hostile_html_to_text_is_fast() -> None:
    out = run_bounded(
        f"""
        from postroom.message import html_to_text
        print(repr(html_to_text({HOSTILE_HTML!r})))
        """
    )
    assert out.strip() == repr(html_to_text(HOSTILE_HTML))


@pytest.mark.parametrize("ctype", ["text/html", "text/plain"])
def test_hostile_html_message_parses_and_indexes(ctype: str) -> None:
    raw = f"Subject: x\r\nContent-Type: {ctype}\r\n\r\n{HOSTILE_HTML}\r\n".encode()
    out = run_bounded(
        f"""
        from postroom.message import parse_message
        from postroom.store.indexer import extract
        pm = parse_message({raw!r})
        d = extract({raw!r})
        print(len(pm.text), len(d.body))
        """
    )
    assert out.split()[0] == str(len(parse_message(raw).text))
    assert out.split()[1] == str(len(extract(raw).body))


def test_html_text_of_ordinary_markup() -> None:
    html = (
        "<html><head><title>T</title><style>p{}</style></head><body>"
        "<h1>Title</h1><p>Body &amp; <b>bo</b>ld</p><script>x()</script><noscript>n</noscript>"
        "<ul><li>one</li><li>two</li></ul>caf&eacute;<br>end</body></html>"
    )
    assert html_to_text(html) == "Title\n\nBody & bold\n\none\n\ntwo\n\ncafé\nend"
    assert html_to_text(html, tidy=False).split() == [
        "Title",
        "Body",
        "&",
        "bold",
        "one",
        "two",
        "café",
        "end",
    ]
    assert html_to_text("no markup &lt;here&gt;") == "no markup <here>"
    assert html_to_text("a < b and c > d") == "a < b and c > d"


def test_deeply_nested_html_is_read_in_linear_time() -> None:
    # An HTML5 tree builder (lexbor) takes time quadratic in the depth: 50,000 levels took
    # minutes. libxml2 stops descending at 256 levels, so what is deeper is not read.
    assert html_to_text("<div>" * 200 + "deep" + "</div>" * 200) == "deep"
    deep = "<div>" * 200_000 + "deep" + "</div>" * 200_000
    run_bounded(
        """
        import sys
        from postroom.message import html_to_text
        assert isinstance(html_to_text(sys.stdin.read()), str)
        """,
        deep,
    )


def test_html_text_reads_a_bounded_prefix() -> None:
    html = "<p>" + "w " * MAX_HTML_TEXT_INPUT + "</p><p>TAIL</p>"
    text = html_to_text(html)
    assert "TAIL" not in text and text.startswith("w w")
