"""HTML check: results against the shipped caniemail data, and Mailpit's response shape."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from postroom.checks.html import analyse, html_check
from tests.helpers import running_server
from tests.integration._api_client import Api, smtp_send, strict_schema

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
SPEC = json.loads((VECTORS / "mailpit" / "api-shape.json").read_text())
FLEX = (VECTORS / "checks" / "unsupported-css.eml").read_bytes()


def validate(definition: str, instance: Any) -> None:
    defs = strict_schema(SPEC["definitions"])
    jsonschema.validate(
        instance, {"$ref": f"#/definitions/{definition}", "definitions": defs}, cls=jsonschema.Draft4Validator
    )


def caniemail(slug: str) -> dict[str, Any]:
    """The feature as the shipped data file has it (caniemail.com's API format), with
    ``stats`` reduced to the newest test per family and platform (versions oldest first)."""
    text = resources.files("postroom.checks").joinpath("data/caniemail.json").read_text("utf-8")
    found: dict[str, Any] = next(f for f in json.loads(text)["data"] if f["slug"] == slug)
    newest = {
        fam: {plat: list(vers.items())[-1] for plat, vers in plats.items() if vers}
        for fam, plats in found["stats"].items()
    }
    return {**found, "stats": newest, "notes": found.get("notes_by_num") or {}}


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[Api, str, str]]:
    with running_server() as s:
        a = Api(s)
        smtp_send(s, FLEX, ["ann@example.org"])
        plain = a.send(From={"Email": "a@example.com"}, To=[{"Email": "b@example.com"}], Text="only text")
        a.wait_indexed()
        flex = a.get("/api/v1/search?query=subject:Flex").json()["messages"][0]["ID"]
        yield a, flex, plain


def test_known_unsupported_css_matches_the_caniemail_data(api: tuple[Api, str, str]) -> None:
    a, flex, _ = api
    r = a.get(f"/api/v1/message/{flex}/html-check")
    assert r.status == 200, r.text
    body = r.json()
    validate("HTMLCheckResponse", body)
    warnings = {w["Slug"]: w for w in body["Warnings"]}
    assert {"css-display-flex", "css-display-grid", "css-gap", "html-video"} <= set(warnings)
    assert {"css-at-media-prefers-color-scheme", "css-pseudo-class-hover", "css-box-shadow"} <= set(warnings)
    flex_w = warnings["css-display-flex"]
    data = caniemail("css-display-flex")
    # Every newest result of the data file is there, with its support and note number.
    want = {}
    for family, plats in data["stats"].items():
        for platform, (version, code) in plats.items():
            if code.split()[0] != "u":
                want[(family, platform)] = (version, code)
    assert len(flex_w["Results"]) == len(want)
    outlook_win = next(
        x for x in flex_w["Results"] if x["Family"] == "Outlook" and x["Platform"] == "Windows"
    )
    assert outlook_win["Support"] == "no" and want[("outlook", "windows")][1] == "n"
    gmail_android = next(
        x for x in flex_w["Results"] if x["Family"] == "Gmail" and x["Platform"] == "Android"
    )
    assert gmail_android["Support"] == "partial" and gmail_android["NoteNumber"] == "1"
    assert flex_w["NotesByNumber"]["1"] == data["notes"]["1"]
    no = sum(1 for v in want.values() if v[1].startswith("n"))
    assert flex_w["Score"]["Unsupported"] == pytest.approx(100 * no / len(want))
    assert flex_w["Score"]["Found"] == 1 and warnings["css-display"]["Score"]["Found"] == 2
    assert flex_w["URL"] == "https://www.caniemail.com/features/css-display-flex"
    total = body["Total"]
    assert total["Nodes"] == 8  # html head style body div p video a
    assert total["Tests"] > 290 and 0 < total["Unsupported"] < 100
    assert "Outlook" in body["Platforms"]["Windows"]


def test_no_html_part_is_400_and_unknown_is_404(api: tuple[Api, str, str]) -> None:
    a, _, plain = api
    r = a.get(f"/api/v1/message/{plain}/html-check")
    assert r.status == 400 and "does not contain HTML" in r.text
    assert a.get("/api/v1/message/nope/html-check").status == 404


def test_supported_only_markup_has_no_warnings() -> None:
    body = html_check("<table><tr><td>hi</td></tr></table>")
    validate("HTMLCheckResponse", body)
    assert body["Warnings"] == [] or all(w["Score"]["Supported"] < 100 for w in body["Warnings"])
    assert body["Total"]["Nodes"] == 3  # table tr td (html/head/body were not written; libxml2 adds no tbody)


def test_selectors_units_and_implied_elements() -> None:
    f = analyse(
        b"<style>/*x*/ ul > li + li ~ li, a[href] .x.y *::before { width: 2rem; margin: 1em 5% }"
        b"@media (prefers-reduced-motion: reduce) { p:first-child { color: lch(50% 40 20) } }</style>"
        b"<p style='font-family: system-ui; --brand: red'>x</p><img src='a.PNG?x=1'>"
        b"<img src='data:image/gif;base64,R0lGOD'><a href='mailto:x@y'>m</a><a href='#top'>t</a>"
    )
    assert f.facts["selector-child"] == 1 and f.facts["selector-adjacent-sibling"] == 1
    assert f.facts["selector-general-sibling"] == 1 and f.facts["selector-grouping"] == 1
    assert f.facts["selector-attribute"] == 1 and f.facts["selector-universal"] == 1
    assert f.facts["selector-chaining"] >= 1 and f.facts["selector-descendant"] >= 1
    assert f.pseudos["::before"] == 1 and f.pseudos[":first-child"] == 1
    assert f.units["rem"] == 1 and f.units["em"] == 1 and f.units["%"] == 2
    assert f.media_features["prefers-reduced-motion"] == 1 and f.functions["lch"] == 1
    assert f.facts["css-comment"] == 1 and f.facts["custom-property"] == 1
    assert f.keywords["system-ui"] == 1
    assert f.image_types["png"] == 1 and f.image_types["gif"] == 1 and f.facts["data-image"] == 1
    assert f.facts["mailto-link"] == 1 and f.facts["anchor-link"] == 1
    assert f.tags["body"] == 0 and f.tags["p"] == 1  # the parser's implied <body> is not counted


def test_deep_nesting_stays_linear() -> None:
    """200,000 nested elements: lexbor (the first parser used here) took minutes; must be quick."""
    code = (
        "from postroom.checks.html import html_check\n"
        "html_check(b'<div>' * 200_000 + b'<p style=\"display:flex\">x</p>')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
