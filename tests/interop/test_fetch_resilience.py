"""`postroom fetch` against a real Dovecot at scale and under failure: 1,000 messages in three
folders then an incremental run, a UIDVALIDITY reset, `kill -9` mid-sync, Dovecot's session
killed mid-sync, CONDSTORE, and `--watch` woken by IMAP IDLE."""

from __future__ import annotations

import collections
import imaplib
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.helpers import running_dovecot, running_server
from tests.interop.test_fetch_dovecot import POSTROOM, account, remote

from postroom.fetch.accounts import Account, State, load_accounts
from postroom.fetch.imap_sync import LocalTarget, sync_account

pytestmark = pytest.mark.interop
ALICE = "alice@example.org"


def fill(c: imaplib.IMAP4, folder: str, prefix: str, count: int, start: int = 0) -> None:
    """``count`` messages of a few KB each (so a sync takes long enough to be interrupted)."""
    for n in range(start, start + count):
        body = "".join(f"line {i} of message {n} in {folder}\r\n" for i in range(60))
        msg = (f"From: x@example.net\r\nTo: {ALICE}\r\nSubject: {prefix} {n}\r\n"
               f"Message-ID: <{prefix}-{n}@example.net>\r\n\r\n{body}")  # fmt: skip
        flags = "\\Seen" if n % 3 == 0 else None
        typ, _ = c.append(folder, flags, None, msg.encode())
        assert typ == "OK"


def local_subjects(port: int, folder: str) -> list[str]:
    """Subject of every message in a local postroom folder (duplicates kept)."""
    c = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    c.login(ALICE, "x")
    typ, data = c.select(f'"{folder}"', readonly=True)
    out: list[str] = []
    if typ == "OK" and data[0] != b"0":
        _, data = c.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        out = [p[1].decode().strip().removeprefix("Subject: ") for p in data if isinstance(p, tuple)]
    c.logout()
    return out


def exactly_once(subjects: list[str], expected: set[str]) -> None:
    counts = collections.Counter(subjects)
    assert {s for s, n in counts.items() if n > 1} == set(), "duplicates"
    assert expected - set(counts) == set(), "gaps"
    assert set(counts) == expected


class Fetch:
    """One test's world: a private Dovecot (alice@ and bob@example.org), a postroom to fetch
    into, and `postroom fetch alice`'s configuration and state file in the test's folder (an
    IMAP account for alice's INBOX until :meth:`imap_account` or :meth:`pop3_account`)."""

    def __init__(self, tmp: Path, imap_port: int, pop3_port: int, local: int) -> None:
        self.imap_port, self.pop3_port, self.local = imap_port, pop3_port, local
        self.config = tmp / "postroom.toml"
        self.state = tmp / "state.sqlite"
        self.args = [POSTROOM, "fetch", "alice", "--config", str(self.config), "--into",
                     f"127.0.0.1:{local}", "--state", str(self.state)]  # fmt: skip
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTROOM_", "MP_"))}
        self.env["ALICE_PW"] = "secret"
        self.imap_account("INBOX")

    def imap_account(self, *folders: str) -> None:
        self.config.write_text(account("alice", self.imap_port, ALICE, "ALICE_PW", folders=list(folders)))

    def pop3_account(self, name: str, **extra: object) -> None:
        """Account ``name``: bob's POP3 mailbox, fetched into alice's INBOX."""
        self.config.write_text(
            account(
                name, self.pop3_port, "bob@example.org", "ALICE_PW", protocol="pop3", mailbox=ALICE, **extra
            )
        )

    def remote(self, user: str = ALICE) -> imaplib.IMAP4:
        return remote(self.imap_port, user)

    def seed(self, count: int, folder: str = "INBOX", prefix: str = "inbox", user: str = ALICE) -> None:
        """``count`` messages into ``user``'s ``folder`` on Dovecot (see :func:`fill`)."""
        c = self.remote(user)
        fill(c, folder, prefix, count)
        c.logout()

    def subjects(self, folder: str = "INBOX") -> list[str]:
        return local_subjects(self.local, folder)

    def run(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.args, *extra], capture_output=True, text=True, env=self.env, timeout=300)

    def start(self, *extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*self.args, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env
        )

    def run_to_the_end(self, expected: set[str]) -> None:
        """A run that finishes, leaving each of ``expected`` in INBOX exactly once."""
        r = self.run()
        assert r.returncode == 0, r.stderr
        exactly_once(self.subjects(), expected)

    @contextmanager
    def watching(self, *extra: str) -> Iterator[subprocess.Popen[str]]:
        """`postroom fetch --watch`, stopped with Ctrl-C (SIGINT) on the way out."""
        proc = self.start("--watch", *extra)
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)

    @contextmanager
    def in_process(self, name: str = "alice") -> Iterator[tuple[Account, LocalTarget, State]]:
        """Account ``name``, the local target and the state file, for syncs run in this process."""
        acc = load_accounts(str(self.config))[name]
        state = State(self.state)
        try:
            yield acc, LocalTarget("127.0.0.1", self.local), state
        finally:
            state.close()

    def recorded(self, table: str = "message") -> int:
        """Messages the state file records as copied (``pop3``: by a POP3 account)."""
        if not self.state.exists():
            return 0
        db = sqlite3.connect(str(self.state), timeout=30)
        try:
            return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        except sqlite3.OperationalError:
            return 0  # the schema is not written yet
        finally:
            db.close()

    def wait_recorded(self, at_least: int, proc: subprocess.Popen[str], table: str = "message") -> None:
        deadline = time.monotonic() + 120
        while self.recorded(table) < at_least:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the fetch did not progress"
            time.sleep(0.02)


@pytest.fixture
def fx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fetch]:
    monkeypatch.setenv("ALICE_PW", "secret")  # the accounts' password, for in-process syncs
    with running_dovecot() as (imap_port, pop3_port), running_server(pop3="off") as srv:
        yield Fetch(tmp_path, imap_port, pop3_port, srv.addr("imap")[1])


def test_thousand_messages_in_three_folders_then_only_new_ones(fx: Fetch) -> None:
    a = fx.remote()
    for name in ("Lists", "Archive"):
        a.create(name)
    fill(a, "INBOX", "inbox", 400)
    fill(a, "Lists", "lists", 300)
    fill(a, "Archive", "archive", 300)
    fx.imap_account("INBOX", "Lists", "\\Archive")
    r = fx.run()
    assert r.returncode == 0, r.stderr
    assert "alice: 1000 new messages in INBOX, Lists, Archive" in r.stdout
    exactly_once(fx.subjects("INBOX"), {f"inbox {n}" for n in range(400)})
    exactly_once(fx.subjects("Lists"), {f"lists {n}" for n in range(300)})
    exactly_once(fx.subjects("Archive"), {f"archive {n}" for n in range(300)})

    fill(a, "INBOX", "inbox", 2, start=400)
    fill(a, "Archive", "archive", 1, start=300)
    r = fx.run()
    assert r.returncode == 0, r.stderr
    assert "alice: 3 new messages in INBOX, Lists, Archive" in r.stdout
    exactly_once(fx.subjects("INBOX"), {f"inbox {n}" for n in range(402)})
    exactly_once(fx.subjects("Archive"), {f"archive {n}" for n in range(301)})
    assert len(fx.subjects("Lists")) == 300
    a.logout()


def test_uidvalidity_reset_refetches_without_duplicates(fx: Fetch) -> None:
    a = fx.remote()
    a.create("Lists")
    fill(a, "Lists", "lists", 5)
    fx.imap_account("Lists")
    assert fx.run().returncode == 0
    a.select("Lists", readonly=True)
    before = a.response("UIDVALIDITY")[1][0]
    a.close()
    # the folder is deleted and made again (as a server restore does): new UIDVALIDITY,
    # three of the same messages again and one new one
    assert a.delete("Lists")[0] == "OK" and a.create("Lists")[0] == "OK"
    fill(a, "Lists", "lists", 3, start=2)
    fill(a, "Lists", "lists", 1, start=5)
    a.select("Lists", readonly=True)
    assert a.response("UIDVALIDITY")[1][0] != before
    r = fx.run()
    assert r.returncode == 0, r.stderr
    assert "alice: Lists: UIDVALIDITY changed" in r.stdout
    # messages 0 and 1 are gone from the server and kept here; 2-4 matched, not copied again
    exactly_once(fx.subjects("Lists"), {f"lists {n}" for n in range(6)})
    # and the new UIDs are tracked: a third run adds nothing
    r = fx.run()
    assert "alice: 0 new messages" in r.stdout
    assert len(fx.subjects("Lists")) == 6
    a.logout()


def test_kill_9_mid_sync_then_rerun_copies_every_message_once(fx: Fetch) -> None:
    fx.seed(600)
    for at_least in (40, 200, 350):  # killed three times, at different points
        proc = fx.start()
        fx.wait_recorded(at_least, proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert fx.recorded() < 600, "the sync finished before it was killed"
        # no duplicate, no gap; the message being copied may be there unrecorded (the
        # next run finds it: test_copy_made_but_not_recorded_is_found_not_duplicated)
        got, done = fx.subjects(), fx.recorded()
        assert len(got) in (done, done + 1)
        exactly_once(got, {f"inbox {n}" for n in range(len(got))})
    fx.run_to_the_end({f"inbox {n}" for n in range(600)})


def test_copy_made_but_not_recorded_is_found_not_duplicated(fx: Fetch) -> None:
    """The window `kill -9` rarely hits: postroom has the copy, the state file not yet."""
    a = fx.remote()
    fill(a, "INBOX", "inbox", 3)
    a.select("INBOX", readonly=True)
    _, data = a.uid("FETCH", "3", "(BODY.PEEK[])")
    third = data[0][1]
    a.logout()
    with fx.in_process() as (acc, target, state):
        sync_account(acc, target, state)
        # make message 3 look copied but unrecorded: forget it, mark it pending
        state.db.execute("DELETE FROM message WHERE uid = 3")
        state.db.execute("UPDATE folder SET last_uid = 2")
        lc = imaplib.IMAP4("127.0.0.1", fx.local, timeout=30)
        lc.login(ALICE, "x")
        lc.select("INBOX")
        local_min = int(lc.response("UIDNEXT")[1][0]) - 1
        _, data = lc.uid("FETCH", str(local_min), "(BODY.PEEK[])")
        assert data[0][1] == third  # postroom keeps the APPENDed bytes exactly
        lc.logout()
        state.appending("alice", "INBOX", 3, local_min)
        assert sync_account(acc, target, state).fetched == 1
        assert state.pending("alice", "INBOX") is None
    exactly_once(fx.subjects(), {"inbox 0", "inbox 1", "inbox 2"})


def _dovecot_sessions(imap_port: int) -> list[int]:
    """Dovecot's post-login `imap` processes of the instance listening on ``imap_port``."""
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{imap_port}"], capture_output=True, text=True)
    pids = {int(p.split("=")[1]) for p in out.stdout.replace(",", " ").split() if p.startswith("pid=")}
    masters = set()
    for pid in pids:
        try:  # a login process holding the socket may have exited since `ss` listed it
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            masters.add(pid if comm == "dovecot" else int(Path(f"/proc/{pid}/stat").read_text().split()[3]))
        except (OSError, IndexError, ValueError):
            continue
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if comm == "imap" and ppid in masters:
            found.append(int(entry.name))
    return found


def test_server_drops_the_connection_mid_sync(fx: Fetch) -> None:
    fx.seed(600)
    proc = fx.start()
    fx.wait_recorded(50, proc)
    sessions = _dovecot_sessions(fx.imap_port)
    assert sessions, "found no Dovecot imap session to kill"
    for pid in sessions:
        os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.count("\n") == 1 and "connection lost while syncing alice" in err, err
    assert "run again to continue" in err
    assert fx.recorded() < 600
    fx.run_to_the_end({f"inbox {n}" for n in range(600)})


def test_condstore_reads_only_changed_flags(fx: Fetch) -> None:
    a = fx.remote()
    assert "CONDSTORE" in a.capability()[1][0].decode()
    fill(a, "INBOX", "inbox", 50)
    with fx.in_process() as (acc, target, state):
        assert sync_account(acc, target, state).fetched == 50
        # nothing changed: HIGHESTMODSEQ has not moved, no flag is read
        r = sync_account(acc, target, state)
        assert (r.fetched, r.flags_read, r.flags_mirrored) == (0, 0, 0)
        a.select("INBOX")
        a.store("7", "+FLAGS", "(\\Flagged)")
        r = sync_account(acc, target, state)
        assert (r.fetched, r.flags_read, r.flags_mirrored) == (0, 1, 1)
    c = imaplib.IMAP4("127.0.0.1", fx.local, timeout=30)
    c.login(ALICE, "x")
    c.select("INBOX", readonly=True)
    _, data = c.search(None, "FLAGGED")
    assert data[0] == b"7"
    c.logout()
    a.logout()


def test_watch_wakes_on_idle_not_on_the_poll(fx: Fetch) -> None:
    a = fx.remote()
    assert "IDLE" in a.capabilities
    fill(a, "INBOX", "inbox", 1)
    with fx.watching("--interval", "600") as proc:  # a poll would come after 10 minutes
        fx.wait_recorded(1, proc)
        time.sleep(1)  # let the IDLE connection settle (the test holds either way)
        fill(a, "INBOX", "inbox", 1, start=1)
        sent = time.monotonic()
        while "inbox 1" not in fx.subjects():
            assert time.monotonic() - sent < 10, "the new message did not arrive within 10 s"
            time.sleep(0.05)
        print(f"IDLE delivery took {time.monotonic() - sent:.2f} s")
    assert fx.subjects() == ["inbox 0", "inbox 1"]
    a.logout()


def test_pop3_kill_9_mid_download_then_rerun_copies_every_message_once(fx: Fetch) -> None:
    fx.seed(400, prefix="pop", user="bob@example.org")
    fx.pop3_account("alice", delete=True)
    for at_least in (40, 200):
        proc = fx.start()
        fx.wait_recorded(at_least, proc, "pop3")
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert fx.recorded("pop3") < 400, "the download finished before it was killed"
        got = fx.subjects()
        assert len(got) in (fx.recorded("pop3"), fx.recorded("pop3") + 1)
        exactly_once(got, {f"pop {n}" for n in range(len(got))})
    fx.run_to_the_end({f"pop {n}" for n in range(400)})
    # delete = true: the server's copies went with the run that finished (QUIT), none before
    b = fx.remote("bob@example.org")
    assert b.select("INBOX")[1][0] == b"0"
    b.logout()


def test_pop3_copy_made_but_not_recorded_is_found_not_duplicated(fx: Fetch) -> None:
    fx.seed(3, prefix="pop", user="bob@example.org")
    fx.pop3_account("bob")
    with fx.in_process("bob") as (acc, target, state):
        assert sync_account(acc, target, state).fetched == 3
        # the last message looks copied but unrecorded: its UIDL forgotten, marked pending
        (last,) = state.db.execute("SELECT uidl FROM pop3 ORDER BY rowid DESC LIMIT 1").fetchone()
        state.db.execute("DELETE FROM pop3 WHERE uidl = ?", (last,))
        state.pop3_appending("bob", last, 1)
        assert sync_account(acc, target, state).fetched == 1
        assert state.pop3_pending("bob") is None
        assert sync_account(acc, target, state).fetched == 0
    exactly_once(fx.subjects(), {"pop 0", "pop 1", "pop 2"})


def test_watch_reconnects_after_the_idle_connection_is_killed(fx: Fetch) -> None:
    fx.seed(1)
    with fx.watching("--interval", "600") as proc:
        fx.wait_recorded(1, proc)
        end = time.monotonic() + 20
        while not _dovecot_sessions(fx.imap_port):  # the IDLE connection is up
            assert time.monotonic() < end
            time.sleep(0.1)
        for pid in _dovecot_sessions(fx.imap_port):
            os.kill(pid, signal.SIGKILL)
        a = fx.remote()
        fill(a, "INBOX", "inbox", 1, start=1)
        a.logout()
        # reopened after a 1 s backoff; the sync on reconnecting brings the new message
        end = time.monotonic() + 20
        while "inbox 1" not in fx.subjects():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < end, "no reconnect within 20 s"
            time.sleep(0.1)
    exactly_once(fx.subjects(), {"inbox 0", "inbox 1"})
