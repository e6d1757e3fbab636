"""Fetch accounts inside `postroom serve` (--fetch-config) against a real Dovecot: mail arrives
without any command (IMAP IDLE), the API lists each account's status and error without its
password, and a POST syncs an account now (under the cross-site contract)."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import running_dovecot, running_server
from tests.interop.test_fetch_dovecot import account, local_folder, put, remote

pytestmark = pytest.mark.interop


def api(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        url, method=method, headers=headers or {}, data=b"" if method == "POST" else None
    )
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def until(what: str, check: Any, bound: float = 20.0) -> None:
    end = time.monotonic() + bound
    while not check():
        assert time.monotonic() < end, f"{what}: not within {bound} s"
        time.sleep(0.1)


def test_accounts_fetched_inside_serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("ALICE_PW", "secret")
    monkeypatch.setenv("BOB_PW", "secret")
    monkeypatch.setenv("WRONG_PW", "not-the-Password-42")
    with running_dovecot() as (imap_port, pop3_port):
        a = remote(imap_port, "alice@example.org")
        put(a, "INBOX", "first")
        put(a, "INBOX", "second", "\\Seen")
        config = tmp_path / "fetch.toml"
        config.write_text(
            account("alice", imap_port, "alice@example.org", "ALICE_PW")
            + account("bob", pop3_port, "bob@example.org", "BOB_PW", protocol="pop3")
            + account("broken", imap_port, "alice@example.org", "WRONG_PW", mailbox="broken@example.org")
        )
        settings = {"pop3": "off", "fetch_config": str(config), "fetch_state": str(tmp_path / "state.sqlite"),
                    "fetch_interval": 600.0}  # fmt: skip
        with running_server(**settings) as s:
            local = s.addr("imap")[1]
            accounts = f"{s.http_url}/api/v2/fetch/accounts"
            until("the first sync", lambda: len(local_folder(local, "alice@example.org", "INBOX")) == 2)
            assert local_folder(local, "alice@example.org", "INBOX") == {"first": "", "second": "\\Seen"}

            def status() -> dict[str, Any]:
                code, body = api(accounts)
                assert code == 200
                return {acc["Name"]: acc for acc in body["Accounts"]}

            until("every account's first sync", lambda: all(acc["Syncs"] >= 1 for acc in status().values()))
            st = status()
            assert st["alice"]["FetchedTotal"] == 2 and st["alice"]["LastError"] == ""
            assert st["alice"]["LastSync"] and st["alice"]["Auth"] == "password"
            assert "refused" in st["broken"]["LastError"] and st["broken"]["LastErrorAt"]
            _, raw = api(accounts)
            assert "not-the-Password-42" not in json.dumps(raw) and "secret" not in json.dumps(raw)

            # new mail comes by IDLE (the next poll would be in 600 s)
            put(a, "INBOX", "third")
            until("IDLE delivery", lambda: "third" in local_folder(local, "alice@example.org", "INBOX"), 10)

            # POP3 has no IDLE: "sync now" through the API, under the cross-site contract
            b = remote(imap_port, "bob@example.org")
            put(b, "INBOX", "for bob")
            b.logout()
            sync = f"{accounts}/bob/sync"
            assert api(sync, "POST")[0] == 415  # a form post from another site cannot do this
            assert api(sync, "POST", {"X-Postroom-Request": "1"}) == (202, {"Queued": "bob"})
            until("sync now", lambda: "for bob" in local_folder(local, "bob@example.org", "INBOX"))
            assert api(f"{accounts}/nobody/sync", "POST", {"X-Postroom-Request": "1"})[0] == 404
        a.logout()
    assert "not-the-Password-42" not in caplog.text


def test_fetch_config_errors_are_one_line(tmp_path: Path) -> None:
    from postroom.config import ConfigError, Settings

    with pytest.raises(ConfigError, match="--fetch-config: no such file"):
        Settings(fetch_config=str(tmp_path / "missing.toml")).validate()
    (tmp_path / "f.toml").write_text("")
    with pytest.raises(ConfigError, match="needs the IMAP listener"):
        Settings(fetch_config=str(tmp_path / "f.toml"), imap="off").validate()
