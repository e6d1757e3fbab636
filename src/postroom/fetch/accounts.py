"""Fetch accounts (``[fetch.accounts.NAME]`` in the config file) and the sync state file.

An account names a remote server (or a provider ``preset``), how to log in, which folders
to fetch and into which local postroom mailbox::

    [fetch.accounts.work]
    preset = "gmail"                 # or host/port/tls
    user = "me@gmail.com"
    password_env = "GMAIL_APP_PASSWORD"   # or password_file, oauth2_token_env, oauth2_token_file
    folders = ["INBOX", "\\\\Sent"]      # names, or special-use attributes (RFC 6154)
    mailbox = "me@gmail.com"         # local mailbox (default: user)
    protocol = "imap"                # or "pop3" (then folders is INBOX only)
    delete = false                   # POP3 only: delete after the local copy is committed
    flags = "pull"                   # or "both": local flag changes are stored on the server too
    expunge = false                  # IMAP: a message expunged on the server goes locally too

The state (per account and folder: UIDVALIDITY, the highest UID fetched, the remote
HIGHESTMODSEQ last mirrored, and for each fetched message its remote UID, local UID and
flags; the one message being copied; for POP3 the UIDLs fetched) lives in an SQLite file,
committed after every message, so a run that is killed resumes where it stopped and a
re-run adds no duplicate.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .. import providers
from ..config import ConfigError

__all__ = ["Account", "State", "default_state_path", "load_accounts"]

Tls = Literal["tls", "starttls", "none"]


@dataclass(frozen=True)
class Account:
    name: str
    protocol: Literal["imap", "pop3"]
    host: str
    port: int
    tls: Tls
    user: str
    password: str
    oauth2_token: str
    folders: tuple[str, ...]
    mailbox: str
    delete: bool
    cafile: str
    verify: bool
    provider: providers.Provider | None
    push_flags: bool = False  # flags = "both": local flag changes are stored on the server too
    expunge: bool = False  # messages expunged on the server are expunged from the local copy (IMAP)


def _secret(raw: dict[str, Any], key: str, name: str) -> str:
    env_key, file_key = f"{key}_env", f"{key}_file"
    if raw.get(file_key):
        try:
            return Path(str(raw[file_key])).read_text().splitlines()[0]
        except (OSError, IndexError):
            raise ConfigError(f"fetch account {name}: cannot read {file_key} {raw[file_key]}") from None
    if raw.get(env_key):
        var = str(raw[env_key])
        if var not in os.environ:
            raise ConfigError(f"fetch account {name}: environment variable {var} is not set")
        return os.environ[var]
    if raw.get(key):
        raise ConfigError(f"fetch account {name}: put the {key} in {env_key} or {file_key}, not in the file")
    return ""


def _account(name: str, raw: dict[str, Any]) -> Account:
    protocol = str(raw.get("protocol", "imap")).lower()
    if protocol not in ("imap", "pop3"):
        raise ConfigError(f"fetch account {name}: protocol must be imap or pop3, not {protocol!r}")
    provider = None
    host, port, tls = str(raw.get("host", "")), raw.get("port"), raw.get("tls")
    if raw.get("preset"):
        try:
            provider = providers.get(str(raw["preset"]))
        except providers.UnknownProvider as e:
            raise ConfigError(f"fetch account {name}: {e}") from None
        ep = provider.imap if protocol == "imap" else provider.pop3
        if ep is None:
            raise ConfigError(f"fetch account {name}: preset {provider.key} has no {protocol.upper()} server")
        host = host or ep.host
        port = port or ep.port
        tls = tls or ep.tls
    if not host:
        raise ConfigError(f"fetch account {name}: give host (or a preset)")
    tls = str(tls or "tls")
    if tls not in ("tls", "starttls", "none"):
        raise ConfigError(f"fetch account {name}: tls must be tls, starttls or none, not {tls!r}")
    default_port = {("imap", "tls"): 993, ("pop3", "tls"): 995, ("imap", "starttls"): 143,
                    ("pop3", "starttls"): 110, ("imap", "none"): 143, ("pop3", "none"): 110}  # fmt: skip
    user = str(raw.get("user", ""))
    if not user:
        raise ConfigError(f"fetch account {name}: give user")
    password = _secret(raw, "password", name)
    token = _secret(raw, "oauth2_token", name)
    if not (password or token):
        raise ConfigError(f"fetch account {name}: give password_env, password_file or oauth2_token_env")
    folders = raw.get("folders", ["INBOX"])
    if isinstance(folders, str) or not all(isinstance(f, str) for f in folders):
        raise ConfigError(f"fetch account {name}: folders must be a list of names")
    if protocol == "pop3":
        folders = ["INBOX"]
    flags = str(raw.get("flags", "pull")).lower()
    if flags not in ("pull", "both"):
        raise ConfigError(f"fetch account {name}: flags must be pull or both, not {flags!r}")
    return Account(
        name=name, protocol=protocol, host=host, port=int(port or default_port[(protocol, tls)]),  # type: ignore[arg-type]
        tls=tls, user=user, password=password, oauth2_token=token, folders=tuple(folders),  # type: ignore[arg-type]
        mailbox=str(raw.get("mailbox") or user).lower(), delete=bool(raw.get("delete", False)),
        cafile=str(raw.get("cafile", "")), verify=not raw.get("insecure", False), provider=provider,
        push_flags=flags == "both" and protocol == "imap",
        expunge=bool(raw.get("expunge", False)) and protocol == "imap",
    )  # fmt: skip


def load_accounts(path: str) -> dict[str, Account]:
    """Every ``[fetch.accounts.NAME]`` table of the TOML file at ``path``.

    Raises:
        ConfigError: unreadable file or a bad account (the text names it).
    """
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"config file {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: {e}") from None
    tables = data.get("fetch", {}).get("accounts", {})
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"config file {path}: no [fetch.accounts.NAME] tables")
    return {name: _account(name, raw) for name, raw in tables.items()}


def default_state_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "postroom" / "fetch-state.sqlite"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS folder (
    account TEXT NOT NULL, folder TEXT NOT NULL, uidvalidity INTEGER NOT NULL,
    last_uid INTEGER NOT NULL, local_folder TEXT NOT NULL, local_uidvalidity INTEGER NOT NULL,
    PRIMARY KEY (account, folder));
CREATE TABLE IF NOT EXISTS message (
    account TEXT NOT NULL, folder TEXT NOT NULL, uid INTEGER NOT NULL,
    local_uid INTEGER NOT NULL, flags TEXT NOT NULL, PRIMARY KEY (account, folder, uid));
CREATE TABLE IF NOT EXISTS pop3 (
    account TEXT NOT NULL, uidl TEXT NOT NULL, PRIMARY KEY (account, uidl));
CREATE TABLE IF NOT EXISTS pending (
    account TEXT NOT NULL, folder TEXT NOT NULL, uid INTEGER NOT NULL,
    local_min INTEGER NOT NULL, PRIMARY KEY (account, folder));
CREATE TABLE IF NOT EXISTS modseq (
    account TEXT NOT NULL, folder TEXT NOT NULL, highest INTEGER NOT NULL,
    PRIMARY KEY (account, folder));
CREATE TABLE IF NOT EXISTS gmail (
    account TEXT NOT NULL, folder TEXT NOT NULL, uid INTEGER NOT NULL,
    msgid INTEGER NOT NULL, thrid INTEGER NOT NULL, labels TEXT NOT NULL,
    PRIMARY KEY (account, folder, uid));
CREATE INDEX IF NOT EXISTS gmail_msgid ON gmail (account, msgid);
"""


class State:
    """The sync state file; every change is committed at once (a crash loses nothing)."""

    def __init__(self, path: Path) -> None:
        """Raises ConfigError (one line naming ``path``) when it cannot be the state file."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"sync state file {path}: cannot create {e.filename}: {e.strerror}") from None
        try:
            self.db = sqlite3.connect(str(path), isolation_level=None, timeout=30)
        except sqlite3.Error as e:
            raise ConfigError(f"sync state file {path}: {e}") from None
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            # a commit survives the process being killed at any point (WAL); only a power loss
            # may drop the last few, which then are fetched again (two fsyncs a message cost
            # more than the copy itself)
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            self.db.close()
            raise ConfigError(f"sync state file {path}: {e}") from None

    def folder(self, account: str, folder: str) -> tuple[int, int, str, int] | None:
        row = self.db.execute(
            "SELECT uidvalidity, last_uid, local_folder, local_uidvalidity FROM folder WHERE account=? AND folder=?",
            (account, folder),
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), str(row[2]), int(row[3]))

    def reset_folder(
        self, account: str, folder: str, uidvalidity: int, local_folder: str, local_uv: int
    ) -> None:
        with self.db:
            self.db.execute("BEGIN")
            for table in ("message", "pending", "modseq", "gmail"):
                self.db.execute(f"DELETE FROM {table} WHERE account=? AND folder=?", (account, folder))
            self.db.execute(
                "INSERT OR REPLACE INTO folder VALUES (?, ?, ?, 0, ?, ?)",
                (account, folder, uidvalidity, local_folder, local_uv),
            )

    def appending(self, account: str, folder: str, uid: int, local_min: int) -> None:
        """Remember, before the local APPEND, that remote ``uid`` is being copied and that its
        copy will get a local UID of at least ``local_min``: if the run dies between the
        APPEND and :meth:`fetched`, the next run finds that copy instead of adding another."""
        self.db.execute(
            "INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?)", (account, folder, uid, local_min)
        )

    def pending(self, account: str, folder: str) -> tuple[int, int] | None:
        row = self.db.execute(
            "SELECT uid, local_min FROM pending WHERE account=? AND folder=?", (account, folder)
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def highest_modseq(self, account: str, folder: str) -> int:
        row = self.db.execute(
            "SELECT highest FROM modseq WHERE account=? AND folder=?", (account, folder)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def set_highest_modseq(self, account: str, folder: str, highest: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO modseq VALUES (?, ?, ?)", (account, folder, highest))

    def fetched(
        self,
        account: str,
        folder: str,
        uid: int,
        local_uid: int,
        flags: str,
        gmail: tuple[int, int, tuple[str, ...]] | None = None,
    ) -> None:
        """Record a copy made (with Gmail's X-GM-MSGID, X-GM-THRID and labels, if any)."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM pending WHERE account=? AND folder=?", (account, folder))
            self.db.execute(
                "INSERT OR REPLACE INTO message VALUES (?, ?, ?, ?, ?)",
                (account, folder, uid, local_uid, flags),
            )
            self.db.execute(
                "UPDATE folder SET last_uid = MAX(last_uid, ?) WHERE account=? AND folder=?",
                (uid, account, folder),
            )
            if gmail is not None:
                msgid, thrid, labels = gmail
                self.db.execute(
                    "INSERT OR REPLACE INTO gmail VALUES (?, ?, ?, ?, ?, ?)",
                    (account, folder, uid, msgid, thrid, json.dumps(list(labels))),
                )

    def messages(self, account: str, folder: str) -> dict[int, tuple[int, str]]:
        rows = self.db.execute(
            "SELECT uid, local_uid, flags FROM message WHERE account=? AND folder=?", (account, folder)
        )
        return {int(u): (int(lu), str(f)) for u, lu, f in rows}

    def set_flags(self, account: str, folder: str, uid: int, flags: str) -> None:
        self.db.execute(
            "UPDATE message SET flags=? WHERE account=? AND folder=? AND uid=?", (flags, account, folder, uid)
        )

    def forget(self, account: str, folder: str, uids: list[int]) -> None:
        """Drop the records of remote ``uids`` (expunged on the server, and locally)."""
        with self.db:
            self.db.execute("BEGIN")
            for table in ("message", "gmail"):
                self.db.executemany(
                    f"DELETE FROM {table} WHERE account=? AND folder=? AND uid=?",
                    [(account, folder, u) for u in uids],
                )

    # -- Gmail (X-GM-EXT-1, fetch/gmail.py) -------------------------------------------------
    def gmail_labels(self, account: str, folder: str) -> dict[int, tuple[str, ...]]:
        rows = self.db.execute(
            "SELECT uid, labels FROM gmail WHERE account=? AND folder=?", (account, folder)
        )
        return {int(u): tuple(json.loads(labels)) for u, labels in rows}

    def gmail_set_labels(self, account: str, folder: str, uid: int, labels: tuple[str, ...]) -> None:
        self.db.execute(
            "UPDATE gmail SET labels=? WHERE account=? AND folder=? AND uid=?",
            (json.dumps(list(labels)), account, folder, uid),
        )

    def gmail_copy(self, account: str, msgid: int, not_in: str) -> tuple[str, int] | None:
        """(local folder, local UID) of a copy of Gmail message ``msgid`` made from another
        remote folder than ``not_in``, or None."""
        row = self.db.execute(
            "SELECT f.local_folder, m.local_uid FROM gmail g "
            "JOIN message m ON m.account = g.account AND m.folder = g.folder AND m.uid = g.uid "
            "JOIN folder f ON f.account = g.account AND f.folder = g.folder "
            "WHERE g.account=? AND g.msgid=? AND g.folder != ? AND m.local_uid > 0 LIMIT 1",
            (account, msgid, not_in),
        ).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))

    def pop3_seen(self, account: str) -> set[str]:
        return {str(r[0]) for r in self.db.execute("SELECT uidl FROM pop3 WHERE account=?", (account,))}

    def pop3_fetched(self, account: str, uidl: str) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM pending WHERE account=? AND folder LIKE 'pop3:%'", (account,))
            self.db.execute("INSERT OR IGNORE INTO pop3 VALUES (?, ?)", (account, uidl))

    def pop3_appending(self, account: str, uidl: str, local_min: int) -> None:
        """:meth:`appending` for a POP3 message (a POP3 account has no folders: the key is
        ``pop3:UIDL``)."""
        self.db.execute("DELETE FROM pending WHERE account=? AND folder LIKE 'pop3:%'", (account,))
        self.db.execute("INSERT INTO pending VALUES (?, ?, 0, ?)", (account, f"pop3:{uidl}", local_min))

    def pop3_pending(self, account: str) -> tuple[str, int] | None:
        row = self.db.execute(
            "SELECT folder, local_min FROM pending WHERE account=? AND folder LIKE 'pop3:%'", (account,)
        ).fetchone()
        return None if row is None else (str(row[0])[5:], int(row[1]))

    def close(self) -> None:
        self.db.close()
