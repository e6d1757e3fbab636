"""HTML to text: the candidate C-backed HTML5 parsers on the benchmark fixtures.

postroom turns a message's HTML into text for the snippet, the full-text index and the
``Text`` of an HTML-only message (:func:`postroom.message.html_to_text`). Until issue 14 that
was a hand-written regular-expression tokenizer, which a 90-byte input made backtrack
without end. This benchmark measures the replacements the issue names, each doing the same
job (text with a line break around block elements; script, style, head, title, noscript and
template dropped; entities decoded), on:

* ``html``: the HTML part of the ``html`` fixture (benchmarks/fixtures.py, 14 KB, 60
  paragraphs with links), the shape of most transactional mail;
* ``html x40``: that document repeated 40 times (570 KB), a long newsletter;
* the issue's hostile 90-byte document (``<a x='">'`` then ``a=b `` twenty times), which
  must take microseconds.

Candidates, run interleaved (round robin, best of ``--rounds``): selectolax (lexbor) with a
walk over the tree in Python, selectolax with block separators inserted through CSS
selection, resiliparse (lexbor, its own C++ extractor), lxml (libxml2's HTML parser), plus
``html.parser`` (the stdlib, pure Python) for scale. The regex tokenizer is not run on the
hostile input (it never finishes).

  python benchmarks/html_bench.py [--rounds 5]

``suite(quick)`` is the entry point of ``benchmarks/run.py``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rows_suite

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixtures

from postroom.message import BLOCK_TAGS, SKIPPED_TAGS, html_to_text, parse_message, tidy_text

HOSTILE = "<a x='\">' " + "a=b " * 20
NESTED = "<div>" * 4000 + "deep" + "</div>" * 4000


def _selectolax_walk(html: str) -> str:
    from selectolax.lexbor import LexborHTMLParser

    root = LexborHTMLParser(html).root
    if root is None:
        return ""
    out: list[str] = []
    stack: list[tuple[Any, bool]] = [(root.iter(include_text=True), False)]
    while stack:  # iterative: deep markup must not hit the recursion limit
        children, block = stack[-1]
        for child in children:
            tag = child.tag
            if tag == "-text":
                out.append(child.text_content or "")
            elif tag not in SKIPPED_TAGS:
                is_block = tag in BLOCK_TAGS
                if is_block:
                    out.append("\n")
                stack.append((child.iter(include_text=True), is_block))
                break
        else:
            stack.pop()
            if block:
                out.append("\n")
    return tidy_text("".join(out))


_BLOCK_SELECTOR = ",".join(sorted(BLOCK_TAGS))


def _selectolax_css(html: str) -> str:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    tree.strip_tags(sorted(SKIPPED_TAGS))
    for node in tree.css(_BLOCK_SELECTOR):
        node.insert_before("\n")
        node.insert_after("\n")
    root = tree.root
    return tidy_text(root.text(separator="") if root is not None else "")


def _resiliparse(html: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    text = extract_plain_text(
        HTMLTree.parse(html),
        preserve_formatting=True,
        main_content=False,
        list_bullets=False,
        alt_texts=False,
        links=False,
        form_fields=False,
        noscript=False,
    )
    return tidy_text(text)


def _html_parser(html: str) -> str:
    from html.parser import HTMLParser

    class Extract(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.out: list[str] = []
            self.skip = 0

        def handle_starttag(self, tag: str, attrs: Any) -> None:
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

    p = Extract()
    p.feed(html)
    p.close()
    return tidy_text("".join(p.out))


CANDIDATES: dict[str, Callable[[str], str]] = {
    "selectolax (lexbor), tree walk": _selectolax_walk,
    "selectolax (lexbor), CSS + text()": _selectolax_css,
    "resiliparse (lexbor, C++ extractor)": _resiliparse,
    "lxml (libxml2 2.14+), shipped: postroom.message.html_to_text": html_to_text,
    "html.parser (stdlib)": _html_parser,
}


def _documents() -> dict[str, str]:
    html = parse_message(fixtures.build("html")).html
    return {"html (14 KB)": html, "html x40 (570 KB)": html * 40}


def measure(rounds: int) -> list[dict[str, Any]]:
    docs = _documents()
    reference = _html_parser(docs["html (14 KB)"]).split()
    best: dict[tuple[str, str], float] = {}
    for _ in range(rounds):
        for doc_name, doc in docs.items():
            reps = 200 if len(doc) < 100_000 else 4
            for name, fn in CANDIDATES.items():  # round robin: machine noise hits all alike
                fn(doc)
                t0 = time.perf_counter()
                for _ in range(reps):
                    fn(doc)
                per = (time.perf_counter() - t0) / reps
                best[(name, doc_name)] = min(best.get((name, doc_name), per), per)
    rows = []
    for name, fn in CANDIDATES.items():
        t0 = time.perf_counter()
        fn(HOSTILE)
        hostile = time.perf_counter() - t0
        t0 = time.perf_counter()
        fn(NESTED)
        nested = time.perf_counter() - t0
        row: dict[str, Any] = {
            "parser": name,
            "same words as html.parser": fn(docs["html (14 KB)"]).split() == reference,
            "hostile 90 B (µs)": round(hostile * 1e6, 1),
            "4,000 nested divs (ms)": round(nested * 1e3, 1),
        }
        for doc_name in docs:
            row[f"{doc_name} (ms)"] = round(best[(name, doc_name)] * 1e3, 3)
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "| --- |" + " ---: |" * (len(keys) - 1)]
    for r in rows:
        lines.append("| " + " | ".join(str(r[k]) for k in keys) + " |")
    return "\n".join(lines)


def suite(quick: bool) -> dict[str, Any]:
    return rows_suite.suite(
        "HTML to text: C-backed HTML5 parsers (best of interleaved rounds)",
        measure(2 if quick else 5),
        markdown,
    )


if __name__ == "__main__":
    rows_suite.main(measure, markdown, "--rounds", 5)
