"""Mailpit-compatible API v1 over real HTTP against a running postroom."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import pytest

from tests.helpers import RunningServer, running_server
from tests.integration._api_client import Api, q, smtp_send

PNG_1x1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture
def api(server: RunningServer) -> Api:
    return Api(server)


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[Api, dict[str, str]]]:
    """A server with a few messages for read-only tests."""
    with running_server() as s:
        api = Api(s)
        ids = {
            "plain": api.send(
                From={"Email": "alice@example.com", "Name": "Alice"},
                To=[{"Email": "bob@example.com", "Name": "Bob"}],
                Cc=[{"Email": "carol@example.com"}],
                Subject="Quarterly invoice",
                Text="Please find the invoice attached.",
                Tags=["billing"],
                Attachments=[
                    {"Filename": "invoice.pdf", "Content": base64.b64encode(b"%PDF-1.4 fake").decode()}
                ],
                Headers={"X-Mailer": "postroom-tests 1.0", "List-Unsubscribe": "<https://example.com/u>"},
            ),
            "html": api.send(
                From={"Email": "news@example.org"},
                To=[{"Email": "dave@example.net"}],
                Subject="Newsletter",
                Text="plain version",
                HTML='<p>Hello <b>world</b><img src="cid:logo"></p><script>alert(1)</script>',
                Attachments=[
                    {
                        "Filename": "logo.png",
                        "Content": base64.b64encode(PNG_1x1).decode(),
                        "ContentID": "logo",
                    }
                ],
            ),
        }
        api.wait_indexed()
        yield api, ids


# -- listing and search -------------------------------------------------------------------


def test_list_messages_shape_and_order(shared: tuple[Api, dict[str, str]]) -> None:
    api, ids = shared
    r = api.get("/api/v1/messages")
    assert r.status == 200
    data = r.json()
    assert data["total"] == 2 and data["messages_count"] == 2 and data["start"] == 0
    assert [m["ID"] for m in data["messages"]] == [ids["html"], ids["plain"]]  # newest first
    m = data["messages"][1]
    assert m["From"] == {"Name": "Alice", "Address": "alice@example.com"}
    assert m["To"] == [{"Name": "Bob", "Address": "bob@example.com"}]
    assert m["Subject"] == "Quarterly invoice"
    assert m["Tags"] == ["billing"]
    assert m["Attachments"] == 1
    assert m["Snippet"] == "Please find the invoice attached."
    assert m["Created"].endswith("Z") and "T" in m["Created"]
    assert "Mailboxes" not in m and "ThreadID" not in m  # Mailpit's exact shape
    assert "billing" in data["tags"]
    # /api/v2/messages: the same listing with postroom's fields
    v2 = api.get("/api/v2/messages").json()["messages"][1]
    assert sorted(v2["Mailboxes"]) == ["bob@example.com", "carol@example.com"] and v2["ThreadID"]
    assert {k: v for k, v in v2.items() if k not in ("Mailboxes", "ThreadID")} == m


def test_paging_and_huge_limits(shared: tuple[Api, dict[str, str]]) -> None:
    api, ids = shared
    data = api.get("/api/v1/messages?start=1&limit=1").json()
    assert [m["ID"] for m in data["messages"]] == [ids["plain"]]
    assert data["start"] == 1 and data["messages_count"] == 2
    huge = api.get("/api/v1/messages?limit=99999999999999999999999")
    assert huge.status == 200 and len(huge.json()["messages"]) == 2
    assert api.get("/api/v1/messages?start=100000").json()["messages"] == []
    bad = api.get("/api/v1/messages?limit=ten")
    assert bad.status == 400 and "limit" in bad.text
    assert api.get("/api/v1/messages?start=-1").status == 400


@pytest.mark.parametrize(
    ("query", "expect"),
    [
        ("invoice", {"plain"}),
        ("invoi", {"plain"}),  # prefix
        ('"find the invoice"', {"plain"}),
        ("from:alice", {"plain"}),
        ("to:dave@example.net", {"html"}),
        ("cc:carol", {"plain"}),
        ("subject:newsletter", {"html"}),
        ("tag:billing", {"plain"}),
        ("is:tagged", {"plain"}),
        ("has:attachment", {"plain"}),
        ("-has:attachment", {"html"}),
        ("invoice.pdf", {"plain"}),  # attachment names are indexed
        ("world", {"html"}),  # HTML text is indexed
        ("alert", set()),  # ... but not scripts
        ("newsletter OR invoice", {"plain", "html"}),
        ("mailbox:dave@example.net", {"html"}),
        ("header:X-Mailer=postroom-tests", {"plain"}),
        ("header:x-mailer", {"plain"}),
        ("larger:1 smaller:1M", {"plain", "html"}),
        ("larger:1M", set()),
        ("after:2000-01-01 before:2999-01-01", {"plain", "html"}),
        ("is:unread", {"plain", "html"}),
        ('NEAR(a b) "*" ^x', set()),  # FTS syntax is text, never an error
    ],
)
def test_search(shared: tuple[Api, dict[str, str]], query: str, expect: set[str]) -> None:
    api, ids = shared
    r = api.get("/api/v1/search?query=" + q(query))
    assert r.status == 200, r.text
    data = r.json()
    names = {k for k, v in ids.items() if v in {m["ID"] for m in data["messages"]}}
    assert names == expect
    assert data["messages_count"] == len(expect)
    assert data["total"] == 2


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("(invoice", "missing ')'"),
        ("is:maybe", "is:maybe"),
        ("after:someday", "date"),
        ("larger:big", "size"),
        ('"open quote', "unterminated quote"),
        ("a OR", "OR"),
        ("from:", "needs a value"),
    ],
)
def test_invalid_search_is_400_naming_the_problem(
    shared: tuple[Api, dict[str, str]], query: str, problem: str
) -> None:
    api, _ = shared
    r = api.get("/api/v1/search?query=" + q(query))
    assert r.status == 400
    assert problem in r.text
    assert r.headers.get_content_type() == "text/plain"


def test_search_needs_query(shared: tuple[Api, dict[str, str]]) -> None:
    api, _ = shared
    r = api.get("/api/v1/search")
    assert r.status == 400 and "query" in r.text


def test_search_with_tz(shared: tuple[Api, dict[str, str]]) -> None:
    api, _ = shared
    r = api.get("/api/v1/search?query=" + q("after:2000-01-01") + "&tz=Pacific/Auckland")
    assert r.json()["messages_count"] == 2
    assert api.get("/api/v1/search?query=x&tz=Mars/Base").status == 400


# -- one message --------------------------------------------------------------------------


def test_message_detail(shared: tuple[Api, dict[str, str]]) -> None:
    api, ids = shared
    r = api.get(f"/api/v1/message/{ids['plain']}")
    assert r.status == 200
    m = r.json()
    assert m["ID"] == ids["plain"]
    assert m["Subject"] == "Quarterly invoice"
    assert m["Text"].strip() == "Please find the invoice attached."
    assert m["HTML"] == ""
    assert m["Cc"] == [{"Name": "", "Address": "carol@example.com"}]
    assert m["ListUnsubscribe"]["Links"] == ["https://example.com/u"]
    [att] = m["Attachments"]
    assert att["FileName"] == "invoice.pdf" and att["ContentType"] == "application/pdf"
    assert att["Size"] == len(b"%PDF-1.4 fake")
    assert len(att["Checksums"]["SHA256"]) == 64
    # reading marks it read (Mailpit)
    listed = api.get("/api/v1/search?query=" + q("is:read")).json()
    assert ids["plain"] in {x["ID"] for x in listed["messages"]}


def test_latest_and_latest_with_query(shared: tuple[Api, dict[str, str]]) -> None:
    api, ids = shared
    assert api.get("/api/v1/message/latest").json()["ID"] == ids["html"]
    assert api.get("/api/v1/message/latest?query=" + q("from:alice")).json()["ID"] == ids["plain"]
    assert api.get("/api/v1/message/latest?query=" + q("from:nobody")).status == 404
    assert api.get("/api/v1/message/latest/raw?query=invoice").text.count("Quarterly invoice") == 1


def test_unknown_id_is_404(shared: tuple[Api, dict[str, str]]) -> None:
    api, _ = shared
    for path in (
        "",
        "/headers",
        "/raw",
        "/part/1",
        "/part/1/thumb",
        "/html-check",
        "/link-check",
        "/sa-check",
    ):
        r = api.get("/api/v1/message/doesNotExist" + path)
        assert r.status == 404, path
        assert r.headers.get_content_type() == "text/plain"
    assert api.get("/view/doesNotExist.html").status == 404
    assert api.get("/view/doesNotExist.txt").status == 404


def test_headers(shared: tuple[Api, dict[str, str]]) -> None:
    api, ids = shared
    h = api.get(f"/api/v1/message/{ids['plain']}/headers").json()
    assert h["X-Mailer"] == ["postroom-tests 1.0"]
    assert h["Subject"] == ["Quarterly invoice"]
    assert "Message-Id" in h  # Go's canonical form, as Mailpit
    assert list(h) == sorted(h)


def test_raw_and_download(shared: tuple[Api, dict[str, str]]) -> None:
    api, ids = shared
    r = api.get(f"/api/v1/message/{ids['plain']}/raw")
    assert r.status == 200 and r.headers.get_content_type() == "text/plain"
    assert b"Subject: Quarterly invoice" in r.body
    assert r.headers.get("Content-Disposition") is None
    d = api.get(f"/api/v1/message/{ids['plain']}/raw?dl=1")
    assert d.headers["Content-Disposition"] == f'attachment; filename="{ids["plain"]}.eml"'


def test_parts_and_thumbnail(shared: tuple[Api, dict[str, str]]) -> None:
    api, ids = shared
    m = api.get(f"/api/v1/message/{ids['html']}").json()
    [inline] = m["Inline"]
    assert inline["ContentID"] == "logo" and inline["FileName"] == "logo.png"
    part = api.get(f"/api/v1/message/{ids['html']}/part/{inline['PartID']}")
    assert part.status == 200 and part.body == PNG_1x1
    assert part.headers.get_content_type() == "image/png"
    thumb = api.get(f"/api/v1/message/{ids['html']}/part/{inline['PartID']}/thumb")
    assert thumb.status == 200 and thumb.headers.get_content_type() == "image/jpeg"
    from PIL import Image

    with Image.open(io.BytesIO(thumb.body)) as img:
        assert img.size == (180, 120)
    # a non-image part gets a blank thumbnail, as Mailpit
    pid = api.get(f"/api/v1/message/{ids['plain']}").json()["Attachments"][0]["PartID"]
    blank = api.get(f"/api/v1/message/{ids['plain']}/part/{pid}/thumb")
    assert blank.status == 200 and blank.body[:2] == b"\xff\xd8"
    assert api.get(f"/api/v1/message/{ids['html']}/part/9.9").status == 404


def test_view_html_is_sandboxed_and_rewrites_cid(shared: tuple[Api, dict[str, str]]) -> None:
    api, ids = shared
    r = api.get(f"/view/{ids['html']}.html")
    assert r.status == 200 and r.headers.get_content_type() == "text/html"
    csp = r.headers["Content-Security-Policy"]
    assert csp.startswith("sandbox") and "allow-scripts" not in csp and "allow-same-origin" not in csp
    assert "default-src 'none'" in csp
    assert f"/api/v1/message/{ids['html']}/part/" in r.text and "cid:logo" not in r.text
    embed = api.get(f"/view/{ids['html']}.html?embed=1")
    assert '<base target="_blank">' in embed.text
    assert api.get(f"/view/{ids['plain']}.html").status == 404  # no HTML part
    t = api.get(f"/view/{ids['plain']}.txt")
    assert t.status == 200 and "Please find the invoice attached." in t.text
    assert api.get("/view/latest.txt").text.strip() == "plain version"


def test_release_without_a_relay_says_how_to_configure_one(shared: tuple[Api, dict[str, str]]) -> None:
    api, ids = shared
    r = api.request("POST", f"/api/v1/message/{ids['html']}/release", raw=b'{"To": ["a@example.net"]}')
    assert r.status == 400
    assert "--smtp-relay-config" in r.text


def test_info_webui_health(shared: tuple[Api, dict[str, str]]) -> None:
    api, _ = shared
    info = api.get("/api/v1/info").json()
    assert info["Messages"] == 2 and info["Tags"] == {"billing": 1}
    assert info["RuntimeStats"]["SMTPAccepted"] >= 2 and info["RuntimeStats"]["Memory"] > 0
    assert info["Version"]
    web = api.get("/api/v1/webui").json()
    assert web["MessageRelay"]["Enabled"] is False and web["ChaosEnabled"] is False
    assert "Listeners" not in web  # Mailpit's exact shape; /api/v2/webui adds it
    web2 = api.get("/api/v2/webui").json()
    assert web2["Listeners"]["smtp"] == f"127.0.0.1:{api.server.smtp_port}"  # for the UI's empty screen
    assert api.get("/livez").text == "ok" and api.get("/readyz").text == "ok"
    docs = api.get("/api/docs")
    assert docs.status == 200 and "/api/v2/wait" in docs.text
    assert "/api/v1/messages" in api.get("/api/openapi.json").json()["paths"]


# -- changes ------------------------------------------------------------------------------


def test_read_state(api: Api) -> None:
    a = api.send(To=[{"Email": "x@example.com"}], Subject="a")
    b = api.send(To=[{"Email": "x@example.com"}], Subject="b")
    assert api.request("PUT", "/api/v1/messages", {"IDs": [a], "Read": True}).text == "ok"
    data = api.get("/api/v1/messages").json()
    assert data["unread"] == 1 and {m["ID"]: m["Read"] for m in data["messages"]} == {a: True, b: False}
    assert api.request("PUT", "/api/v1/messages", {"Read": True}).status == 200  # all
    assert api.get("/api/v1/messages").json()["unread"] == 0
    api.request("PUT", "/api/v1/messages", {"Read": False, "Search": "subject:b"})
    assert api.get("/api/v1/messages").json()["unread"] == 1
    bad = api.request("PUT", "/api/v1/messages", {"Read": False, "Search": "is:nothing"})
    assert bad.status == 400 and "is:nothing" in bad.text


def test_bad_json_is_400_with_a_clear_message(api: Api) -> None:
    r = api.request("PUT", "/api/v1/messages", raw=b'{"IDs": [', headers={"Content-Type": "application/json"})
    assert r.status == 400 and "invalid JSON" in r.text and "line 1" in r.text
    r = api.request("DELETE", "/api/v1/messages", raw=b"[1,2]")
    assert r.status == 400 and "expected a JSON object" in r.text
    r = api.request("PUT", "/api/v1/messages", {"IDs": "abc"})
    assert r.status == 400 and "IDs must be an array" in r.text
    r = api.request("PUT", "/api/v1/tags", {"IDs": []})
    assert r.status == 400 and "Tags is required" in r.text
    r = api.request("POST", "/api/v1/send", raw=b"not json")
    assert r.status == 400 and "invalid JSON" in r.json()["Error"]


def test_delete_messages_and_search(api: Api) -> None:
    ids = [api.send(To=[{"Email": "x@example.com"}], Subject=f"m{i}") for i in range(4)]
    assert api.request("DELETE", "/api/v1/messages", {"IDs": [ids[0]]}).text == "ok"
    assert api.get(f"/api/v1/message/{ids[0]}").status == 404
    assert api.request("DELETE", "/api/v1/search?query=" + q("subject:m1")).text == "ok"
    assert {m["Subject"] for m in api.get("/api/v1/messages").json()["messages"]} == {"m2", "m3"}
    assert api.request("DELETE", "/api/v1/search").status == 400
    assert api.request("DELETE", "/api/v1/messages").text == "ok"  # no body: everything
    assert api.get("/api/v1/messages").json()["total"] == 0


def test_tags(api: Api) -> None:
    a = api.send(To=[{"Email": "x@example.com"}], Tags=["one"])
    b = api.send(To=[{"Email": "x@example.com"}])
    assert api.request("PUT", "/api/v1/tags", {"IDs": [a, b], "Tags": ["red", "blue"]}).text == "ok"
    assert api.get("/api/v1/tags").json() == ["blue", "red"]
    assert api.request("PUT", "/api/v1/tags/red", {"Name": "crimson"}).text == "ok"
    assert api.get("/api/v1/tags").json() == ["blue", "crimson"]
    assert api.request("PUT", "/api/v1/tags/crimson", {}).status == 400
    assert api.request("DELETE", "/api/v1/tags/blue").text == "ok"
    assert api.get("/api/v1/tags").json() == ["crimson"]
    assert api.get(f"/api/v1/message/{a}").json()["Tags"] == ["crimson"]
    api.request("PUT", "/api/v1/tags", {"IDs": [a], "Tags": []})
    assert api.get(f"/api/v1/message/{a}").json()["Tags"] == []


def test_x_tags_header_from_smtp(server: RunningServer) -> None:
    api = Api(server)
    smtp_send(
        server, b"From: a@example.com\r\nTo: b@example.com\r\nX-Tags: alpha, beta\r\nSubject: t\r\n\r\nhi\r\n"
    )
    assert api.get("/api/v1/messages").json()["messages"][0]["Tags"] == ["alpha", "beta"]


def test_send_builds_and_ingests(api: Api) -> None:
    mid = api.send(
        From={"Email": "jo@example.com", "Name": "Jö Doe"},
        To=[{"Email": "to@example.com"}],
        Bcc=["hidden@example.com"],
        ReplyTo=[{"Email": "reply@example.com"}],
        Subject="Grüße",
        HTML="<p>hi</p>",
        Tags=["api"],
    )
    m = api.get(f"/api/v1/message/{mid}").json()
    assert m["From"] == {"Name": "Jö Doe", "Address": "jo@example.com"}
    assert m["Subject"] == "Grüße" and m["HTML"].strip() == "<p>hi</p>" and m["Tags"] == ["api"]
    assert m["ReplyTo"] == [{"Name": "", "Address": "reply@example.com"}]
    assert sorted(api.get(f"/api/v2/message/{mid}").json()["Mailboxes"]) == [
        "hidden@example.com",
        "to@example.com",
    ]
    assert m["Bcc"] == [{"Name": "", "Address": "hidden@example.com"}]
    assert m["ReturnPath"] == "jo@example.com"
    head = api.get(f"/api/v1/message/{mid}/raw").text.split("\r\n\r\n")[0]
    # as Mailpit's store does: the envelope-only recipient in Bcc, the sender in Return-Path
    assert "\r\nBcc: hidden@example.com\r\n" in head and "\r\nReturn-Path: <jo@example.com>\r\n" in head
    env = api.get(f"/api/v2/message/{mid}/envelope").json()
    assert env["MailFrom"] == "jo@example.com" and sorted(env["RcptTo"]) == [
        "hidden@example.com",
        "to@example.com",
    ]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({}, "From is required"),
        ({"From": {"Email": "a@b.c"}}, "no recipients"),
        (
            {"From": {"Email": "not-an-address"}, "To": [{"Email": "x@y.z"}]},
            "From.Email is not a valid address",
        ),
        (
            {"From": {"Email": "a@b.c"}, "To": [{"Email": "x@y.z"}], "Attachments": [{"Filename": "a"}]},
            "Content",
        ),
        (
            {
                "From": {"Email": "a@b.c"},
                "To": [{"Email": "x@y.z"}],
                "Attachments": [{"Filename": "a", "Content": "%%"}],
            },
            "not valid base64",
        ),
        (
            {"From": {"Email": "a@b.c"}, "To": [{"Email": "x@y.z"}], "Headers": {"X-A": "1\r\nBcc: evil"}},
            "line break",
        ),
    ],
)
def test_send_errors_are_json(api: Api, body: dict[str, object], problem: str) -> None:
    r = api.request("POST", "/api/v1/send", body)
    assert r.status == 400
    assert problem in r.json()["Error"]


def test_send_keeps_the_size_limit_and_answers_complete() -> None:
    """POST /api/v1/send: --smtp-max-size holds (a 400, nothing stored), and what a client
    reads right after the answer is complete: snippet and attachment count (issue 22)."""
    with running_server(smtp_max_size=2000) as s:
        api = Api(s)
        big = api.request(
            "POST",
            "/api/v1/send",
            {"From": {"Email": "a@b.c"}, "To": [{"Email": "x@y.z"}], "Text": "x" * 5000},
        )
        assert big.status == 400 and "exceeds the limit of 2000 bytes" in big.json()["Error"]
        assert api.get("/api/v1/messages").json()["total"] == 0
        mid = api.send(
            To=[{"Email": "x@y.z"}],
            Text="short\nand sweet",
            Attachments=[{"Content": "aGk=", "Filename": "a.txt"}],
        )
        [m] = api.get("/api/v1/messages").json()["messages"]
        assert m["ID"] == mid and m["Snippet"] == "short and sweet" and m["Attachments"] == 1
        assert api.get(f"/api/v1/message/{mid}").json()["Text"] == "short\nand sweet"  # LF kept
        # embed=1: each link opens in a new tab without a referrer, as Mailpit's swagger says
        linked = api.send(To=[{"Email": "x@y.z"}], HTML='<a href="https://example.test">x</a>')
        embed = api.get(f"/view/{linked}.html?embed=1").text
        assert '<a target="_blank" rel="noreferrer noopener" href="https://example.test">' in embed
