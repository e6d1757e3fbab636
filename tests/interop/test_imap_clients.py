"""Real, independent IMAP clients against postroom: imaplib, imapclient, imap-tools,
mbsync (isync) and Node's imapflow. Each reads mail sent over SMTP; IDLE wakes on new mail.
"""

from __future__ import annotations

import email
import imaplib
import json
import os
import smtplib
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from imap_tools import AND, MailBoxUnencrypted, MailMessageFlags
from imapclient import IMAPClient
from tests.helpers import RunningServer, require_tool, running_server

pytestmark = pytest.mark.interop

NODE_DIR = Path(__file__).parent / "node"


def message(subject: str, to: str, body: str = "Hello from the interop test.") -> bytes:
    return (
        f"From: Alice <alice@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: Tue, 02 Jan 2024 10:00:00 +0000\r\nMessage-ID: <{subject.replace(' ', '-')}@example.org>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def send(s: RunningServer, to: str, subject: str, body: str = "Hello from the interop test.") -> None:
    with smtplib.SMTP(*s.addr("smtp")) as smtp:
        smtp.sendmail("alice@example.org", [to], message(subject, to, body))


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with running_server() as s:
        yield s


def test_imaplib(srv: RunningServer) -> None:
    user = "imaplib@example.org"
    send(srv, user, "first via smtp")
    send(srv, user, "second via smtp", "needle in the body")
    m = imaplib.IMAP4(*srv.addr("imap"))
    try:
        assert m.login(user, "any")[0] == "OK"
        typ, data = m.select("INBOX")
        assert (typ, data) == ("OK", [b"2"])
        typ, data = m.search(None, "BODY", "needle")
        assert data == [b"2"]
        typ, data = m.fetch("1", "(RFC822)")
        parsed = email.message_from_bytes(data[0][1])  # type: ignore[index]
        assert parsed["Subject"] == "first via smtp"
        assert m.store("1", "+FLAGS", "\\Deleted")[0] == "OK"
        typ, data = m.expunge()
        assert data == [b"1"]
        assert m.create("Archive")[0] == "OK"
        typ, data = m.uid("COPY", "2", "Archive")
        assert typ == "OK"
        typ, data = m.status("Archive", "(MESSAGES)")
        assert data == [b"Archive (MESSAGES 1)"]
        assert m.close()[0] == "OK"
    finally:
        m.logout()


def test_imapclient_structure_and_idle(srv: RunningServer) -> None:
    user = "imapclient@example.org"
    send(srv, user, "structure test")
    with IMAPClient(srv.addr("imap")[0], port=srv.addr("imap")[1], ssl=False) as c:
        c.login(user, "x")
        assert b"IDLE" in c.capabilities() and b"MOVE" in c.capabilities()
        info = c.select_folder("INBOX")
        assert info[b"EXISTS"] == 1
        [uid] = c.search(["SUBJECT", "structure"])
        data = c.fetch([uid], ["ENVELOPE", "BODYSTRUCTURE", "FLAGS", "INTERNALDATE"])[uid]
        env = data[b"ENVELOPE"]
        assert env.subject == b"structure test"
        assert env.from_[0].mailbox == b"alice" and env.from_[0].host == b"example.org"
        assert data[b"BODYSTRUCTURE"][0] == b"text" and data[b"BODYSTRUCTURE"][1] == b"plain"
        c.add_flags([uid], [b"\\Flagged"])
        assert b"\\Flagged" in c.get_flags([uid])[uid]
        c.create_folder("Later")
        c.move([uid], "Later")
        assert c.folder_status("Later", [b"MESSAGES"])[b"MESSAGES"] == 1
        c.idle()
        threading.Timer(0.5, send, (srv, user, "wakes the idler")).start()
        responses = c.idle_check(timeout=20)
        c.idle_done()
        assert (1, b"EXISTS") in responses


def test_imap_tools(srv: RunningServer) -> None:
    user = "imaptools@example.org"
    for i in range(3):
        send(srv, user, f"tools message {i}", f"body number {i}")
    host, port = srv.addr("imap")
    with MailBoxUnencrypted(host, port=port).login(user, "x", initial_folder="INBOX") as mb:
        msgs = list(mb.fetch(AND(subject="tools message"), mark_seen=False))
        assert [m.subject for m in msgs] == [f"tools message {i}" for i in range(3)]
        assert msgs[1].text.strip() == "body number 1"
        assert msgs[0].from_ == "alice@example.org"
        mb.flag([msgs[0].uid], MailMessageFlags.SEEN, True)
        assert [m.subject for m in mb.fetch(AND(seen=False))] == ["tools message 1", "tools message 2"]
        mb.folder.create("Kept")
        mb.move([msgs[2].uid], "Kept")
        assert mb.folder.status("Kept")["MESSAGES"] == 1
        mb.delete([msgs[1].uid])
        assert len(list(mb.fetch())) == 1
        threading.Timer(0.5, send, (srv, user, "tools idle")).start()
        responses = mb.idle.wait(timeout=20)
        assert any(b"EXISTS" in r for r in responses)


def _mbsync_config(tmp: Path, port: int, user: str) -> Path:
    local = tmp / "Maildir"
    local.mkdir()
    cfg = tmp / "mbsyncrc"
    cfg.write_text(
        f"""IMAPAccount postroom
Host 127.0.0.1
Port {port}
User {user}
Pass x
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account postroom

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
Sync All
"""
    )
    return cfg


def _maildir_files(folder: Path) -> list[Path]:
    return sorted(p for sub in ("cur", "new") for p in (folder / sub).glob("*") if p.is_file())


def test_mbsync_round_trip(srv: RunningServer, tmp_path: Path) -> None:
    mbsync = require_tool("mbsync", "isync")
    user = "mbsync@example.org"
    send(srv, user, "for the maildir one")
    send(srv, user, "for the maildir two")
    cfg = _mbsync_config(tmp_path, srv.addr("imap")[1], user)
    env = {**os.environ, "HOME": str(tmp_path)}

    def run() -> None:
        proc = subprocess.run(
            [mbsync, "-c", str(cfg), "-a"], capture_output=True, text=True, timeout=60, env=env
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr

    run()
    inbox = tmp_path / "Maildir" / "INBOX"
    files = _maildir_files(inbox)
    assert len(files) == 2
    subjects = sorted(email.message_from_bytes(f.read_bytes())["Subject"] for f in files)
    assert subjects == ["for the maildir one", "for the maildir two"]
    # back: a new local message and a local folder go up; a local flag change too
    (inbox / "new" / "1700000000.local1.host").write_bytes(message("written locally", user))
    (tmp_path / "Maildir" / "Projects" / "cur").mkdir(parents=True)
    (tmp_path / "Maildir" / "Projects" / "new").mkdir()
    (tmp_path / "Maildir" / "Projects" / "tmp").mkdir()
    seen = files[0]
    seen.rename(seen.parent.parent / "cur" / (seen.name.split(":")[0] + ":2,S"))
    run()
    with IMAPClient("127.0.0.1", port=srv.addr("imap")[1], ssl=False) as c:
        c.login(user, "x")
        c.select_folder("INBOX")
        fetched = c.fetch(c.search(), ["ENVELOPE", "FLAGS"])
        by_subject = {d[b"ENVELOPE"].subject: d[b"FLAGS"] for d in fetched.values()}
        assert set(by_subject) == {b"for the maildir one", b"for the maildir two", b"written locally"}
        assert sum(1 for flags in by_subject.values() if b"\\Seen" in flags) == 1
        assert any(f[2] == "Projects" for f in c.list_folders())
    # and a second sync changes nothing
    run()
    assert len(_maildir_files(inbox)) == 3


def test_imapflow(srv: RunningServer) -> None:
    node = require_tool("node", "nodejs")
    npm = require_tool("npm", "npm")
    if not (NODE_DIR / "node_modules" / "imapflow").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300, capture_output=True
        )
    user = "imapflow@example.org"
    send(srv, user, "hello imapflow")
    host, port = srv.addr("imap")
    proc = subprocess.Popen(
        [node, "imapflow_check.mjs", host, str(port), user],
        cwd=NODE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    events: dict[str, dict[str, object]] = {}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            ev = json.loads(line)
            events[ev["event"]] = ev
            if ev["event"] == "ready":
                time.sleep(0.3)
                send(srv, user, "imapflow wakes up")
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert events["opened"]["exists"] == 1
    [m] = events["messages"]["messages"]  # type: ignore[misc]
    assert m["subject"] == "hello imapflow" and m["from"] == "alice@example.org"
    assert m["type"] == "text/plain" and m["size"] > 100
    assert events["search"]["uids"] == [m["uid"]]
    assert events["exists"]["count"] == 2


def _conversation(s: RunningServer, to: str, tag: str) -> None:
    """Three messages over SMTP: a root, an unrelated one, and a reply to the root."""
    root = f"<root-{tag}@example.org>"
    heads = [
        (f"{tag} plans", root, ""),
        (f"{tag} lunch", f"<other-{tag}@example.org>", ""),
        (f"Re: {tag} plans", f"<reply-{tag}@example.org>", f"In-Reply-To: {root}\r\nReferences: {root}\r\n"),
    ]
    with smtplib.SMTP(*s.addr("smtp")) as smtp:
        for subject, mid, refs in heads:
            raw = (
                f"From: Alice <alice@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n"
                f"{refs}Date: Tue, 02 Jan 2024 10:00:00 +0000\r\n\r\nbody\r\n"
            )
            smtp.sendmail("alice@example.org", [to], raw.encode())


def test_imapclient_gmail_thread_and_message_ids(srv: RunningServer) -> None:
    # X-GM-EXT-1 (docs/imap.md): IMAPClient reads X-GM-MSGID / X-GM-THRID as integers
    user = "imapclient-gm@example.org"
    _conversation(srv, user, "imapclient")
    with IMAPClient(srv.addr("imap")[0], port=srv.addr("imap")[1], ssl=False) as c:
        c.login(user, "x")
        assert b"X-GM-EXT-1" in c.capabilities()
        c.select_folder("INBOX")
        got = c.fetch(c.search(), ["ENVELOPE", "X-GM-MSGID", "X-GM-THRID"])
        ids = {d[b"ENVELOPE"].subject: (uid, d[b"X-GM-MSGID"], d[b"X-GM-THRID"]) for uid, d in got.items()}
        root, other, reply = ids[b"imapclient plans"], ids[b"imapclient lunch"], ids[b"Re: imapclient plans"]
        assert all(isinstance(v, int) for t in ids.values() for v in t)
        assert root[2] == root[1] == reply[2] and other[2] == other[1] != root[2]
        assert sorted(c.search(["X-GM-THRID", root[2]])) == sorted([root[0], reply[0]])
        assert c.search(["X-GM-MSGID", other[1]]) == [other[0]]
        # the same ids after a COPY, in the other folder
        c.create_folder("Kept")
        c.copy([reply[0]], "Kept")
        c.select_folder("Kept")
        [(_, kept)] = c.fetch(c.search(), ["X-GM-MSGID", "X-GM-THRID"]).items()
        assert (kept[b"X-GM-MSGID"], kept[b"X-GM-THRID"]) == reply[1:]


def test_imapflow_gmail_thread_and_email_ids(srv: RunningServer) -> None:
    # imapflow fills emailId / threadId from X-GM-MSGID / X-GM-THRID once X-GM-EXT-1 is listed
    node = require_tool("node", "nodejs")
    npm = require_tool("npm", "npm")
    if not (NODE_DIR / "node_modules" / "imapflow").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300, capture_output=True
        )
    user = "imapflow-gm@example.org"
    _conversation(srv, user, "imapflow")
    host, port = srv.addr("imap")
    done = subprocess.run(
        [node, "imapflow_gmail.mjs", host, str(port), user],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["gm"] is True
    by = {m["subject"]: m for m in out["messages"]}
    root, other, reply = by["imapflow plans"], by["imapflow lunch"], by["Re: imapflow plans"]
    assert root["threadId"] == root["emailId"] == reply["threadId"] != other["threadId"]
    assert len({root["emailId"], other["emailId"], reply["emailId"]}) == 3
    assert all(m["emailId"].isdigit() and m["threadId"].isdigit() for m in out["messages"])
    assert sorted(out["byThread"]) == sorted([root["uid"], reply["uid"]])
    assert out["byEmail"] == [out["messages"][1]["uid"]]


def test_imaplib_over_starttls() -> None:
    import ssl

    with running_server(tls_self_signed=True, require_tls_login=True) as s:
        m = imaplib.IMAP4(*s.addr("imap"))
        try:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            assert m.starttls(ctx)[0] == "OK"
            assert m.login("tls@example.org", "x")[0] == "OK"
            assert m.select("INBOX") == ("OK", [b"0"])
        finally:
            m.logout()
