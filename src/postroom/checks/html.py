"""HTML check: which HTML and CSS features a message uses, and which clients lack them.

The message's HTML is parsed once with libxml2's HTML parser (lxml) and
its CSS (``<style>`` elements and ``style`` attributes) with tinycss2's tokenizer;
both walks record *facts* (tags, attributes, properties, property values, at-rules,
media features, pseudo-classes, functions, units, selector kinds) with a count. Each
caniemail feature (:mod:`postroom.checks.caniemail`) that matches a fact is a test
found in the message; its support is the share of client results that say yes,
partial or no. The answer has Mailpit's ``HTMLCheckResponse`` shape, so Mailpit
clients and its web UI code read it unchanged:

- ``Warnings``: the found features not supported everywhere, each with its client
  ``Results``, ``NotesByNumber`` and a ``Score`` (Found, Supported/Partial/Unsupported
  in percent);
- ``Total``: ``Nodes`` (HTML elements), ``Tests`` (features checked) and the mean
  Supported/Partial/Unsupported over every found feature;
- ``Platforms``: platform -> client families tested there.

Budgets: the HTML is cut at :data:`MAX_HTML` bytes and the CSS at :data:`MAX_CSS`
characters before parsing; both parsers are linear (no backtracking).
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import lxml.etree
import lxml.html
import tinycss2

from .caniemail import Detector, Feature, features, nicenames, platforms

__all__ = ["MAX_CSS", "MAX_HTML", "Facts", "analyse", "html_check", "parse_html"]

# Largest HTML parsed (Gmail clips messages over 102 KB; 4 MiB leaves ample room).
MAX_HTML = 4 * 1024 * 1024
# Largest CSS text handed to tinycss2 (pure Python; about 1 s per 2 MB here).
MAX_CSS = 512 * 1024
_DOCTYPE = re.compile(rb"\s*<!doctype\s+html\s*>", re.IGNORECASE)
_IMAGE_EXT = re.compile(r"\.([a-z0-9]{2,5})$")
_PARSERS = threading.local()  # an lxml parser must not be shared between threads


def parse_html(html: bytes | str) -> Any:
    """The document's root element (lxml), or None for an empty document.

    libxml2's HTML parser (its tokenizer follows HTML5's) is linear in the input and
    stops descending at 256 levels; lexbor, also tried, is quadratic in nesting depth
    (8,000 nested ``div`` elements took 1.8 s; see docs/performance.md "HTML to text").
    """
    raw = html.encode("utf-8", "replace") if isinstance(html, str) else html
    parser = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = _PARSERS.parser = lxml.html.HTMLParser(
            encoding="utf-8", remove_comments=False, remove_pis=True, no_network=True, default_doctype=False
        )
    try:
        return lxml.html.document_fromstring(raw[:MAX_HTML], parser=parser)
    except (lxml.etree.LxmlError, ValueError):  # "Document is empty" and the like
        return None


@dataclass(slots=True)
class Facts:
    """What one message's HTML and CSS use, with a count of each."""

    nodes: int = 0
    tags: Counter[str] = field(default_factory=Counter)
    tag_types: Counter[tuple[str, str]] = field(default_factory=Counter)
    attributes: Counter[str] = field(default_factory=Counter)
    properties: Counter[str] = field(default_factory=Counter)
    property_values: Counter[tuple[str, str]] = field(default_factory=Counter)
    at_rules: Counter[str] = field(default_factory=Counter)
    media_features: Counter[str] = field(default_factory=Counter)
    pseudos: Counter[str] = field(default_factory=Counter)
    functions: Counter[str] = field(default_factory=Counter)
    units: Counter[str] = field(default_factory=Counter)
    keywords: Counter[str] = field(default_factory=Counter)
    facts: Counter[str] = field(default_factory=Counter)
    image_types: Counter[str] = field(default_factory=Counter)

    def count(self, d: Detector) -> int:
        """How many times the message uses what ``d`` looks for."""
        n = 0
        for name in (
            "tags",
            "tag_types",
            "attributes",
            "properties",
            "property_values",
            "at_rules",
            "media_features",
            "pseudos",
            "functions",
            "units",
            "keywords",
            "facts",
            "image_types",
        ):
            want = getattr(d, name)
            if want:
                have: Counter[Any] = getattr(self, name)
                n += sum(have[w] for w in want)
        return n


def _values(facts: Facts, prop: str, tokens: list[Any]) -> None:
    """Record the functions, units and identifiers of a declaration's value."""
    for tok in tokens:
        t = tok.type
        if t == "function":
            facts.functions[tok.lower_name] += 1
            _values(facts, prop, tok.arguments)
        elif t == "dimension":
            facts.units[tok.lower_unit] += 1
        elif t == "percentage":
            facts.units["%"] += 1
        elif t == "ident":
            facts.keywords[tok.lower_value] += 1
            facts.property_values[(prop, tok.lower_value)] += 1
        elif t == "comment":
            facts.facts["css-comment"] += 1
        elif t in ("() block", "[] block", "{} block"):
            _values(facts, prop, tok.content)


def _declarations(facts: Facts, tokens: list[Any]) -> None:
    for decl in tinycss2.parse_blocks_contents(tokens, skip_whitespace=True):
        if decl.type == "declaration":
            name = decl.lower_name
            if name.startswith("--"):
                facts.facts["custom-property"] += 1
                continue
            facts.properties[name] += 1
            if decl.important:
                facts.facts["important"] += 1
            _values(facts, name, decl.value)
        elif decl.type == "qualified-rule":  # a rule inside a rule: CSS nesting
            facts.facts["nesting"] += 1
            _selectors(facts, decl.prelude)
            _declarations(facts, decl.content)
        elif decl.type == "comment":
            facts.facts["css-comment"] += 1


def _selectors(facts: Facts, prelude: list[Any]) -> None:
    """Selector kinds (class, id, combinators, pseudo-classes) of a rule's prelude."""
    f = facts.facts
    combinators = {">": "child", "+": "adjacent-sibling", "~": "general-sibling", ",": "grouping"}
    toks = [t for t in prelude if t.type != "comment"]
    f["css-comment"] += len(prelude) - len(toks)
    compound = 0  # simple selectors in the current compound selector
    space = False
    i = 0
    while i < len(toks):
        tok = toks[i]
        i += 1
        if tok.type == "whitespace":
            space = compound > 0
            continue
        if tok.type == "literal" and tok.value in combinators:
            f["selector-" + combinators[tok.value]] += 1
            compound, space = 0, False
            continue
        if space:
            f["selector-descendant"] += 1
            compound, space = 0, False
        if tok.type == "ident":
            f["selector-type"] += 1
        elif tok.type == "hash":
            f["selector-id"] += 1
        elif tok.type == "[] block":
            f["selector-attribute"] += 1
        elif tok.type == "literal" and tok.value == "*":
            f["selector-universal"] += 1
        elif tok.type == "literal" and tok.value == ".":
            f["selector-class"] += 1
            i += 1  # the class name
        elif tok.type == "literal" and tok.value == ":":
            colons = ":"
            if i < len(toks) and toks[i].type == "literal" and toks[i].value == ":":
                colons, i = "::", i + 1
            if i < len(toks) and toks[i].type in ("ident", "function"):
                nxt = toks[i]
                facts.pseudos[colons + (nxt.lower_value if nxt.type == "ident" else nxt.lower_name)] += 1
                i += 1
        compound += 1
        if compound == 2:
            f["selector-chaining"] += 1


def _stylesheet(facts: Facts, css: str) -> None:
    for rule in tinycss2.parse_stylesheet(css, skip_whitespace=True, skip_comments=False):
        if rule.type == "comment":
            facts.facts["css-comment"] += 1
        elif rule.type == "at-rule":
            facts.at_rules[rule.lower_at_keyword] += 1
            if rule.lower_at_keyword == "media":
                for tok in rule.prelude:
                    if tok.type == "() block":
                        name = next((x for x in tok.content if x.type == "ident"), None)
                        if name is not None:
                            facts.media_features[name.lower_value] += 1
            if rule.content is not None:
                if rule.lower_at_keyword in ("media", "supports"):
                    _stylesheet(facts, tinycss2.serialize(rule.content))
                else:
                    _declarations(facts, rule.content)
        elif rule.type == "qualified-rule":
            _selectors(facts, rule.prelude)
            _declarations(facts, rule.content)


def _image_type(facts: Facts, src: str) -> None:
    s = src.strip().lower()
    if s.startswith("data:"):
        facts.facts["data-image"] += 1
        mime = s[5:].split(";", 1)[0].split(",", 1)[0]
        if mime.startswith("image/"):
            facts.image_types[mime[6:].replace("svg+xml", "svg")] += 1
        return
    path = s.split("?", 1)[0].split("#", 1)[0][-12:]
    m = _IMAGE_EXT.search(path)
    if m:
        facts.image_types[m.group(1)] += 1


def analyse(html: bytes | str) -> Facts:
    """Walk a message's HTML and CSS once and count what they use."""
    raw = html.encode("utf-8", "replace") if isinstance(html, str) else html
    raw = raw[:MAX_HTML]
    facts = Facts()
    if _DOCTYPE.match(raw[:256]):
        facts.facts["html5-doctype"] += 1
    root = parse_html(raw)
    if root is None:
        return facts
    css_budget = MAX_CSS
    # The parser adds <html>, <head> and <body> when the markup has none: count only written ones.
    lower = raw.lower()
    implied = {t for t in ("html", "head", "body") if b"<" + t.encode() not in lower}
    for node in root.iter():
        tag = node.tag
        if not isinstance(tag, str):
            if tag is lxml.etree.Comment:
                facts.facts["html-comment"] += 1
            continue
        tag = tag.lower()
        if tag in implied:
            continue
        facts.nodes += 1
        facts.tags[tag] += 1
        attrs = node.attrib
        for name, value in attrs.items():
            name = name.lower()
            facts.attributes[name] += 1
            if name == "type" and value:
                facts.tag_types[(tag, value.strip().lower())] += 1
            elif name == "style" and value and css_budget > 0:
                text = value[:css_budget]
                css_budget -= len(text)
                _declarations(facts, tinycss2.parse_component_value_list(text, skip_comments=False))
        href = (attrs.get("href") or "").strip().lower()
        if tag == "a" and href.startswith("#"):
            facts.facts["anchor-link"] += 1
        elif tag == "a" and href.startswith("mailto:"):
            facts.facts["mailto-link"] += 1
        elif tag == "meta" and (attrs.get("name") or "").lower() in (
            "color-scheme",
            "supported-color-schemes",
        ):
            facts.facts["meta-color-scheme"] += 1
        elif tag == "img" and attrs.get("src"):
            _image_type(facts, attrs.get("src") or "")
        elif tag == "style" and css_budget > 0:
            text = (node.text or "")[:css_budget]
            css_budget -= len(text)
            _stylesheet(facts, text)
    return facts


def _score(results: list[dict[str, str]]) -> tuple[float, float, float]:
    if not results:
        return 0.0, 0.0, 0.0
    n = len(results)
    yes = sum(r["Support"] == "yes" for r in results)
    part = sum(r["Support"] == "partial" for r in results)
    return 100.0 * yes / n, 100.0 * part / n, 100.0 * (n - yes - part) / n


def _warning(f: Feature, found: int) -> tuple[dict[str, Any], tuple[float, float, float]]:
    nice = nicenames()
    results = []
    used_notes: set[str] = set()
    for r in f.results:
        family = nice["family"].get(r.family, r.family)
        platform = nice["platform"].get(r.platform, r.platform)
        results.append(
            {
                "Name": f"{family} {platform} {r.version}",
                "Family": family,
                "Platform": platform,
                "Version": r.version,
                "Support": r.support,
                "NoteNumber": r.notes[0] if r.notes else "",
            }
        )
        used_notes.update(r.notes)
    score = _score(results)
    return (
        {
            "Slug": f.slug,
            "Title": f.title,
            "Description": f.description,
            "Category": f.category,
            "Tags": list(f.tags),
            "Keywords": f.keywords,
            "URL": f.url,
            "NotesByNumber": {k: v for k, v in f.notes.items() if k in used_notes},
            "Results": results,
            "Score": {"Found": found, "Supported": score[0], "Partial": score[1], "Unsupported": score[2]},
        },
        score,
    )


def html_check(html: bytes | str) -> dict[str, Any]:
    """Mailpit's ``HTMLCheckResponse`` for a message's HTML body.

    Args:
        html: the HTML part, decoded text or bytes (UTF-8 assumed for bytes).

    Returns:
        ``{"Platforms": ..., "Total": ..., "Warnings": [...]}``; warnings are ordered
        by their unsupported share, largest first, as Mailpit's UI lists them.
    """
    facts = analyse(html)
    warnings = []
    scores = []
    tests = 0
    for f in features():
        if f.detector is None or not f.results:
            continue
        tests += 1
        found = facts.count(f.detector)
        if not found:
            continue
        warning, score = _warning(f, found)
        scores.append(score)
        if score[0] < 100.0:
            warnings.append(warning)
    warnings.sort(key=lambda w: (-w["Score"]["Unsupported"], -w["Score"]["Partial"], w["Slug"]))
    n = len(scores)
    total = {
        "Nodes": facts.nodes,
        "Tests": tests,
        "Supported": sum(s[0] for s in scores) / n if n else 100.0,
        "Partial": sum(s[1] for s in scores) / n if n else 0.0,
        "Unsupported": sum(s[2] for s in scores) / n if n else 0.0,
    }
    return {"Platforms": platforms(), "Total": total, "Warnings": warnings}
