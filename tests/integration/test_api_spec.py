"""Responses validated against the shapes of Mailpit's own swagger (tests/vectors/mailpit/api-shape.json)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.helpers import running_server
from tests.integration._api_client import Api, strict_schema

# Mailpit's swagger without its prose (scripts/mailpit_api_shape.py): routes, status codes, fields.
SPEC_PATH = Path(__file__).resolve().parents[1] / "vectors" / "mailpit" / "api-shape.json"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    return data


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    with running_server() as s:
        a = Api(s)
        a.send(
            From={"Email": "a@example.com", "Name": "A"},
            To=[{"Email": "b@example.com"}],
            Subject="spec",
            Text="hello",
            HTML="<p>hello</p>",
            Tags=["t1"],
            Attachments=[{"Filename": "f.txt", "Content": base64.b64encode(b"file").decode()}],
        )
        a.wait_indexed()
        yield a


def _validate(spec: dict[str, Any], schema: dict[str, Any], instance: Any) -> None:
    resolver_doc = {"definitions": strict_schema(spec["definitions"])}
    full = {**strict_schema(schema), "definitions": resolver_doc["definitions"]}
    jsonschema.validate(instance, full, cls=jsonschema.Draft4Validator)


def _response_schema(spec: dict[str, Any], path: str, method: str, status: str = "200") -> dict[str, Any]:
    ref = spec["paths"][path][method]["responses"][status]
    if "$ref" in ref:
        ref = spec["responses"][ref["$ref"].split("/")[-1]]
    schema: dict[str, Any] = ref["schema"]
    return schema


def _concrete(api: Api, path: str) -> str:
    mid = api.get("/api/v1/search?query=subject:spec").json()["messages"][0]["ID"]
    return path.replace("{ID}", mid).replace("{Tag}", "t1")


JSON_GETS = [
    "/api/v1/messages",
    "/api/v1/search",
    "/api/v1/message/{ID}",
    "/api/v1/message/{ID}/headers",
    "/api/v1/tags",
    "/api/v1/info",
    "/api/v1/webui",
]


@pytest.mark.parametrize("path", JSON_GETS)
def test_json_responses_match_the_mailpit_spec(spec: dict[str, Any], api: Api, path: str) -> None:
    url = _concrete(api, path) + ("?query=hello" if path.endswith("/search") else "")
    r = api.get(url)
    assert r.status == 200, r.text
    _validate(spec, _response_schema(spec, path, "get"), r.json())


def test_message_summary_has_every_spec_field(spec: dict[str, Any], api: Api) -> None:
    summary = api.get("/api/v1/messages").json()["messages"][0]
    # exactly Mailpit's fields: clients compare whole objects (issue 22)
    assert set(spec["definitions"]["MessageSummary"]["properties"]) == set(summary)
    extended = api.get("/api/v2/messages").json()["messages"][0]
    assert set(extended) == set(summary) | {"ThreadID", "Mailboxes"}  # postroom's additions
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", summary["Created"])


def test_send_response_matches_spec(spec: dict[str, Any], api: Api) -> None:
    r = api.request(
        "POST", "/api/v1/send", {"From": {"Email": "x@example.com"}, "To": [{"Email": "y@example.com"}]}
    )
    _validate(spec, _response_schema(spec, "/api/v1/send", "post"), r.json())
    bad = api.request("POST", "/api/v1/send", {"To": []})
    assert bad.status == 400
    _validate(spec, _response_schema(spec, "/api/v1/send", "post", "400"), bad.json())


def test_every_spec_route_exists(spec: dict[str, Any], api: Api) -> None:
    """No route of the spec answers 404/405 for a known message (they may answer 400: not enabled)."""
    for path, ops in spec["paths"].items():
        for method in ops:
            url = _concrete(api, path).replace("{PartID}", "2")
            body = b"{}" if method in ("put", "post") else None
            if path == "/api/v1/search":
                url += "?query=" + ("hello" if method == "get" else "subject:nothing-matches")
            if method == "delete" and path == "/api/v1/messages":
                body = b'{"IDs": ["no-such-id"]}'
            r = api.request(method.upper(), url, raw=body)
            assert r.status not in (404, 405, 500), (method, path, r.status, r.text)
            declared = set(ops[method]["responses"])
            assert str(r.status) in declared, (method, path, r.status, declared)


def test_plain_text_routes(spec: dict[str, Any], api: Api) -> None:
    for method, path, body in [
        ("PUT", "/api/v1/messages", {"Read": True}),
        ("PUT", "/api/v1/tags/{Tag}", {"Name": "t2"}),
    ]:
        r = api.request(method, _concrete(api, path), body)
        assert r.status == 200 and r.text == "ok"
        assert r.headers.get_content_type() == "text/plain"


def test_openapi_document_covers_every_route() -> None:
    """Every route the server registers is documented in web/openapi.json, and nothing more."""
    from postroom.app import App
    from postroom.config import Settings
    from postroom.web.app import create_app
    from postroom.web.views import openapi_document

    wapp = create_app(App(Settings()))
    served = set()
    for route in wapp.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method in ("HEAD", "*") or path in ("/", "/{path}"):
            continue
        served.add((route.method.lower(), path))
    doc = openapi_document()
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented
