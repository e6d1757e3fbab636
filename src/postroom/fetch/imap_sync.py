"""Copy a real inbox into postroom: IMAP (incremental by UIDVALIDITY and UID, flags mirrored)
and POP3 (by UIDL), delivered into the local postroom over IMAP APPEND.

Why APPEND into postroom's own IMAP server: it keeps what SMTP cannot carry (the folder,
the flags, the original arrival time as INTERNALDATE), works on every store backend, and
its APPENDUID (RFC 4315) gives the local UID that flag changes are later mirrored to.

Per folder, one run:

1. EXAMINE the remote folder (read-only: fetching never changes the remote \\Seen flags);
   a new UIDVALIDITY (RFC 3501 2.3.1.1) starts the folder over.
2. ``UID SEARCH UID last+1:*`` and fetch those messages in batches with ``BODY.PEEK[]``,
   each APPENDed locally and recorded in the state file at once: a killed run resumes at
   the next message, and a re-run adds nothing.
3. Mirror flag changes of messages fetched earlier (``UID FETCH 1:last (FLAGS)``) to the
   local copies with ``UID STORE``.

Errors: :class:`FetchError` with one line naming the likely cause (login refused with the
provider's hint, TLS mode, server unreachable).
"""

from __future__ import annotations

import imaplib
import poplib
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .accounts import Account, State

__all__ = ["FetchError", "LocalTarget", "Report", "sync_account"]

# Messages fetched per UID FETCH (a batch is held in memory at once).
BATCH = 25
# Flags that are session state, not message state (RFC 3501 2.3.2), never mirrored.
_SESSION_FLAGS = {"\\recent"}
_APPENDUID = re.compile(rb"APPENDUID (\d+) (\d+)")
_FETCH_ITEM = re.compile(rb"UID (\d+)|FLAGS \(([^)]*)\)|INTERNALDATE \"([^\"]*)\"")
_SPECIAL = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")


class FetchError(Exception):
    """A fetch failed; ``str()`` is one line naming the likely cause."""


@dataclass(frozen=True)
class LocalTarget:
    """The running postroom's IMAP listener, and the password its logins need (any by default)."""

    host: str = "127.0.0.1"
    port: int = 1143
    password: str = "postroom-fetch"


@dataclass
class Report:
    account: str
    fetched: int = 0
    flags_mirrored: int = 0
    folders: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _ctx(acc: Account) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=acc.cafile or None)
    if not acc.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _hint(acc: Account, reply: str) -> str:
    if acc.provider and acc.provider.hint:
        return f"; {acc.provider.hint}"
    low = reply.lower()
    if (
        "application-specific" in low
        or "app password" in low
        or "authorization code" in low
        or "web login" in low
    ):
        return "; the provider wants an app password (or OAuth2 token), not the account password"
    if "imap" in low and ("disabled" in low or "not enabled" in low):
        return "; IMAP access is switched off in the account's settings"
    return ""


def _connect_error(acc: Account, e: BaseException) -> FetchError:
    where = f"{acc.host}:{acc.port}"
    if isinstance(e, ssl.SSLCertVerificationError):
        return FetchError(
            f"the certificate of {where} is not trusted ({e.verify_message}); set cafile, or insecure = true for a test server"
        )
    if isinstance(e, ssl.SSLError):
        if "WRONG_VERSION_NUMBER" in str(e) or "record layer" in str(e):
            return FetchError(
                f'TLS handshake with {where} failed: it speaks plain text there; use tls = "starttls" (or a TLS port)'
            )
        return FetchError(f"TLS with {where} failed: {e.reason or e}")
    if isinstance(e, socket.gaierror):
        return FetchError(f"cannot resolve host {acc.host!r}")
    if isinstance(e, ConnectionRefusedError):
        return FetchError(f"connection refused by {where}: nothing listens there (wrong port?)")
    if isinstance(e, TimeoutError):
        return FetchError(f'{where} did not answer in time (firewall, or a TLS port: try tls = "tls")')
    return FetchError(f"cannot connect to {where}: {e}")


def _remote_imap(acc: Account) -> imaplib.IMAP4:
    try:
        if acc.tls == "tls":
            conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(acc.host, acc.port, ssl_context=_ctx(acc), timeout=60)
        else:
            conn = imaplib.IMAP4(acc.host, acc.port, timeout=60)
            if acc.tls == "starttls":
                conn.starttls(ssl_context=_ctx(acc))
    except (OSError, imaplib.IMAP4.error) as e:
        raise _connect_error(acc, e) from None
    try:
        if acc.oauth2_token:
            sasl = f"user={acc.user}\x01auth=Bearer {acc.oauth2_token}\x01\x01".encode()
            conn.authenticate("XOAUTH2", lambda _: sasl)
        else:
            conn.login(acc.user, acc.password)
    except imaplib.IMAP4.error as e:
        reply = str(e)
        conn.shutdown()
        raise FetchError(
            f"login as {acc.user!r} refused by {acc.host}:{acc.port}: {reply}{_hint(acc, reply)}"
        ) from None
    return conn


def _local_imap(target: LocalTarget, mailbox: str) -> imaplib.IMAP4:
    try:
        conn = imaplib.IMAP4(target.host, target.port, timeout=60)
        conn.login(mailbox, target.password)
    except (OSError, imaplib.IMAP4.error) as e:
        raise FetchError(
            f"cannot log in to postroom's IMAP at {target.host}:{target.port} as {mailbox}: {e}"
        ) from None
    return conn


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(typ: str, data: Sequence[Any], what: str) -> list[Any]:
    if typ != "OK":
        raise FetchError(
            f"{what}: {b' '.join(d for d in data if isinstance(d, bytes)).decode('utf-8', 'replace')}"
        )
    return list(data)


def _list_folders(conn: imaplib.IMAP4) -> list[tuple[set[str], str]]:
    typ, data = conn.list()
    out: list[tuple[set[str], str]] = []
    for line in _check(typ, data, "LIST"):
        if not isinstance(line, bytes):
            continue
        m = re.match(rb'\(([^)]*)\) (?:"[^"]*"|NIL) (.*)$', line)
        if not m:
            continue
        attrs = {a.decode().lower() for a in m.group(1).split()}
        name = m.group(2).decode("utf-8", "replace")
        if name.startswith('"') and name.endswith('"'):
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out.append((attrs, name))
    return out


def resolve_folders(conn: imaplib.IMAP4, wanted: tuple[str, ...]) -> list[str]:
    """Folder names for ``wanted``: names as given, ``\\Sent`` and the like by their
    special-use attribute (RFC 6154), falling back to the usual name."""
    folders = _list_folders(conn)
    out: list[str] = []
    for w in wanted:
        if w.lower() in {s.lower() for s in _SPECIAL}:
            match = next((n for attrs, n in folders if w.lower() in attrs), None)
            fallback = next((n for _, n in folders if n.lower() == w[1:].lower()), None)
            if match or fallback:
                out.append(match or fallback)  # type: ignore[arg-type]
        else:
            out.append(w)
    return list(dict.fromkeys(out))


def _status_uidvalidity(conn: imaplib.IMAP4) -> int:
    _, data = conn.response("UIDVALIDITY")
    if not data or data[0] is None:
        raise FetchError("the server sent no UIDVALIDITY")
    return int(data[0])


def _parse_fetch(data: list[object]) -> Iterator[tuple[int, str, str, bytes]]:
    """(uid, flags, internaldate, body) of each message in a UID FETCH answer."""
    for part in data:
        if not isinstance(part, tuple) or len(part) != 2:
            continue
        meta, body = part
        uid, flags, date = 0, "", ""
        for m in _FETCH_ITEM.finditer(meta):
            if m.group(1):
                uid = int(m.group(1))
            elif m.group(2) is not None:
                flags = m.group(2).decode()
            elif m.group(3):
                date = m.group(3).decode()
        if uid:
            yield uid, flags, date, body


def _flags_of(text: str) -> str:
    return " ".join(sorted(f for f in text.split() if f.lower() not in _SESSION_FLAGS))


def _sync_folder(
    acc: Account, remote: imaplib.IMAP4, local: imaplib.IMAP4, state: State, folder: str, report: Report
) -> None:
    _check(*remote.select(_quote(folder), readonly=True), f"EXAMINE {folder}")
    uidvalidity = _status_uidvalidity(remote)
    local_folder = "INBOX" if folder.upper() == "INBOX" else folder
    if local_folder != "INBOX":
        local.create(_quote(local_folder))  # NO [ALREADYEXISTS] is fine
    _check(*local.select(_quote(local_folder)), f"local SELECT {local_folder}")
    local_uv = _status_uidvalidity(local)
    known = state.folder(acc.name, folder)
    if known is None or known[0] != uidvalidity or known[3] != local_uv:
        if known is not None:
            report.notes.append(f"{folder}: UIDVALIDITY changed, fetching it again")
        state.reset_folder(acc.name, folder, uidvalidity, local_folder, local_uv)
        last = 0
    else:
        last = known[1]
    typ, data = remote.uid("SEARCH", f"UID {last + 1}:*")
    found = _check(typ, data, "UID SEARCH")[0] or b""
    uids = [int(u) for u in found.split()]
    uids = sorted(u for u in uids if u > last)  # "N:*" always matches the highest UID
    for i in range(0, len(uids), BATCH):
        batch = ",".join(str(u) for u in uids[i : i + BATCH])
        typ, data = remote.uid("FETCH", batch, "(UID FLAGS INTERNALDATE BODY.PEEK[])")
        for uid, flags, date, body in sorted(
            _parse_fetch(_check(typ, data, "UID FETCH")), key=lambda t: t[0]
        ):
            kept = _flags_of(flags)
            when = f'"{date}"' if date else None
            typ, resp = local.append(_quote(local_folder), f"({kept})" if kept else None, when, body)
            _check(typ, resp, f"local APPEND to {local_folder}")
            m = _APPENDUID.search(b" ".join(r for r in resp if isinstance(r, bytes)))
            state.fetched(acc.name, folder, uid, int(m.group(2)) if m else 0, kept)
            report.fetched += 1
    _mirror_flags(acc, remote, local, state, folder, report)
    report.folders.append(folder)


def _mirror_flags(
    acc: Account, remote: imaplib.IMAP4, local: imaplib.IMAP4, state: State, folder: str, report: Report
) -> None:
    known = state.messages(acc.name, folder)
    if not known:
        return
    typ, data = remote.uid("FETCH", f"1:{max(known)}", "(UID FLAGS)")
    current: dict[int, str] = {}
    for line in _check(typ, data, "UID FETCH FLAGS"):
        raw = line[0] if isinstance(line, tuple) else line
        if not isinstance(raw, bytes):
            continue
        uid_m = re.search(rb"UID (\d+)", raw)
        flags_m = re.search(rb"FLAGS \(([^)]*)\)", raw)
        if uid_m and flags_m:
            current[int(uid_m.group(1))] = _flags_of(flags_m.group(1).decode())
    for uid, (local_uid, flags) in known.items():
        now = current.get(uid)
        if now is None or now == flags or not local_uid:
            continue  # expunged remotely (kept locally), unchanged, or local UID unknown
        _check(*local.uid("STORE", str(local_uid), "FLAGS", f"({now})"), "local UID STORE")
        state.set_flags(acc.name, folder, uid, now)
        report.flags_mirrored += 1


def _sync_imap(acc: Account, target: LocalTarget, state: State, report: Report) -> None:
    remote = _remote_imap(acc)
    local = _local_imap(target, acc.mailbox)
    try:
        for folder in resolve_folders(remote, acc.folders):
            _sync_folder(acc, remote, local, state, folder, report)
    except (imaplib.IMAP4.error, OSError) as e:
        raise FetchError(f"{acc.host}:{acc.port}: {e}") from None
    finally:
        for conn in (remote, local):
            try:
                conn.logout()
            except (imaplib.IMAP4.error, OSError):
                pass


def _sync_pop3(acc: Account, target: LocalTarget, state: State, report: Report) -> None:
    try:
        if acc.tls == "tls":
            pop: poplib.POP3 = poplib.POP3_SSL(acc.host, acc.port, context=_ctx(acc), timeout=60)
        else:
            pop = poplib.POP3(acc.host, acc.port, timeout=60)
            if acc.tls == "starttls":
                pop.stls(context=_ctx(acc))
    except (OSError, poplib.error_proto) as e:
        raise _connect_error(acc, e) from None
    try:
        pop.user(acc.user)
        pop.pass_(acc.password)
    except poplib.error_proto as e:
        reply = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        pop.close()
        raise FetchError(
            f"login as {acc.user!r} refused by {acc.host}:{acc.port}: {reply}{_hint(acc, reply)}"
        ) from None
    local = _local_imap(target, acc.mailbox)
    try:
        seen = state.pop3_seen(acc.name)
        _, listing, _ = pop.uidl()
        for entry in listing:
            num, _, uidl = entry.decode().partition(" ")
            if uidl in seen:
                continue
            _, lines, _ = pop.retr(int(num))
            body = b"\r\n".join(lines) + b"\r\n"
            _check(*local.append("INBOX", None, None, body), "local APPEND to INBOX")
            state.pop3_fetched(acc.name, uidl)
            report.fetched += 1
            if acc.delete:  # only after the local copy is committed (APPEND answered OK)
                pop.dele(int(num))
        pop.quit()
    except (poplib.error_proto, OSError, imaplib.IMAP4.error) as e:
        raise FetchError(f"{acc.host}:{acc.port}: {e}") from None
    finally:
        try:
            local.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
    report.folders.append("INBOX")


def sync_account(acc: Account, target: LocalTarget, state: State) -> Report:
    """Fetch what is new in ``acc`` into postroom; mirror flag changes (IMAP).

    Raises:
        FetchError: the account cannot be read or postroom cannot be written.
    """
    report = Report(acc.name)
    if acc.protocol == "pop3":
        _sync_pop3(acc, target, state, report)
    else:
        _sync_imap(acc, target, state, report)
    return report


def watch(accounts: list[Account], target: LocalTarget, state: State, interval: float,
          on_report: Callable[[Report | FetchError], None], stop: Callable[[], bool]) -> None:  # fmt: skip
    """Sync every ``interval`` seconds until ``stop()``; after a failure, back off
    exponentially (up to 10 minutes) for that account."""
    next_at = {a.name: 0.0 for a in accounts}
    delay = {a.name: interval for a in accounts}
    while not stop():
        now = time.monotonic()
        for acc in accounts:
            if now < next_at[acc.name]:
                continue
            try:
                on_report(sync_account(acc, target, state))
                delay[acc.name] = interval
            except FetchError as e:
                on_report(e)
                delay[acc.name] = min(delay[acc.name] * 2, 600.0)
            next_at[acc.name] = time.monotonic() + delay[acc.name]
        time.sleep(min(1.0, interval))
