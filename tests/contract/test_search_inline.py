"""has:inline on both backends: a message showing a cid: picture (an inline part) against one
with a plain attachment and one with neither; and the count for mail indexed before it existed."""

from __future__ import annotations

import time
from typing import Any

from .conftest import Backend, message


def _related(subject: str) -> bytes:
    """An HTML body showing a picture by cid: (Content-ID, no disposition: inline)."""
    return (
        f"From: a@example.com\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=R\r\n\r\n"
        '--R\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>logo <img src="cid:logo@x"></p>\r\n'
        "--R\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        "iVBORw0KGgo=\r\n--R--\r\n"
    ).encode()


def _attached(subject: str) -> bytes:
    """A text body and a PNG attached (disposition attachment, no Content-ID)."""
    return (
        f"From: a@example.com\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=M\r\n\r\n"
        "--M\r\nContent-Type: text/plain\r\n\r\nsee the file\r\n"
        "--M\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=logo.png\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--M--\r\n"
    ).encode()


def test_has_inline_tells_cid_pictures_from_attachments(backend: Backend) -> None:
    inline = backend.deliver(_related("with a cid picture"))
    attached = backend.deliver(_attached("with an attachment"))
    plain = backend.deliver(message("plain", body="nothing attached"))
    assert backend.store.wait_indexed(30)

    assert _ids(backend, "has:inline") == {inline}
    assert _ids(backend, "has:attachment") == {attached}
    assert _ids(backend, "-has:inline") == {attached, plain}
    assert _ids(backend, "has:inline OR has:attachment") == {inline, attached}
    assert _ids(backend, "HAS:INLINE subject:cid") == {inline}


def test_mail_indexed_before_the_count_gets_it_in_the_background(backend: Backend) -> None:
    inline = backend.deliver(_related("with a cid picture"))
    backend.deliver(_attached("with an attachment"))
    assert backend.store.wait_indexed(30)
    store: Any = backend.store
    forget = "UPDATE message SET inline_parts = NULL"  # as mail stored before the migration
    if backend.name == "sqlite":  # counted by the checkpointer's rounds
        store.write(lambda c: c.execute(forget))
    else:  # counted by the indexer when it has no new mail to index
        store.db.write(lambda c, events: c.execute(forget))
    deadline = time.monotonic() + 10  # "doesn't hang", not a speed test
    while _ids(backend, "has:inline") != {inline} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _ids(backend, "has:inline") == {inline}


def _ids(backend: Backend, query: str) -> set[str]:
    return {m.id for m in backend.store.list_messages(query=query).messages}
