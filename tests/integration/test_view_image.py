"""``GET /view/{ID}.svg``: the HTML of a message as a self-contained SVG image (the web UI
draws it to make its PNG screenshot): well-formed XML, the cid: pictures inlined, nothing
that runs or loads, and a sandboxing Content-Security-Policy for a direct visit."""

from __future__ import annotations

import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import pytest

from tests.helpers import RunningServer
from tests.integration._api_client import Api, smtp_send

SVG = "{http://www.w3.org/2000/svg}"
XHTML = "{http://www.w3.org/1999/xhtml}"


HTML = (
    "<html><head><script>alert(1)</script><meta http-equiv=refresh content='0;url=https://x.example'>"
    "<style>.logo { background: url(cid:logo@x) }</style></head>"
    "<body onload='alert(2)'><o:p>outlook</o:p><p [x]='1' class='a'>hello &amp; bye</p>"
    "<img src='cid:logo@x'><img src='https://tracker.example/p.png'><img src='/api/v1/info'>"
    "<a href='javascript:alert(3)'>link</a><iframe src='https://x.example'></iframe>"
    "<svg><script>alert(4)</script></svg></body></html>"
)


def _hostile() -> bytes:
    """multipart/related: the HTML and the picture it names by Content-ID."""
    return (
        "From: s@example.com\r\nTo: alice@example.com\r\nSubject: hostile\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/related; boundary="b"\r\n\r\n'
        f"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{HTML}\r\n"
        "--b\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        "iVBORw0KZmFrZQ==\r\n--b--\r\n"
    ).encode()


def _get(server: RunningServer, path: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(server.http_url + path, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def test_svg_is_self_contained_and_runs_nothing(server: RunningServer) -> None:
    api = Api(server)
    smtp_send(server, _hostile(), ["alice@example.com"])
    mid = api.get("/api/v1/messages").json()["messages"][0]["ID"]
    status, headers, body = _get(server, f"/view/{mid}.svg?width=375&height=900")
    assert status == 200 and headers["Content-Type"].startswith("image/svg+xml")
    assert headers["Content-Security-Policy"].startswith("sandbox; default-src 'none'")
    assert headers["X-Content-Type-Options"] == "nosniff"
    root = ET.fromstring(body)  # well-formed XML, or no browser would draw it
    assert root.tag == f"{SVG}svg" and root.get("width") == "375" and root.get("height") == "900"
    html = root.find(f"{SVG}foreignObject/{XHTML}html")
    assert html is not None
    tags = {el.tag.removeprefix(XHTML) for el in html.iter()}
    assert not tags & {"script", "iframe", "meta", "base", "link"} and "<script" not in body
    assert "alert" not in body and "onload" not in body and "javascript:" not in body
    assert "tracker.example" not in body and "/api/v1/info" not in body  # nothing an image can load
    assert body.count("data:image/png;base64,") == 2  # the <img> and the CSS url(cid:...)
    assert "hello &amp; bye" in body and "outlook" in body


@pytest.mark.parametrize("query", ["width=0", "width=99999", "height=x", "width=-5"])
def test_svg_refuses_a_bad_size(server: RunningServer, query: str) -> None:
    smtp_send(server, _hostile(), ["alice@example.com"])
    mid = Api(server).get("/api/v1/messages").json()["messages"][0]["ID"]
    status, _, body = _get(server, f"/view/{mid}.svg?{query}")
    assert status == 400 and "whole number of pixels" in body


def test_svg_of_a_text_only_message_is_404(server: RunningServer) -> None:
    smtp_send(server, b"From: s@example.com\r\nSubject: plain\r\n\r\nx\r\n", ["alice@example.com"])
    mid = Api(server).get("/api/v1/messages").json()["messages"][0]["ID"]
    assert _get(server, f"/view/{mid}.svg")[0] == 404
    assert _get(server, "/view/nosuchmessage.svg")[0] == 404
