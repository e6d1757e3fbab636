"""POP3 interop: real clients (Python poplib, fetchmail) against postroom, and the same
behaviour checked against a real Dovecot (where POP3 replies must match in meaning)."""

from __future__ import annotations

import imaplib
import os
import poplib
import smtplib
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import RunningServer, require_tool, running_dovecot, running_server

from postroom.store.base import INBOX, Envelope

pytestmark = pytest.mark.interop

ALICE = "alice@example.org"


def mail(n: int, body: str = "") -> bytes:
    text = (
        f"From: Sender <sender@example.org>\r\nTo: {ALICE}\r\nSubject: interop {n}\r\n"
        f"Message-ID: <interop-{n}@example.org>\r\n\r\nbody of message {n}\r\n{body}"
    )
    return text.encode()


def send(server: RunningServer, raw: bytes, rcpt: str = ALICE) -> None:
    """Send over SMTP when postroom's SMTP listener runs, else deliver to the store directly."""
    if "smtp" in server.app.addresses:
        host, port = server.addr("smtp")
        with smtplib.SMTP(host, port, timeout=30) as smtp:
            smtp.sendmail("sender@example.org", [rcpt], raw)
    else:
        server.call(server.app.store.deliver(Envelope("sender@example.org", (rcpt,)), raw))


def pop3(server: RunningServer) -> poplib.POP3:
    host, port = server.addr("pop3")
    return poplib.POP3(host, port, timeout=30)


def subjects(lines: list[bytes]) -> list[bytes]:
    return [line for line in lines if line.startswith(b"Subject:")]


# -- Python poplib -------------------------------------------------------------------------------


def test_poplib_reads_and_deletes(server: RunningServer) -> None:
    send(server, mail(1))
    send(server, mail(2, ".a line that starts with a dot\r\n..and two\r\n"))
    p = pop3(server)
    assert p.capa().keys() >= {"UIDL", "TOP", "USER", "PIPELINING", "RESP-CODES"}
    p.user(ALICE)
    assert p.pass_("whatever").startswith(f"+OK {ALICE} has 2 messages".encode())
    count, _size = p.stat()
    assert count == 2
    _, lines, _ = p.retr(2)
    assert b".a line that starts with a dot" in lines and b"..and two" in lines  # un-stuffed by poplib
    assert subjects(lines) == [b"Subject: interop 2"]
    _, top, _ = p.top(1, 0)
    assert top[-1] == b"" and b"body of message 1" not in top
    _, uidls, _ = p.uidl()
    assert len({u.split()[1] for u in uidls}) == 2
    p.dele(1)
    with pytest.raises(poplib.error_proto, match="already deleted"):
        p.retr(1)
    p.quit()
    p = pop3(server)
    p.user(ALICE)
    p.pass_("x")
    assert p.stat()[0] == 1
    assert subjects(p.retr(1)[1]) == [b"Subject: interop 2"]
    p.rset()
    p.quit()


def test_poplib_stls_with_self_signed_certificate() -> None:
    with running_server(tls_self_signed=True, require_tls_login=True) as server:
        send(server, mail(1))
        p = pop3(server)
        assert "STLS" in p.capa()
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\] plaintext authentication is disabled"):
            p.user(ALICE)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        p.stls(context)
        assert "STLS" not in p.capa()  # RFC 2595 §4: not offered once TLS is active
        p.user(ALICE)
        p.pass_("x")
        assert subjects(p.retr(1)[1]) == [b"Subject: interop 1"]
        p.quit()


def test_poplib_implicit_tls() -> None:
    with running_server(tls_self_signed=True, pop3s="127.0.0.1:0") as server:
        send(server, mail(7))
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        host, port = server.addr("pop3s")
        p = poplib.POP3_SSL(host, port, context=context, timeout=30)
        assert "STLS" not in p.capa()
        p.user(ALICE)
        p.pass_("x")
        assert p.stat()[0] == 1
        assert subjects(p.retr(1)[1]) == [b"Subject: interop 7"]
        p.quit()


# -- fetchmail -------------------------------------------------------------------------------


def fetchmail(server: RunningServer, workdir: Path, *, keep: bool, tls: bool = False) -> tuple[int, str]:
    """Run fetchmail once against postroom's POP3, delivering into workdir/mbox via an MDA."""
    exe = require_tool("fetchmail")
    host, port = server.addr("pop3")
    out = workdir / "mbox"
    rc = workdir / "fetchmailrc"
    # fetchmail 6.4 insists on TLS unless told otherwise: sslproto '' means plain POP3;
    # with TLS we accept postroom's self-signed certificate.
    security = "sslproto 'tls1.2+' no sslcertck" if tls else "sslproto ''"
    rc.write_text(
        f'poll {host} protocol pop3 port {port} user "{ALICE}" password "pw" {security} '
        f'{"keep" if keep else "nokeep"} mda "cat >> {out}"\n'
    )
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(workdir))
    result = subprocess.run(
        [exe, "-f", str(rc), "-i", str(workdir / "ids"), "--nodetach", "--verbose"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def test_fetchmail_downloads_keeps_and_deletes(server: RunningServer, tmp_path: Path) -> None:
    for n in range(1, 4):
        send(server, mail(n, ".dotted line\r\n"))
    code, log = fetchmail(server, tmp_path, keep=True)
    assert code == 0, log  # 0: mail was retrieved
    mbox = (tmp_path / "mbox").read_bytes()
    assert [mbox.count(f"Subject: interop {n}\n".encode()) for n in (1, 2, 3)] == [1, 1, 1]
    assert mbox.count(b"\n.dotted line\n") == 3  # the MDA gets the un-stuffed line
    assert len(server.app.store.folder_entries(ALICE, INBOX)) == 3  # "keep"
    # UIDL lets fetchmail see that nothing is new on the second run.
    code, log = fetchmail(server, tmp_path, keep=True)
    assert code == 1, log  # 1: no mail
    send(server, mail(4))
    code, log = fetchmail(server, tmp_path, keep=False)
    assert code == 0, log
    mbox = (tmp_path / "mbox").read_bytes()
    assert mbox.count(b"Subject: interop 4\n") == 1
    assert mbox.count(b"Subject: interop 1\n") == 1  # old ones were not fetched again
    # With "nokeep" fetchmail deletes what it fetched (the new message), applied at QUIT.
    left = server.app.store.folder_entries(ALICE, INBOX)
    assert len(left) == 3


def test_fetchmail_over_stls(tmp_path: Path) -> None:
    with running_server(tls_self_signed=True, require_tls_login=True) as server:
        send(server, mail(5))
        code, log = fetchmail(server, tmp_path, keep=False, tls=True)
        assert code == 0, log
        assert "POP3> STLS" in log and "POP3< +OK begin TLS negotiation" in log
        assert (tmp_path / "mbox").read_bytes().count(b"Subject: interop 5\n") == 1
        assert server.app.store.folder_entries(ALICE, INBOX) == []  # nokeep: deleted at QUIT


# -- Dovecot: the same behaviour, side by side ---------------------------------------------------


@pytest.fixture
def dovecot() -> Iterator[tuple[int, int]]:
    """A private Dovecot on free loopback ports: (imap port, pop3 port)."""
    with running_dovecot("postroom-pop3-dovecot-") as ports:
        yield ports


MESSAGES = [
    mail(1),
    mail(2, ".leading dot\r\n..two dots\r\n.\r\nafter a lone dot\r\n"),
    mail(3, "".join(f"line {i}\r\n" for i in range(1, 11))),
]


def behaviour(host: str, port: int, password: str, deliver: Callable[[bytes], None]) -> dict[str, Any]:
    """Deliver MESSAGES, then record what a POP3 client observes (server-neutral facts)."""
    for raw in MESSAGES:
        deliver(raw)

    def login() -> poplib.POP3:
        p = poplib.POP3(host, port, timeout=30)
        p.user(ALICE)
        p.pass_(password)
        return p

    def refused(p: poplib.POP3, command: str) -> bool:
        try:
            p._shortcmd(command)  # type: ignore[attr-defined]
        except poplib.error_proto as e:
            reply = e.args[0]
            return isinstance(reply, bytes) and reply.startswith(b"-ERR")
        return False

    seen: dict[str, Any] = {}
    p = login()
    seen["stat"] = p.stat()
    seen["list"] = [tuple(map(int, line.split())) for line in p.list()[1]]
    first_uidls = [line.split()[1] for line in p.uidl()[1]]
    seen["uidl unique"] = len(set(first_uidls)) == len(MESSAGES)
    seen["uidl n"] = p._shortcmd("UIDL 2").split()[1:2] == [b"2"]  # type: ignore[attr-defined]
    seen["top lines"] = [len(p.top(n, k)[1]) for n, k in ((1, 0), (2, 1), (3, 4), (3, 100))]
    seen["retr"] = [b"\r\n".join(p.retr(n)[1]) + b"\r\n" for n in (1, 2, 3)]
    seen["refused"] = {c: refused(p, c) for c in ("RETR 9", "LIST 0", "DELE x", "TOP 1", "USER bob")}
    p.dele(1)
    seen["stat after dele"] = p.stat()
    seen["dele twice refused"] = refused(p, "DELE 1")
    seen["retr deleted refused"] = refused(p, "RETR 1")
    p.rset()
    seen["stat after rset"] = p.stat()
    p.dele(2)
    p.quit()
    p = login()
    seen["stat next session"] = p.stat()
    seen["uidl stable"] = [line.split()[1] for line in p.uidl()[1]] == [first_uidls[0], first_uidls[2]]
    p.quit()
    seen["stat before login refused"] = refused(poplib.POP3(host, port, timeout=30), "STAT")
    return seen


def test_same_behaviour_as_dovecot(server: RunningServer, dovecot: tuple[int, int]) -> None:
    imap_port, pop3_port = dovecot

    def to_dovecot(raw: bytes) -> None:
        imap = imaplib.IMAP4("127.0.0.1", imap_port, timeout=30)
        imap.login(ALICE, "secret")
        typ, _ = imap.append("INBOX", None, None, raw)
        assert typ == "OK"
        imap.logout()

    def to_postroom(raw: bytes) -> None:
        # The exact bytes Dovecot gets (SMTP would add a Received: line and change sizes).
        server.call(server.app.store.deliver(Envelope("sender@example.org", (ALICE,)), raw))

    theirs = behaviour("127.0.0.1", pop3_port, "secret", to_dovecot)
    host, port = server.addr("pop3")
    ours = behaviour(host, port, "any", to_postroom)
    assert ours == theirs
    # ...and what both say is right, not merely equal:
    total = sum(map(len, MESSAGES))
    assert ours["stat"] == (3, total)
    assert ours["top lines"] == [5, 6, 9, 16]  # 4 header lines + blank + k body lines
    assert ours["retr"] == MESSAGES
    assert ours["stat next session"] == (2, len(MESSAGES[0]) + len(MESSAGES[2]))
    assert ours["uidl stable"] and all(ours["refused"].values())
