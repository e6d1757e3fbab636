"""A tiny in-memory stand-in for postroom's HTTP API, for developing the UI only.

The browser tests run against the real server; set ``POSTROOM_UI_MOCK=1`` to run them
against this mock instead (useful while the API is changing). Run it by hand with
``python -m tests.browser.mockapi [PORT]`` and open the printed URL.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import email.utils
import hashlib
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

UI_DIR = Path(__file__).resolve().parents[2] / "src" / "postroom" / "web" / "ui"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def _addr(value: str) -> dict[str, str]:
    name, address = email.utils.parseaddr(value)
    return {"Name": name, "Address": address}


def _addrs(values: list[str]) -> list[dict[str, str]]:
    return [{"Name": n, "Address": a} for n, a in email.utils.getaddresses(values) if a]


def _base_subject(subject: str) -> str:
    s = subject.strip().lower()
    while s[:3] in ("re:", "fw:") or s[:4] == "fwd:":
        s = s.split(":", 1)[1].strip()
    return s


@dataclass
class Stored:
    id: str
    raw: bytes
    mail_from: str
    rcpts: list[str]
    created: str
    read: bool = False
    tags: list[str] = field(default_factory=list)

    @property
    def parsed(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)  # type: ignore[return-value]

    def parts(self) -> list[tuple[str, Any]]:
        out = []
        for i, part in enumerate(self.parsed.walk()):
            if part.is_multipart():
                continue
            out.append((str(i), part))
        return out

    def attachments(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        atts: list[dict[str, Any]] = []
        inline: list[dict[str, Any]] = []
        for pid, part in self.parts():
            disp = part.get_content_disposition()
            cid = (part.get("Content-ID") or "").strip("<>")
            if disp == "attachment" or (cid and part.get_content_maintype() != "text"):
                info = {
                    "PartID": pid,
                    "FileName": part.get_filename() or "",
                    "ContentType": part.get_content_type(),
                    "ContentID": cid,
                    "Size": len(part.get_payload(decode=True) or b""),
                }
                (atts if disp == "attachment" else inline).append(info)
        return atts, inline

    def body(self, subtype: str) -> str:
        part = self.parsed.get_body(preferencelist=(subtype,))
        return part.get_content() if part is not None else ""  # type: ignore[no-any-return]

    def summary(self) -> dict[str, Any]:
        m = self.parsed
        text = self.body("plain")
        atts, _ = self.attachments()
        return {
            "ID": self.id,
            "MessageID": (m.get("Message-ID") or "").strip("<>"),
            "Read": self.read,
            "From": _addr(m.get("From", "")),
            "To": _addrs(m.get_all("To", [])),
            "Cc": _addrs(m.get_all("Cc", [])),
            "Bcc": [],
            "ReplyTo": _addrs(m.get_all("Reply-To", [])),
            "Subject": m.get("Subject", ""),
            "Created": self.created,
            "Username": "",
            "Tags": self.tags,
            "Size": len(self.raw),
            "Attachments": len(atts),
            "Snippet": " ".join(text.split())[:200],
            "ThreadID": "t-" + hashlib.sha1(_base_subject(m.get("Subject", "")).encode()).hexdigest()[:12],
            "Mailboxes": sorted({r.lower() for r in self.rcpts}),
        }


class Mock:
    def __init__(self) -> None:
        self.messages: list[Stored] = []  # newest first
        self.sockets: set[web.WebSocketResponse] = set()
        self.counter = 0

    async def broadcast(self, type_: str, data: Any) -> None:
        frame = json.dumps({"Type": type_, "Data": data})
        for ws in list(self.sockets):
            try:
                await ws.send_str(frame)
            except ConnectionError:
                self.sockets.discard(ws)

    async def add(self, raw: bytes, mail_from: str, rcpts: list[str]) -> Stored:
        self.counter += 1
        mid = hashlib.sha1(raw + str(self.counter).encode()).hexdigest()[:20]
        created = datetime.now(UTC).isoformat()
        msg = Stored(mid, raw, mail_from, rcpts, created)
        self.messages.insert(0, msg)
        await self.broadcast("new", msg.summary())
        return msg

    def find(self, mid: str) -> Stored:
        for m in self.messages:
            if m.id == mid:
                return m
        raise web.HTTPNotFound(text="message not found")

    def listing(self, request: web.Request, items: list[Stored]) -> web.Response:
        """Mailpit's shape: total/unread count the store (or mailbox), messages_* the matches."""
        start = int(request.query.get("start", 0))
        limit = int(request.query.get("limit", 50))
        mailbox = request.query.get("mailbox", "")
        scope = self.messages
        if mailbox:
            items = [m for m in items if mailbox in {r.lower() for r in m.rcpts}]
            scope = [m for m in scope if mailbox in {r.lower() for r in m.rcpts}]
        page = items[start : start + limit]
        return web.json_response(
            {
                "total": len(scope),
                "unread": sum(not m.read for m in scope),
                "count": len(page),
                "messages_count": len(items),
                "messages_unread": sum(not m.read for m in items),
                "start": start,
                "tags": sorted({t for m in self.messages for t in m.tags}),
                "messages": [m.summary() for m in page],
            }
        )


def build_app() -> web.Application:
    mock = Mock()
    app = web.Application()
    r = app.router

    async def index(_: web.Request) -> web.FileResponse:
        return web.FileResponse(UI_DIR / "index.html")

    async def messages(request: web.Request) -> web.Response:
        return mock.listing(request, mock.messages)

    async def search(request: web.Request) -> web.Response:
        words = request.query.get("query", "").lower().split()
        items = []
        for m in mock.messages:
            s = m.summary()
            hay = json.dumps(s).lower() + m.body("plain").lower()
            ok = True
            for w in words:
                if w == "is:unread":
                    ok &= not m.read
                elif w.startswith("from:"):
                    ok &= w[5:] in json.dumps(s["From"]).lower()
                elif w.startswith("subject:"):
                    ok &= w[8:].strip('"') in s["Subject"].lower()
                else:
                    ok &= w in hay
            if ok:
                items.append(m)
        return mock.listing(request, items)

    async def message(request: web.Request) -> web.Response:
        m = mock.find(request.match_info["id"])
        p = m.parsed
        atts, inline = m.attachments()
        s = m.summary()
        s.update(
            {
                "Date": s["Created"],
                "ReturnPath": m.mail_from,
                "ListUnsubscribe": {},
                "Text": m.body("plain"),
                "HTML": m.body("html"),
                "Inline": inline,
                "Attachments": atts,
            }
        )
        _ = p
        return web.json_response(s)

    async def headers(request: web.Request) -> web.Response:
        m = mock.find(request.match_info["id"])
        out: dict[str, list[str]] = {}
        for k, v in m.parsed.items():
            out.setdefault(k, []).append(str(v))
        return web.json_response(dict(sorted(out.items())))

    async def raw(request: web.Request) -> web.Response:
        return web.Response(body=mock.find(request.match_info["id"]).raw, content_type="text/plain")

    async def part(request: web.Request) -> web.Response:
        m = mock.find(request.match_info["id"])
        for pid, p in m.parts():
            if pid == request.match_info["part"]:
                headers = {"Content-Disposition": f'attachment; filename="{p.get_filename() or "part"}"'}
                return web.Response(
                    body=p.get_payload(decode=True) or b"", content_type=p.get_content_type(), headers=headers
                )
        raise web.HTTPNotFound()

    async def view_html(request: web.Request) -> web.Response:
        m = mock.find(request.match_info["id"])
        remote = "https: http:" if request.query.get("remote") == "1" else ""
        csp = (
            "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; "
            f"img-src 'self' data: {remote}; style-src 'unsafe-inline'"
        )
        body = m.body("html")
        if request.query.get("embed") == "1":
            body = '<base target="_blank">' + body
        return web.Response(text=body, content_type="text/html", headers={"Content-Security-Policy": csp})

    async def threads(request: web.Request) -> web.Response:
        ids = sorted({m.summary()["ThreadID"] for m in mock.messages})
        return web.json_response({"threads": [{"ThreadID": t} for t in ids]})

    async def thread(request: web.Request) -> web.Response:
        tid = request.match_info["tid"]
        items = [m.summary() for m in reversed(mock.messages) if m.summary()["ThreadID"] == tid]
        if not items:
            raise web.HTTPNotFound()
        return web.json_response({"ThreadID": tid, "Messages": items})

    async def envelope(request: web.Request) -> web.Response:
        m = mock.find(request.match_info["id"])
        return web.json_response(
            {
                "MailFrom": m.mail_from,
                "RcptTo": m.rcpts,
                "Peer": "127.0.0.1:50000",
                "Helo": "mock",
                "TLS": False,
                "AuthUser": "",
                "SMTPUTF8": False,
                "Received": m.created,
            }
        )

    async def mailboxes(_: web.Request) -> web.Response:
        boxes: dict[str, list[int]] = {}
        for m in mock.messages:
            for r in {x.lower() for x in m.rcpts}:
                b = boxes.setdefault(r, [0, 0])
                b[0] += 1
                b[1] += not m.read
        return web.json_response(
            {"mailboxes": [{"Name": k, "Total": v[0], "Unread": v[1]} for k, v in sorted(boxes.items())]}
        )

    async def put_messages(request: web.Request) -> web.Response:
        body = await request.json()
        ids = body.get("IDs") or [m.id for m in mock.messages]
        for mid in ids:
            mock.find(mid).read = bool(body.get("Read"))
        await mock.broadcast("update", {"IDs": ids, "Read": bool(body.get("Read"))})
        return web.Response(text="ok")

    async def delete_messages(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        ids = body.get("IDs") if body else None
        if not ids:
            mock.messages.clear()
            await mock.broadcast("truncate", None)
        else:
            mock.messages = [m for m in mock.messages if m.id not in set(ids)]
            await mock.broadcast("delete", {"IDs": ids})
        return web.Response(text="ok")

    async def put_tags(request: web.Request) -> web.Response:
        body = await request.json()
        for mid in body["IDs"]:
            mock.find(mid).tags = list(body["Tags"])
            await mock.broadcast("update", {"ID": mid, "Tags": list(body["Tags"])})
        return web.Response(text="ok")

    async def delete_mailbox(request: web.Request) -> web.Response:
        # as the real store: the mailbox goes; mail shared with other mailboxes stays there
        name = request.match_info["name"].lower()
        for m in mock.messages:
            m.rcpts = [r for r in m.rcpts if r.lower() != name]
        gone = [m.id for m in mock.messages if not m.rcpts]
        mock.messages = [m for m in mock.messages if m.rcpts]
        await mock.broadcast("delete", {"IDs": gone})
        return web.Response(text="ok")

    async def inject(request: web.Request) -> web.Response:
        raw = await request.read()
        m = email.message_from_bytes(raw, policy=email.policy.default)
        rcpts = [a for _, a in email.utils.getaddresses(m.get_all("To", []) + m.get_all("Cc", []))]
        stored = await mock.add(raw, email.utils.parseaddr(m.get("From", ""))[1], rcpts)
        return web.json_response({"ID": stored.id})

    async def events(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        mock.sockets.add(ws)
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                break
        mock.sockets.discard(ws)
        return ws

    @web.middleware
    async def csp(request: web.Request, handler: Any) -> web.StreamResponse:
        resp: web.StreamResponse = await handler(request)
        resp.headers.setdefault("Content-Security-Policy", CSP)
        return resp

    app.middlewares.append(csp)
    r.add_get("/", index)
    r.add_get("/api/v2/messages", messages)
    r.add_put("/api/v1/messages", put_messages)
    r.add_delete("/api/v1/messages", delete_messages)
    r.add_get("/api/v2/search", search)
    r.add_get("/api/v2/message/{id}", message)
    r.add_get("/api/v1/message/{id}/headers", headers)
    r.add_get("/api/v1/message/{id}/raw", raw)
    r.add_get("/api/v1/message/{id}/part/{part}", part)
    r.add_get("/api/v1/message/{id}/part/{part}/thumb", part)
    r.add_get("/api/v2/message/{id}/envelope", envelope)
    r.add_get("/view/{id}.html", view_html)
    r.add_get("/api/v2/threads", threads)
    r.add_get("/api/v2/thread/{tid}", thread)
    r.add_get("/api/v2/mailboxes", mailboxes)
    r.add_delete("/api/v2/mailbox/{name}", delete_mailbox)
    r.add_put("/api/v1/tags", put_tags)
    r.add_post("/mock/inject", inject)
    r.add_get("/api/v2/events", events)
    r.add_static("/", UI_DIR)
    return app


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8026
    print(f"mock postroom API on http://127.0.0.1:{port}/")
    asyncio.run(web._run_app(build_app(), host="127.0.0.1", port=port))  # type: ignore[attr-defined]
