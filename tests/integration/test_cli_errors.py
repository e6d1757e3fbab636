"""`postroom` answers mistakes with one clear line and a non-zero status, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from postroom import __version__
from tests.helpers import running_server


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "postroom", *args], capture_output=True, text=True, timeout=60
    )


OFF = ("--http", "off", "--pop3", "off", "--imap", "off")


def test_port_in_use() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run("serve", "--smtp", f"127.0.0.1:{port}", *OFF, "--db", ":memory:")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]  # one line
    assert "cannot listen for smtp" in r.stderr and "in use" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("args", "status", "text"),
    [
        (("--db", "/proc/no-such-dir/x.db"), 1, "cannot open database"),
        (("--smtp", "nonsense"), 2, "expected host:port"),
        (("--tls-cert", "/no/cert.pem", "--tls-key", "/no/key.pem"), 2, "no such file"),
        (("--max", "lots"), 2, "expected a number"),
        (("--db", "mysql://u:secret@db/x"), 1, "not mysql://..."),
        (("--db", "postgresql://u:secret@127.0.0.1:1/x"), 1, "cannot open database: connection"),
    ],
)
def test_bad_settings(args: tuple[str, ...], status: int, text: str) -> None:
    r = run("serve", *OFF, *args)
    assert r.returncode == status
    assert len(r.stderr.strip().splitlines()) == 1 and text in r.stderr
    assert "Traceback" not in r.stderr and "secret" not in r.stderr


def test_version() -> None:
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"postroom {__version__}"


@pytest.mark.parametrize(
    ("option", "content", "text"),
    [
        ("--ui-auth-file", b"\xff\xfe:x\n", "--ui-auth-file: cannot read {path}: not UTF-8 text"),
        ("--ui-auth-file", b"ok:x\n\nno-colon-here\n", "--ui-auth-file: {path}:3: expected user:hash"),
        ("--send-api-auth-file", b"\xff:x\n", "--send-api-auth-file: cannot read {path}: not UTF-8"),
        ("--smtp-auth-file", b"\xff:x\n", "cannot read credentials file {path}: not UTF-8"),
        # POP3 and IMAP read it at the first login: a traceback and [SERVERBUG] there before
        ("--auth-file", b"ok:x\nno-colon-here\n", "{path}:2: expected user:password"),
        ("--auth-file", b"\xff:x\n", "cannot read credentials file {path}: not UTF-8"),
    ],
)
def test_bad_credentials_file(tmp_path: Path, option: str, content: bytes, text: str) -> None:
    path = tmp_path / "users"
    path.write_bytes(content)
    db = tmp_path / "mail.db"
    r = run("serve", "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--imap", "127.0.0.1:0",
            "--pop3", "off", "--db", str(db), option, str(path))  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("postroom: " + text.format(path=path)), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["users"]  # checked before the store opened


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("--ui-auth", "nocolon"), "--ui-auth: no user:password pair"),
        (("--smtp-auth", "nocolon"), "--smtp-auth:1: expected user:password"),
        (("--webhook", "http://127.0.0.1:9/ok,ftp://x"), "--webhook: a webhook URL must start with http://"),
        (("--smtp-relay-config", "{bad}"), "{bad}: expected a YAML mapping of settings"),
        (("--smtp-forward-config", "{bad}"), "{bad}: expected a YAML mapping of settings"),
        (("--fetch-config", "{bad}"), "config file {bad}: "),
        (("--tls-cert", "{bad}", "--tls-key", "{bad}"), "--tls-cert/--tls-key: cannot load {bad}"),
    ],
)
def test_a_bad_setting_read_at_start_leaves_no_database(
    tmp_path: Path, args: tuple[str, ...], text: str
) -> None:
    bad = tmp_path / "bad"
    bad.write_text("not a mapping [[\n")
    db = tmp_path / "mail.db"
    r = run("serve", "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--imap", "127.0.0.1:0",
            "--pop3", "off", "--db", str(db), *(a.format(bad=bad) for a in args))  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("postroom: " + text.format(bad=bad)), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]  # checked before the store opened


def test_inline_ui_credentials_without_a_pair() -> None:
    r = run("serve", "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0", *OFF[2:], "--db", ":memory:",
            "--ui-auth", "nocolon")  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == "postroom: --ui-auth: no user:password pair in the inline credentials"


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("export", "{dest}", "--url", "nonsense"), "--url: expected an http:// or https:// URL, got 'nonsense'"),
        (("export", "{dest}", "--url", "http://u:secret@:99"), "--url: expected an http:// or https:// URL"),
        (("export", "{dest}", "--url", "http://127.0.0.1:99999"), "--url: bad port in"),
        (("dump", "{dest}", "--http", "127.0.0.1:8025"), "--http: expected an http:// or https:// URL"),
        (("send", "--from", "a@example.com", "--to", "b@example.com", "--queue", "--url", "nonsense"),
         "--url: expected an http:// or https:// URL"),
        (("export", "{dest}", "--url", "http://127.0.0.1:1", "--user", "u", "--password-file", "/no/such"),
         "--password-file /no/such: No such file"),
    ],
)  # fmt: skip
def test_bad_url_or_password_file_is_one_line_and_leaves_nothing(
    tmp_path: Path, args: tuple[str, ...], text: str
) -> None:
    """A URL urllib cannot use printed its traceback; export had created its destination by
    then (an empty .zip was left behind after a missing --password-file)."""
    dest = tmp_path / "out.zip"
    r = run(*(a.format(dest=dest) for a in args))
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("postroom: " + text) and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "secret" not in r.stderr
    assert not dest.exists()


@pytest.mark.parametrize("name", ["out.zip", "out.mbox", "maildir", "dumped"])
def test_an_export_from_a_server_that_cannot_be_reached_leaves_nothing(tmp_path: Path, name: str) -> None:
    """The destination is made once the first page is read: an empty .zip, an empty mbox or
    a Maildir tree was left behind by a server that was down (or refused the login)."""
    with socket.socket() as s:  # bound, not listening: connection refused
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        dest = tmp_path / name
        r = (
            run("dump", str(dest), "--http", url)
            if name == "dumped"
            else run("export", str(dest), "--url", url)
        )
    assert r.returncode == 1, r.stderr
    assert "cannot reach" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert list(tmp_path.iterdir()) == []


def _fetch_config(tmp_path: Path, port: int, protocol: str = "imap") -> Path:
    config = tmp_path / "fetch.toml"
    config.write_text(
        f'[fetch.accounts.work]\nprotocol = "{protocol}"\nhost = "127.0.0.1"\nport = {port}\n'
        'user = "me"\npassword_env = "FETCH_TEST_PASSWORD"\ntls = "none"\n'
    )
    return config


def _fetch(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "postroom", "fetch", "--all", "--config", str(config), *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, "FETCH_TEST_PASSWORD": "wrong"},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("state", "text"),
    [("not-a-database", "file is not a database"), ("/proc/no-such-dir/state", "cannot create /proc/no-such-dir")],
)  # fmt: skip
def test_fetch_state_file_that_cannot_be_used(tmp_path: Path, state: str, text: str) -> None:
    if not state.startswith("/"):
        (tmp_path / state).write_bytes(b"\xff" * 4096)  # a sqlite3.DatabaseError traceback before
        state = str(tmp_path / state)
    r = _fetch(_fetch_config(tmp_path, 1), "--state", state)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"postroom: sync state file {state}: {text}"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_fetch_with_a_wrong_password_says_what_the_server_said(tmp_path: Path, protocol: str) -> None:
    users = tmp_path / "users"
    users.write_text("me:right\n")
    with running_server(auth_file=str(users)) as s:
        r = _fetch(
            _fetch_config(tmp_path, s.addr(protocol)[1], protocol),
            "--into", "127.0.0.1:1", "--state", str(tmp_path / "state"),
        )  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith(f"postroom fetch: login as 'me' refused by 127.0.0.1:{s.addr(protocol)[1]}: ")
    assert "invalid user name or password" in r.stderr and "b'" not in r.stderr  # the reply, not its repr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_settings_file_that_is_a_directory_or_a_pipe_is_not_called_missing(tmp_path: Path) -> None:
    pipe = tmp_path / "users"
    os.mkfifo(pipe)  # what `--ui-auth-file <(...)` hands over
    for path, text in ((tmp_path, f"{tmp_path} is a directory"), (pipe, f"{pipe} is not a regular file")):
        r = run("serve", "--smtp", "127.0.0.1:0", *OFF, "--db", ":memory:", "--smtp-auth-file", str(path))
        assert r.returncode == 2
        assert r.stderr.strip() == f"postroom: --smtp-auth-file: {text}"


def test_a_database_written_by_a_newer_postroom_is_refused_in_one_line(tmp_path: Path) -> None:
    """Since SQLite 0021 the writer keeps the folder counts (no trigger does): an older
    postroom writing such a file would leave them wrong for good, so it refuses the file."""
    import sqlite3

    from postroom.store.sqlite_schema import apply_migrations

    db = tmp_path / "mail.db"
    conn = sqlite3.connect(str(db), isolation_level=None)
    apply_migrations(conn)
    newest = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.execute(f"PRAGMA user_version={newest + 1}")
    conn.close()
    r = run("serve", "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0", *OFF[2:], "--db", str(db))
    assert r.returncode != 0
    assert r.stderr.strip() == (
        f"postroom: the database's schema is version {newest + 1}, newer than this postroom knows "
        f"({newest}): it was written by a newer postroom; run that one (or a copy of the file)"
    ), r.stderr
