"""A tiny HTTP client for the API tests (stdlib only, so the server under test is the only aiohttp)."""

from __future__ import annotations

import base64
import http.client
import json
import smtplib
import ssl
import urllib.parse
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from tests.helpers import RunningServer


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        assert self.headers.get_content_type() == "application/json", (
            self.status,
            self.headers,
            self.body[:200],
        )
        return json.loads(self.body)


class Api:
    def __init__(
        self, server: RunningServer, *, user: str | None = None, password: str | None = None
    ) -> None:
        self.server = server
        self.base = urllib.parse.urlsplit(server.http_url)
        self.auth = (user, password) if user is not None else None
        self.prefix = server.app.settings.webroot.rstrip("/")

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        prefix: bool = True,
    ) -> Reply:
        h = dict(headers or {})
        data = raw
        if method == "POST" and not any(k.lower() == "content-type" for k in h):
            h["Content-Type"] = "application/json"  # as Mailpit clients do (docs/security.md)
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if self.auth is not None:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            h["Authorization"] = f"Basic {token}"
        if self.base.scheme == "https":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.base.hostname or "", self.base.port, timeout=30, context=ctx
            )
        else:
            conn = http.client.HTTPConnection(self.base.hostname or "", self.base.port, timeout=30)
        try:
            conn.request(method, (self.prefix if prefix else "") + path, body=data, headers=h)
            resp = conn.getresponse()
            return Reply(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def send(self, **fields: Any) -> str:
        """POST /api/v1/send; returns the new ID."""
        fields.setdefault("From", {"Email": "sender@example.com"})
        r = self.request("POST", "/api/v1/send", fields)
        assert r.status == 200, r.text
        return str(r.json()["ID"])

    def wait_indexed(self) -> None:
        assert self.server.app.store.wait_indexed(30)


def smtp_send(server: RunningServer, msg: EmailMessage | bytes, rcpts: list[str] | None = None) -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as c:
        if isinstance(msg, bytes):
            c.sendmail("sender@example.com", rcpts or ["rcpt@example.com"], msg)
        else:
            c.send_message(msg, to_addrs=rcpts)


def q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def strict_schema(schema: Any) -> Any:
    """``schema`` (JSON Schema, Mailpit's API shape) with every property it lists required:
    Mailpit always sends them all, so must we."""
    if isinstance(schema, dict):
        out = {k: strict_schema(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out:
            out["required"] = sorted(out["properties"])
        return out
    if isinstance(schema, list):
        return [strict_schema(v) for v in schema]
    return schema
