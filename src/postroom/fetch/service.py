"""Fetch accounts inside ``postroom serve`` (``--fetch-config FILE``).

The accounts of the file are synced by a :class:`~postroom.fetch.watch.Watcher` in one
background thread, into this server's own IMAP listener (as ``postroom fetch --watch``
does from outside): IDLE where the server offers it, every ``--fetch-interval`` seconds
anyway. :class:`FetchService` keeps each account's status for the API
(``/api/v1/fetch/accounts``, :mod:`postroom.web.api_fetch`) and the UI: what it is doing,
its last sync, how many messages it copied, its last error. Passwords never leave
:class:`~postroom.fetch.accounts.Account`: the status names host, user and folders only.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .accounts import Account, load_accounts
from .imap_sync import FetchError, LocalTarget, Report
from .watch import Watcher

__all__ = ["FetchService", "build"]

log = logging.getLogger(__name__)


@dataclass
class _Status:
    syncing: bool = False
    last_sync: float = 0.0  # when the last sync ended (epoch seconds), 0: never
    last_fetched: int = 0
    fetched_total: int = 0
    flags_mirrored_total: int = 0
    last_error: str = ""
    last_error_at: float = 0.0
    syncs: int = 0


class FetchService:
    def __init__(self, accounts: dict[str, Account], state_path: Path | None, interval: float) -> None:
        self.accounts = accounts
        self.state_path, self.interval = state_path, interval
        self.status = {name: _Status() for name in accounts}
        self.lock = threading.Lock()
        self.watcher: Watcher | None = None
        self.thread: threading.Thread | None = None

    def start(self, imap_host: str, imap_port: int) -> None:
        host = "127.0.0.1" if imap_host in ("0.0.0.0", "", "::") else imap_host
        target = LocalTarget(host, imap_port)
        self.watcher = Watcher(
            list(self.accounts.values()), target, self.state_path, self.interval, self._report, self._started
        )
        self.thread = threading.Thread(target=self._run, name="fetch-accounts", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        assert self.watcher is not None
        try:
            self.watcher.run()
        except Exception:
            log.exception("fetch: the account watcher stopped")

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.thread is not None:
            self.thread.join(timeout=10)

    def _started(self, name: str) -> None:
        with self.lock:
            self.status[name].syncing = True

    def _report(self, r: Report | FetchError) -> None:
        now = time.time()
        with self.lock:
            if isinstance(r, FetchError):
                # which account failed: the one marked syncing (syncs run one at a time)
                name = next((n for n, s in self.status.items() if s.syncing), "")
                if not name:
                    return
                st = self.status[name]
                st.last_error, st.last_error_at = str(r), now
                log.warning("fetch %s: %s", name, r)
            else:
                name = r.account
                st = self.status[name]
                st.last_fetched = r.fetched
                st.fetched_total += r.fetched
                st.flags_mirrored_total += r.flags_mirrored
                st.last_error = ""
                if r.fetched:
                    log.info("fetch %s: %d new messages", name, r.fetched)
            st.syncing = False
            st.last_sync = now
            st.syncs += 1

    def sync_now(self, name: str) -> bool:
        """Ask for a sync of account ``name`` at once; False when there is no such account."""
        if name not in self.accounts or self.watcher is None:
            return False
        self.watcher.sync_now(name)
        return True

    def describe(self) -> list[dict[str, Any]]:
        """Each account's settings (no secret) and status, for the API."""
        out = []
        with self.lock:
            for name, acc in sorted(self.accounts.items()):
                st = self.status[name]
                out.append(
                    {
                        "Name": name,
                        "Protocol": acc.protocol,
                        "Host": acc.host,
                        "Port": acc.port,
                        "TLS": acc.tls,
                        "User": acc.user,
                        "Auth": "oauth2" if acc.oauth2_token else "password",
                        "Folders": list(acc.folders),
                        "Mailbox": acc.mailbox,
                        "Idle": bool(self.watcher and acc.protocol == "imap" and self.watcher.idle(name)),
                        "Syncing": st.syncing,
                        "Syncs": st.syncs,
                        "LastSync": _iso(st.last_sync),
                        "LastFetched": st.last_fetched,
                        "FetchedTotal": st.fetched_total,
                        "FlagsMirroredTotal": st.flags_mirrored_total,
                        "LastError": st.last_error,
                        "LastErrorAt": _iso(st.last_error_at),
                    }
                )
        return out


def _iso(t: float) -> str | None:
    if not t:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def build(path: str, state: str, interval: float) -> FetchService:
    """The service for the accounts of the TOML file at ``path``.

    Raises:
        ConfigError: the file or an account in it is bad (one line naming it).
    """
    return FetchService(load_accounts(path), Path(state) if state else None, max(interval, 1.0))
