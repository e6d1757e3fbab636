"""The caniemail support data shipped with postroom, and what each feature looks for.

``data/caniemail.json`` is the data file of the ``caniemail`` npm package, version 2.0.2
(MIT licence, notices in ``data/caniemail.LICENSE``), caniemail.com's API format; each
feature keeps its newest result per email client family and platform. caniemail says *whether* clients support a feature; which
markup *is* that feature is ours to decide, and :func:`detector_of` derives it
from the feature's slug, title and keywords (``display:flex`` is a property with a
value, ``<video> element`` a tag, ``:hover`` a pseudo-class, ``rem unit`` a unit),
with a short table for the titles that are prose ("Local anchors", "HTML5
semantics").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["Detector", "Feature", "Support", "detector_of", "features", "nicenames", "platforms"]

# Property names as CSS spells them; titles and keywords are matched against this.
_IDENT = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_TAG_IN_TITLE = re.compile(r"<([a-z][a-z0-9]*)(?:\s+type=\"([a-z]+)\")?>")


@dataclass(frozen=True, slots=True)
class Support:
    """One client's newest result: ``yes``, ``no`` or ``partial`` plus note numbers."""

    family: str
    platform: str
    version: str
    support: str
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Detector:
    """What in a message counts as a use of a feature (each field is matched on its own)."""

    tags: frozenset[str] = frozenset()
    tag_types: frozenset[tuple[str, str]] = frozenset()  # (tag, type attribute value)
    attributes: frozenset[str] = frozenset()
    properties: frozenset[str] = frozenset()
    property_values: frozenset[tuple[str, str]] = frozenset()
    at_rules: frozenset[str] = frozenset()
    media_features: frozenset[str] = frozenset()
    pseudos: frozenset[str] = frozenset()  # ":hover", "::before", ":lang"
    functions: frozenset[str] = frozenset()
    units: frozenset[str] = frozenset()
    keywords: frozenset[str] = frozenset()  # identifiers in values (system-ui, initial)
    facts: frozenset[str] = frozenset()  # named facts (important, css-comments, doctype, ...)
    image_types: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Feature:
    slug: str
    title: str
    description: str
    category: str
    keywords: str
    tags: tuple[str, ...]
    url: str
    results: tuple[Support, ...]
    notes: dict[str, str] = field(hash=False)
    detector: Detector | None = field(hash=False)


_SUPPORT = {"y": "yes", "n": "no", "a": "partial"}

# Features whose title is prose, or names several things, or whose keywords are not
# property names: what they look for, spelled out.
_SPECIAL: dict[str, Detector] = {
    "amp": Detector(attributes=frozenset({"amp4email", "⚡4email"})),
    "css-border": Detector(
        properties=frozenset(
            f"border{side}{part}"
            for side in ("", "-top", "-bottom", "-left", "-right")
            for part in ("", "-width", "-style", "-color")
        )
    ),
    "css-column-layout-properties": Detector(
        properties=frozenset(
            {"columns", "column-fill", "column-rule", "column-rule-color", "column-rule-style"}
            | {"column-rule-width", "column-span", "column-width"}
        )
    ),
    "css-comments": Detector(facts=frozenset({"css-comment"})),
    "css-important": Detector(facts=frozenset({"important"})),
    "css-inert-attribute": Detector(attributes=frozenset({"inert"})),
    "css-intrinsic-size": Detector(keywords=frozenset({"fit-content", "min-content", "max-content"})),
    "css-nesting": Detector(facts=frozenset({"nesting"})),
    "css-scroll-snap": Detector(
        properties=frozenset({"scroll-snap-type", "scroll-snap-align", "scroll-snap-stop"})
    ),
    "css-sytem-ui": Detector(
        keywords=frozenset({"system-ui", "ui-serif", "ui-sans-serif", "ui-rounded", "ui-monospace"})
    ),
    "css-unit-initial": Detector(keywords=frozenset({"initial"})),
    "css-variables": Detector(facts=frozenset({"custom-property"}), functions=frozenset({"var"})),
    "css-pseudo-class-lang": Detector(pseudos=frozenset({":lang"})),
    "html-address": Detector(tags=frozenset({"address"})),
    "html-anchor-links": Detector(facts=frozenset({"anchor-link"})),
    "html-comments": Detector(facts=frozenset({"html-comment"})),
    "html-doctype": Detector(facts=frozenset({"html5-doctype"})),
    "html-image-maps": Detector(tags=frozenset({"map", "area"}), attributes=frozenset({"usemap"})),
    "html-mailto-links": Detector(facts=frozenset({"mailto-link"})),
    "html-meta-color-scheme": Detector(facts=frozenset({"meta-color-scheme"})),
    "html-semantics": Detector(
        tags=frozenset(
            {"article", "aside", "details", "figcaption", "figure", "footer", "header"}
            | {"main", "mark", "nav", "section", "summary", "time"}
        )
    ),
    "html-srcset": Detector(attributes=frozenset({"srcset", "sizes"})),
    "image-base64": Detector(facts=frozenset({"data-image"})),
    "image-jpg": Detector(image_types=frozenset({"jpg", "jpeg"})),
    "image-heif": Detector(image_types=frozenset({"heif", "heic"})),
    "image-tiff": Detector(image_types=frozenset({"tif", "tiff"})),
}

# css-selector-* slugs: the selector facts the CSS walker records.
_SELECTORS = {
    "adjacent-sibling",
    "attribute",
    "chaining",
    "child",
    "class",
    "descendant",
    "general-sibling",
    "grouping",
    "id",
    "type",
    "universal",
}


def _css_detector(slug: str, title: str, keywords: str) -> Detector | None:
    if slug.startswith("css-selector-"):
        kind = slug.removeprefix("css-selector-")
        return Detector(facts=frozenset({"selector-" + kind})) if kind in _SELECTORS else None
    t = title.strip()
    if t.startswith("@media (") or t.startswith("@media ("):
        names = re.findall(r"\(([a-z-]+)\)", t)
        return Detector(media_features=frozenset(names))
    if t.startswith("@"):
        return Detector(at_rules=frozenset({t[1:].split()[0]}))
    if t.startswith(":"):
        return Detector(pseudos=frozenset({t.split("(")[0].split()[0]}))
    if t.endswith(" unit"):
        unit = t.removesuffix(" unit").strip()
        return Detector(units=frozenset({unit}))
    funcs = re.findall(r"([a-z][a-z-]*)\(\)", t)
    if funcs:
        return Detector(functions=frozenset(funcs))
    if ":" in t:
        prop, _, value = t.partition(":")
        return Detector(property_values=frozenset({(prop.strip(), value.strip())}))
    t = re.sub(r"\s+(CSS property|property|shorthand|-\*\s+properties)$", "", t)
    t = t.replace("-* properties", "")
    names = [n.strip() for n in re.split(r",|&", t)]
    if not names or not all(_IDENT.fullmatch(n) for n in names):
        # "border-inline & border-block longhand properties": the keywords list them.
        listed = [k.strip() for k in keywords.split(",")]
        if listed and all(_IDENT.fullmatch(k) and "-" in k for k in listed):
            return Detector(properties=frozenset(listed))
        return None
    props = set(names)
    for k in keywords.split(","):
        k = k.strip()
        if _IDENT.fullmatch(k) and "-" in k and any(k.startswith(n + "-") for n in names):
            props.add(k)
    return Detector(properties=frozenset(props))


def _html_detector(title: str) -> Detector | None:
    tags = _TAG_IN_TITLE.findall(title)
    if tags:
        if title.startswith("<h1> to <h6>"):
            return Detector(tags=frozenset(f"h{i}" for i in range(1, 7)))
        plain = frozenset(t for t, typ in tags if not typ)
        typed = frozenset((t, typ) for t, typ in tags if typ)
        if "<ul>" in title:  # lists: the item tags count too
            plain = plain | {"li", "dt", "dd"}
        return Detector(tags=plain, tag_types=typed)
    if title.endswith(" attribute"):
        return Detector(attributes=frozenset({title.removesuffix(" attribute").strip()}))
    return None


def detector_of(slug: str, category: str, title: str, keywords: str) -> Detector | None:
    """What a feature looks for in a message, or None when postroom cannot tell."""
    if slug in _SPECIAL:
        return _SPECIAL[slug]
    if category == "css":
        return _css_detector(slug, title, keywords)
    if category == "html":
        return _html_detector(title)
    if category == "image" and slug.startswith("image-"):
        kind = slug.removeprefix("image-")
        return Detector(image_types=frozenset({kind})) if kind not in ("mp4", "hdr") else None
    return None


@cache
def _data() -> dict[str, Any]:
    """The shipped data in the shape the rest of this module reads: ``nicenames`` and
    ``features``, each feature with its newest result per family and platform.

    ``data/caniemail.json`` is the data file of the ``caniemail`` npm package (MIT; its
    notice is ``data/caniemail.LICENSE``): caniemail.com's API format, where ``stats``
    maps family -> platform -> {version: "y|n|a|u [#note...]"}, versions oldest first.
    """
    text = resources.files("postroom.checks").joinpath("data/caniemail.json").read_text("utf-8")
    raw: dict[str, Any] = json.loads(text)
    features = []
    for f in raw["data"]:
        stats: dict[str, dict[str, list[str]]] = {}
        for family, plats in (f.get("stats") or {}).items():
            for platform, versions in (plats or {}).items():
                if versions:
                    version, result = list(versions.items())[-1]  # the newest test
                    stats.setdefault(family, {})[platform] = [str(version), str(result)]
        features.append(
            {
                "slug": f["slug"],
                "title": f["title"],
                "description": f.get("description") or "",
                "category": f.get("category") or "",
                "keywords": f.get("keywords") or "",
                "tags": f.get("tags") or [],
                "url": str(f.get("url") or "").rstrip("/"),
                "stats": stats,
                "notes": f.get("notes_by_num") or {},
            }
        )
    return {"nicenames": raw["nicenames"], "features": features}


def nicenames() -> dict[str, dict[str, str]]:
    """caniemail's display names: ``{"family": {...}, "platform": {...}}``."""
    nice: dict[str, dict[str, str]] = _data()["nicenames"]
    return nice


def _results(stats: dict[str, dict[str, list[str]]]) -> tuple[Support, ...]:
    out = []
    for family, plats in stats.items():
        for platform, (version, raw) in plats.items():
            code, *notes = raw.split()
            if code not in _SUPPORT:
                continue  # "u": untested; says nothing either way
            out.append(
                Support(family, platform, version, _SUPPORT[code], tuple(n.lstrip("#") for n in notes))
            )
    return tuple(out)


@cache
def features() -> tuple[Feature, ...]:
    """Every caniemail feature, parsed once per process."""
    out = []
    for f in _data()["features"]:
        out.append(
            Feature(
                slug=f["slug"],
                title=f["title"],
                description=f["description"],
                category=f["category"],
                keywords=f["keywords"],
                tags=tuple(f["tags"]),
                url=f["url"],
                results=_results(f["stats"]),
                notes=dict(f["notes"]),
                detector=detector_of(f["slug"], f["category"], f["title"], f["keywords"]),
            )
        )
    return tuple(out)


@cache
def platforms() -> dict[str, list[str]]:
    """Platform display name -> the client families tested on it (Mailpit's ``Platforms``)."""
    nice = nicenames()
    seen: dict[str, set[str]] = {}
    for f in features():
        for r in f.results:
            p = nice["platform"].get(r.platform, r.platform)
            seen.setdefault(p, set()).add(nice["family"].get(r.family, r.family))
    return {p: sorted(fams) for p, fams in sorted(seen.items())}
