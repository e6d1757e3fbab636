"""List-Unsubscribe checks reported as Mailpit words them (issue 22)."""

from __future__ import annotations

import pytest

from postroom.listunsub import check_list_unsubscribe


@pytest.mark.parametrize(
    ("header", "links", "errors"),
    [
        ("<mailto:u@example.test>, <https://example.test/u>", ["mailto:u@example.test", "https://example.test/u"], ""),
        ("<https://example.test/u> (one click)", ["https://example.test/u"], ""),
        ("https://example.test/u", [], '"https://example.test/u" no valid unsubscribe links found'),
        ("see <https://example.test/u>", [], '"see <https://example.test/u>" should be enclosed in <>'),
        ("<a:1>,<b:2>,<c:3>", [], '"<a:1>,<b:2>,<c:3>" should include a maximum of one email and one HTTP link'),
        ("<mailto:a@x.test> ; <https://x.test>", [], '"<mailto:a@x.test> ; <https://x.test>" <> should be split with a comma and optional spaces'),
        ("<https://x.test/a b>", [], '"https://x.test/a b" should not contain spaces'),
        ("<ftp://x.test>", [], '"ftp://x.test" should start with either http(s):// or mailto:'),
        ("<https://x.test/1>, <https://x.test/2>", ["https://x.test/1"], '"https://x.test/2" should only contain one HTTP link'),
        ("<mailto:a@x.test>,<mailto:b@x.test>", ["mailto:a@x.test"], '"mailto:b@x.test" should only contain one mailto:'),
    ],
)  # fmt: skip
def test_list_unsubscribe_checks(header: str, links: list[str], errors: str) -> None:
    assert check_list_unsubscribe(header) == (links, errors)
