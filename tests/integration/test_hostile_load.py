"""Stalls, memory and shutdown under hostile mail (issue 14 items 1 and 6).

The bounds asked for by the issue are generous on purpose (a shared 2-core CI machine):
another request answered within 2 s while six large messages are read, memory measured
in a child interpreter (its peak RSS before and after the one call), SIGTERM obeyed within
a few seconds by a real ``postroom serve`` while it parses.
"""

from __future__ import annotations

import base64
import io
import os
import signal
import smtplib
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from postroom.message import parse_message
from postroom.parsepool import ParsePool
from tests.helpers import RunningServer, running_server, serve_process
from tests.integration._api_client import Api, q, smtp_send

ENCODED_WORDS = " ".join(f"=?utf-8?q?caf=C3=A9_w{i}?=" for i in range(50_000))  # 1.4 MB
FOLDED = "\r\n ".join(f"w{i}" for i in range(100_000))


def big_header_message(kind: str, header: str) -> bytes:
    return (
        f"From: a@example.org\r\nTo: load@example.org\r\nSubject: {kind}\r\nX-Big: {header}\r\n"
        f"Content-Type: text/plain\r\n\r\nbody of {kind}\r\n"
    ).encode()


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with running_server() as s:
        yield s


@pytest.fixture(scope="module")
def api(server: RunningServer) -> Api:
    return Api(server)


def ids_of(api: Api, query: str) -> list[str]:
    return [m["ID"] for m in api.get("/api/v1/search?query=" + q(query)).json()["messages"]]


@pytest.mark.parametrize("kind", ["encodedwords", "foldedlines"])
def test_six_reads_of_a_huge_header_do_not_stall_others(server: RunningServer, api: Api, kind: str) -> None:
    smtp_send(server, big_header_message(kind, ENCODED_WORDS if kind == "encodedwords" else FOLDED))
    api.wait_indexed()
    (mid,) = ids_of(api, f"subject:{kind}")
    statuses: list[int] = []

    def read() -> None:
        statuses.append(api.get(f"/api/v1/message/{mid}").status)

    readers = [threading.Thread(target=read) for _ in range(6)]
    for t in readers:
        t.start()
    time.sleep(0.3)  # the six are being parsed
    t0 = time.monotonic()
    other = api.get("/api/v1/messages?limit=5")
    waited = time.monotonic() - t0
    for t in readers:
        t.join(60)
    assert other.status == 200
    assert waited < 2.0, f"another request waited {waited:.2f} s"
    assert statuses == [200] * 6


def child_peak(code: str, data: bytes) -> tuple[float, str]:
    """Run ``code`` (``data`` on stdin as ``raw``) in a fresh interpreter; returns the MB its
    peak RSS grew by during ``code`` and what it printed."""
    prog = (
        textwrap.dedent(
            """
        import resource, sys
        raw = sys.stdin.buffer.read()
        from postroom.message import parse_message
        from postroom.web.api_v1 import make_thumbnail
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        """
        )
        + textwrap.dedent(code)
        + "\nprint((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, out)\n"
    )
    done = subprocess.run([sys.executable, "-c", prog], input=data, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    grew, _, out = done.stdout.decode().strip().partition(" ")
    return float(grew), out


def test_nineteen_megabytes_of_one_line_html_stay_small() -> None:
    html = "<html><body>" + "".join(
        f"<p>w{i} <b>b</b> <a href='https://x.example/{i}'>l</a></p>" for i in range(320_000)
    )
    raw = ("Subject: big\r\nContent-Type: text/html\r\n\r\n" + html + "</body></html>").encode()
    assert len(raw) > 19_000_000
    grew, out = child_peak(
        """
        import json
        pm = parse_message(raw)
        body = json.dumps({"HTML": pm.html, "Text": pm.text})
        out = len(pm.text)
        """,
        raw,
    )
    assert grew < 300, f"peak RSS grew by {grew:.0f} MB"  # 1.2 GB before
    assert int(out) > 100_000


def huge_png() -> bytes:
    from PIL import Image

    b = io.BytesIO()
    Image.new("RGB", (6300, 6300), (10, 200, 30)).save(b, "PNG")
    return b.getvalue()


def test_thumbnail_of_a_huge_png_is_cheap() -> None:
    grew, out = child_peak("out = len(make_thumbnail(raw, 'image/png'))", huge_png())
    assert grew < 100, f"peak RSS grew by {grew:.0f} MB"  # ~450 MB before
    assert int(out) > 0


def test_thumbnail_of_a_large_jpeg_is_decoded_small() -> None:
    from PIL import Image

    b = io.BytesIO()
    Image.new("RGB", (6000, 4000), (200, 10, 30)).save(b, "JPEG")
    grew, out = child_peak(
        """
        from PIL import Image
        import io
        jpeg = make_thumbnail(raw, 'image/jpeg')
        out = Image.open(io.BytesIO(jpeg)).getpixel((90, 60))
        out = str(out[0] > 150 and out[1] < 60).lower()
        """,
        b.getvalue(),
    )
    assert out == "true"  # the picture, not a blank thumbnail
    assert grew < 100, f"peak RSS grew by {grew:.0f} MB"


def test_thumbnail_over_http(server: RunningServer, api: Api) -> None:
    png = base64.b64encode(huge_png()).decode()
    raw = (
        "From: a@example.org\r\nTo: thumb@example.org\r\nSubject: thumb\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n'
        '--B\r\nContent-Type: image/png; name="big.png"\r\nContent-Transfer-Encoding: base64\r\n'
        'Content-Disposition: attachment; filename="big.png"\r\n\r\n' + png + "\r\n--B--\r\n"
    ).encode()
    smtp_send(server, raw)
    api.wait_indexed()
    (mid,) = ids_of(api, "subject:thumb")
    r = api.get(f"/api/v1/message/{mid}/part/2/thumb")
    assert r.status == 200 and r.headers.get_content_type() == "image/jpeg"


def test_a_parse_over_its_time_budget_is_shown_raw_and_flagged() -> None:
    raw = big_header_message("budget", ENCODED_WORDS)
    pool = ParsePool(seconds=0.001, inline_bytes=0)
    try:
        pm = pool.parse_blocking(raw)
        assert pm.unparsed.startswith("time budget exceeded")
        assert pm.subject == "budget" and "body of budget" in pm.text
        generous = ParsePool(seconds=60, inline_bytes=0)
        try:
            full = generous.parse_blocking(raw)
            assert full.unparsed == "" and full.text == parse_message(raw).text
            assert generous.parse_blocking(raw).subject == "budget"  # the child is reused
        finally:
            generous.close()
    finally:
        pool.close()


def test_parse_error_is_in_the_message_json(api: Api, server: RunningServer) -> None:
    smtp_send(server, big_header_message("flag", "x"))
    api.wait_indexed()
    (mid,) = ids_of(api, "subject:flag")
    assert api.get(f"/api/v2/message/{mid}").json()["ParseError"] == ""


HOSTILE_HTML = "<a x='\">' " + "a=b " * 20


@pytest.mark.slow
def test_sigterm_stops_a_busy_postroom_within_seconds(tmp_path: Path) -> None:
    with serve_process(tmp_path / "db.sqlite") as (proc, smtp_port, http_port):
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as c:
            c.sendmail("a@example.org", ["b@example.org"], (
                f"Subject: hostile\r\nContent-Type: text/html\r\n\r\n{HOSTILE_HTML}\r\n"
            ).encode())  # fmt: skip
            # and a backlog of large HTML messages for the indexer to chew on
            page = "<html><body>" + "<p>word <b>x</b></p>" * 50_000 + "</body></html>"
            for i in range(30):
                c.sendmail("a@example.org", ["b@example.org"], (
                    f"Subject: heavy {i}\r\nContent-Type: text/html\r\n\r\n{page}\r\n"
                ).encode())  # fmt: skip
        # a reader opening the hostile message while it is being indexed
        reader = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(f"""
                import json, urllib.request
                base = "http://127.0.0.1:{http_port}/api/v1/"
                found = json.load(urllib.request.urlopen(base + "search?query=subject:hostile", timeout=30))
                for m in found["messages"]:
                    urllib.request.urlopen(base + "message/" + m["ID"], timeout=30).read()
            """)],
        )  # fmt: skip
        time.sleep(0.5)
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(8)
        except subprocess.TimeoutExpired:
            pytest.fail("postroom still running 8 s after SIGTERM")
        took = time.monotonic() - t0
        reader.wait(30)
    assert proc.returncode == 0
    assert took < 8


def test_indexer_parse_over_budget_indexes_the_raw_text(tmp_path: Path) -> None:
    """In the indexer process a parse that overruns its budget is interrupted and the
    message indexed from its raw text. A budget of a microsecond makes every parse overrun."""
    import json
    import urllib.request

    from tests.helpers import free_port, wait_for_port

    smtp_port, http_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "postroom", "serve", "--smtp", f"127.0.0.1:{smtp_port}",
         "--http", f"127.0.0.1:{http_port}", "--pop3", "off", "--imap", "off",
         "--db", str(tmp_path / "db.sqlite"), "--quiet"],
        env={**os.environ, "POSTROOM_INDEX_PARSE_SECONDS": "0.000001"},
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(http_port, proc=proc)
        wait_for_port(smtp_port, proc=proc)
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as c:
            c.sendmail("a@example.org", ["b@example.org"], (
                b"Subject: budgeted\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                + base64.b64encode(b"secretword") + b"\r\n"
            ))  # fmt: skip

        def search(query: str) -> list[dict[str, str]]:
            url = f"http://127.0.0.1:{http_port}/api/v1/search?query={q(query)}"
            with urllib.request.urlopen(url, timeout=30) as r:
                found: list[dict[str, str]] = json.load(r)["messages"]
                return found

        deadline = time.monotonic() + 30
        while not (found := search("c2VjcmV0d29yZA")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [m["Subject"] for m in found] == ["budgeted"]  # the raw (undecoded) body
        assert search("secretword") == []  # the decoded text was never made
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
