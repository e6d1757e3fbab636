"""WebSocket /api/events: Mailpit's {Type, Data} envelopes, mailbox filter, slow clients."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import logging
import os
import socket
from typing import Any

import aiohttp
import pytest

from postroom.events import ReadChanged
from postroom.web import events as ws_events
from tests.helpers import RunningServer, running_server
from tests.integration._api_client import Api


async def _collect(ws: aiohttp.ClientWebSocketResponse, want: int, types: set[str]) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < want:
        msg = await asyncio.wait_for(ws.receive(), 20)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data = json.loads(msg.data)
        if data["Type"] in types:
            got.append(data)
    return got


async def _read_update(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next read/tags update, skipping the full summaries sent once a message is indexed."""
    while True:
        [upd] = await _collect(ws, 1, {"update"})
        if "Subject" not in upd["Data"]:
            return upd


def _qualname(task: asyncio.Task[Any]) -> str:
    return str(getattr(task.get_coro(), "__qualname__", ""))


def _in_thread(coro_fn: Any) -> Any:
    return asyncio.run(coro_fn())


def test_event_stream(server: RunningServer) -> None:
    api = Api(server)
    url = server.http_url.replace("http", "ws", 1) + "/api/events"

    async def run() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url) as ws,
            session.ws_connect(url + "?mailbox=b@example.com") as only_b,
        ):
            loop = asyncio.get_running_loop()
            a_id = await loop.run_in_executor(
                None, lambda: api.send(To=[{"Email": "a@example.com"}], Subject="A")
            )
            b_id = await loop.run_in_executor(
                None, lambda: api.send(To=[{"Email": "b@example.com"}], Subject="B")
            )
            news = await _collect(ws, 2, {"new"})
            assert [n["Data"]["ID"] for n in news] == [a_id, b_id]
            assert news[0]["Data"]["Subject"] == "A" and "Mailboxes" not in news[0]["Data"]
            only = await _collect(only_b, 1, {"new"})
            assert only[0]["Data"]["ID"] == b_id  # A was filtered out
            await loop.run_in_executor(
                None, lambda: api.request("PUT", "/api/v1/messages", {"IDs": [a_id], "Read": True})
            )
            upd = await _read_update(ws)
            assert upd["Data"] == {"ID": a_id, "Read": True}
            [stats] = await _collect(ws, 1, {"stats"})
            assert set(stats["Data"]) == {"Total", "Unread", "Version"} and stats["Data"]["Total"] == 2
            await loop.run_in_executor(
                None, lambda: api.request("DELETE", "/api/v1/messages", {"IDs": [b_id]})
            )
            [dele] = await _collect(ws, 1, {"delete"})
            assert dele["Data"] == {"ID": b_id}
            await loop.run_in_executor(None, lambda: api.request("DELETE", "/api/v1/messages"))
            [trunc] = await _collect(ws, 1, {"truncate"})
            assert trunc["Data"] is None

    _in_thread(run)


def test_slow_client_is_dropped_and_ingest_goes_on(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = Api(server)
    url = server.http_url.replace("http", "ws", 1) + "/api/events"
    ids = [api.send(To=[{"Email": "x@example.com"}], Subject=f"m{i}") for i in range(10)]
    monkeypatch.setattr(ws_events, "QUEUE_SIZE", 3)  # the next client gets a tiny queue

    async def run() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as slow:
            loop = asyncio.get_running_loop()
            # one DELETE event fans out to 10 "delete" envelopes at once: more than the queue holds
            r = await loop.run_in_executor(
                None, lambda: api.request("DELETE", "/api/v1/messages", {"IDs": ids})
            )
            assert r.status == 200
            closed = None
            while closed is None:
                msg = await asyncio.wait_for(slow.receive(), 20)
                assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.CLOSE), msg
                if msg.type == aiohttp.WSMsgType.CLOSE:
                    closed = msg.data  # the code the server sent
            assert closed == aiohttp.WSCloseCode.TRY_AGAIN_LATER

    _in_thread(run)
    # the store did its work regardless, and new mail still flows
    assert api.get("/api/v1/messages").json()["total"] == 0
    api.send(To=[{"Email": "x@example.com"}], Subject="after")
    assert api.get("/api/v1/messages").json()["total"] == 1


def test_new_event_is_complete_and_stats_follow(server: RunningServer) -> None:
    """As Mailpit's: ``new`` carries snippet and attachment count (it waits for the indexer),
    nothing else about the message follows but ``stats``; /api/v2/events adds ThreadID and
    Mailboxes."""
    api = Api(server)
    base = server.http_url.replace("http", "ws", 1)

    async def run() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(base + "/api/events") as ws,
            session.ws_connect(base + "/api/v2/events") as ws2,
        ):
            loop = asyncio.get_running_loop()
            mid = await loop.run_in_executor(
                None,
                lambda: api.send(
                    To=[{"Email": "a@example.com"}],
                    Subject="Indexed",
                    Text="hello snippet world",
                    Attachments=[{"Content": "aGk=", "Filename": "hi.txt"}],
                ),
            )
            frames = [json.loads((await asyncio.wait_for(ws.receive(), 20)).data) for _ in range(2)]
            assert [f["Type"] for f in frames] == ["new", "stats"]
            new = frames[0]["Data"]
            assert new["ID"] == mid and new["Snippet"] == "hello snippet world" and new["Attachments"] == 1
            assert "ThreadID" not in new and "Mailboxes" not in new
            [new2] = await _collect(ws2, 1, {"new"})
            assert new2["Data"]["ThreadID"] and new2["Data"]["Mailboxes"] == ["a@example.com"]
            assert {k: v for k, v in new2["Data"].items() if k not in ("ThreadID", "Mailboxes")} == new

    _in_thread(run)


def test_bulk_change_is_one_frame_and_keeps_the_client(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 21 item 8: marking many messages read must not cut the live connection off."""
    api = Api(server)
    url = server.http_url.replace("http", "ws", 1) + "/api/events"
    ids = [api.send(To=[{"Email": "x@example.com"}], Subject=f"m{i}") for i in range(ws_events.BULK_IDS + 20)]
    monkeypatch.setattr(ws_events, "QUEUE_SIZE", ws_events.BULK_IDS // 2)  # fewer than the change

    async def run() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            loop = asyncio.get_running_loop()
            r = await loop.run_in_executor(
                None, lambda: api.request("PUT", "/api/v1/messages", {"Read": True})
            )
            assert r.status == 200
            upd = await _read_update(ws)
            assert upd["Data"]["Read"] is True and sorted(upd["Data"]["IDs"]) == sorted(ids)
            r = await loop.run_in_executor(
                None, lambda: api.request("DELETE", "/api/v1/messages", {"IDs": ids})
            )
            [dele] = await _collect(ws, 1, {"delete"})
            assert sorted(dele["Data"]["IDs"]) == sorted(ids)
            # still connected: a new message arrives on the same socket
            await loop.run_in_executor(
                None, lambda: api.send(To=[{"Email": "x@example.com"}], Subject="after")
            )
            [new] = await _collect(ws, 1, {"new"})
            assert new["Data"]["Subject"] == "after"

    _in_thread(run)


def test_client_leaving_during_the_handshake_is_not_an_error(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that sends the upgrade request and closes at once is normal: it is logged at
    debug with its peer address, not as an error, and the server keeps serving."""
    caplog.set_level(logging.DEBUG, logger="postroom")
    host, port = server.addr("http")
    for _ in range(10):
        with socket.create_connection((host, port)) as s:
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall(
                f"GET /api/events HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
            )
    api = Api(server)
    api.send(To=[{"Email": "x@example.com"}], Subject="after")  # ingest and the API still work
    assert api.get("/api/v1/messages").json()["total"] == 1
    url = server.http_url.replace("http", "ws", 1) + "/api/events"

    async def run() -> None:  # and so do WebSockets
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, lambda: api.request("DELETE", "/api/v1/messages"))
            assert (await _collect(ws, 1, {"truncate"}))[0]["Data"] is None

    _in_thread(run)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    gone = [r.getMessage() for r in caplog.records if "went away" in r.getMessage()]
    assert gone and "127.0.0.1" in gone[0]  # the case did happen (else this test proves nothing)


def test_stopping_with_a_client_being_dropped_leaves_no_hub_task_pending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client that reads nothing overflows its queue: the hub drops it (waiting up to
    CLOSE_TIMEOUT for room for its close frame). The server stops meanwhile: the hub cancels and awaits that task,
    none is left pending on the closed loop, nor reported destroyed."""
    monkeypatch.setattr(ws_events, "CLOSE_TIMEOUT", 30.0)  # the drop outlasts the stop
    problems: list[str] = []
    with running_server(smtp="off", pop3="off", imap="off") as s:
        s.loop.set_exception_handler(lambda loop, context: problems.append(str(context.get("message"))))
        host, port = s.addr("http")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # it fills at once
        sock.settimeout(20)
        sock.connect((host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET /api/events HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101 ")
        bus = s.app.bus

        def publish(i: int) -> None:
            bus.publish(
                ReadChanged(
                    ids=tuple(f"{i}-{j}-" + "x" * 10_000 for j in range(ws_events.BULK_IDS)), read=True
                )
            )

        def dropping() -> bool:
            return any(_qualname(t) == "_Client._drop" for t in asyncio.all_tasks())

        async def flood() -> bool:
            # 10 KB frames the client never reads: the socket's buffers fill, then its queue
            # overflows; the close frame of the drop waits for room (CLOSE_TIMEOUT)
            for i in range(ws_events.QUEUE_SIZE * 3 // 4 // ws_events.BULK_IDS):
                publish(i)
            await asyncio.sleep(0.3)
            for i in range(ws_events.QUEUE_SIZE // ws_events.BULK_IDS + 1):
                publish(1000 + i)
                if dropping():
                    break
            await asyncio.sleep(0.05)
            return dropping()

        assert s.call(flood())  # the drop is under way
    try:
        left = [t for t in asyncio.all_tasks(s.loop) if _qualname(t).startswith(("Hub.", "_Client."))]
        assert left == []
        del left
        gc.collect()
        assert not [p for p in problems if "Task was destroyed" in p]
    finally:
        sock.close()
