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

import hashlib
import imaplib
import poplib
import re
import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..providers import client_context
from . import gmail
from .accounts import Account, State

__all__ = ["FetchError", "LocalTarget", "Report", "sync_account"]

# Messages fetched per UID FETCH (a batch is held in memory at once).
BATCH = 25
# Flags that are session state, not message state (RFC 3501 2.3.2), never mirrored.
_SESSION_FLAGS = {"\\recent"}
_APPENDUID = re.compile(rb"APPENDUID (\d+) (\d+)")
_COPYUID = re.compile(rb"COPYUID \d+ \S+ (\d+)")
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
    flags_read: int = 0  # flag states read from the server to find changes
    flags_pushed: int = 0  # local flag changes stored on the server (flags = "both")
    labels_mirrored: int = 0  # Gmail label changes copied to the local tags (X-GM-EXT-1)
    expunged: int = 0  # local copies expunged because the server expunged theirs (expunge = true)
    folders: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _ctx(acc: Account) -> ssl.SSLContext:
    return client_context(acc.cafile, acc.verify)


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


def _reply(e: BaseException) -> str:
    """The server's reply an imaplib or poplib error carries (as bytes), as text."""
    arg = e.args[0] if e.args else ""
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(e)


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
    no_delay(conn)
    try:
        if acc.oauth2_token:
            sasl = f"user={acc.user}\x01auth=Bearer {acc.oauth2_token}\x01\x01".encode()
            conn.authenticate("XOAUTH2", lambda _: sasl)
        else:
            conn.login(acc.user, acc.password)
        # capabilities change at login (Dovecot adds CONDSTORE, QRESYNC, ...): ask again
        typ, dat = conn.capability()
        if typ == "OK" and dat and isinstance(dat[-1], bytes):
            conn.capabilities = tuple(dat[-1].decode("ascii", "replace").upper().split())
    except imaplib.IMAP4.error as e:
        reply = _reply(e)
        conn.shutdown()
        raise FetchError(
            f"login as {acc.user!r} refused by {acc.host}:{acc.port}: {reply}{_hint(acc, reply)}"
        ) from None
    return conn


def no_delay(conn: imaplib.IMAP4) -> None:
    """Send small writes at once: imaplib writes a literal and its closing CRLF separately,
    and with Nagle's algorithm the CRLF waits for the peer's delayed ACK (~40 ms a message)."""
    try:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


def _local_imap(target: LocalTarget, mailbox: str) -> imaplib.IMAP4:
    try:
        conn = imaplib.IMAP4(target.host, target.port, timeout=60)
        no_delay(conn)
        conn.login(mailbox, target.password)
    except (OSError, imaplib.IMAP4.error) as e:
        raise FetchError(
            f"cannot log in to postroom's IMAP at {target.host}:{target.port} as {mailbox}: {_reply(e)}"
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
    for uid, flags, date, body, _ in _parse_fetch_meta(data):
        yield uid, flags, date, body


def _parse_fetch_meta(data: list[object]) -> Iterator[tuple[int, str, str, bytes, bytes]]:
    """:func:`_parse_fetch` and the response data before the body (for the X-GM items)."""
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
            yield uid, flags, date, body, meta


def _flags_of(text: str) -> str:
    return " ".join(sorted(f for f in text.split() if f.lower() not in _SESSION_FLAGS))


def _untagged_int(conn: imaplib.IMAP4, name: str) -> int:
    _, data = conn.response(name)
    try:
        return int(data[0]) if data and data[0] is not None else 0
    except (TypeError, ValueError):
        return 0


def _local_copy(local: imaplib.IMAP4, local_min: int, body: bytes) -> int:
    """The local UID of a message with exactly ``body`` among local UIDs >= ``local_min``
    (the copy a killed run APPENDed without recording it), or 0."""
    typ, data = local.uid("FETCH", f"{local_min}:*", "(UID BODY.PEEK[])")
    for uid, _, _, stored in _parse_fetch(_check(typ, data, "local UID FETCH")):
        if uid >= local_min and stored == body:
            return uid
    return 0


@dataclass
class _Folder:
    """One remote folder being copied, and where its copies go."""

    acc: Account
    remote: imaplib.IMAP4
    local: imaplib.IMAP4
    state: State
    name: str
    local_name: str
    local_next: int  # every later local APPEND gets at least this UID
    qresync: bool = False  # QRESYNC is enabled on the remote connection (RFC 7162)
    gmail: bool = False  # the server offers X-GM-EXT-1 (fetch/gmail.py)
    # after a UIDVALIDITY change: SHA-256 of the bytes of the copies made before it -> their
    # local UIDs, so a message still on the server is matched to its copy, not copied again
    earlier: dict[bytes, list[int]] = field(default_factory=dict)


def _earlier_copies(local: imaplib.IMAP4, local_uids: list[int]) -> dict[bytes, list[int]]:
    out: dict[bytes, list[int]] = {}
    for i in range(0, len(local_uids), 200):
        uid_set = ",".join(str(u) for u in local_uids[i : i + 200])
        typ, data = local.uid("FETCH", uid_set, "(UID BODY.PEEK[])")
        for uid, _, _, body in _parse_fetch(_check(typ, data, "local UID FETCH")):
            out.setdefault(hashlib.sha256(body).digest(), []).append(uid)
    return out


def _append(
    local: imaplib.IMAP4, mailbox: str, flags: str | None, when: str | None, body: bytes, thread_key: str
) -> tuple[str, list[Any]]:
    """APPEND, with postroom's ``X-POSTROOM-THREAD key`` (docs/imap.md) when ``thread_key``
    is set: imaplib's ``append`` takes no extension, so its command is built the same way."""
    if not thread_key:
        typ, resp = local.append(mailbox, flags, when, body)
        return typ, list(resp)
    local.literal = imaplib.MapCRLF.sub(imaplib.CRLF, body)  # type: ignore[attr-defined]  # as append() does
    typ, resp = local._simple_command("APPEND", mailbox, flags, when, "X-POSTROOM-THREAD", _quote(thread_key))  # type: ignore[attr-defined]
    return str(typ), list(resp)


def _copy_local(f: _Folder, uid: int, source: tuple[str, int], kept: str) -> int:
    """COPY the local copy of the same Gmail message from the folder it was copied to
    (one stored message, a delivery in each folder); its local UID here, 0 if it is gone."""
    f.state.appending(f.acc.name, f.name, uid, f.local_next)
    _check(*f.local.select(_quote(source[0]), readonly=True), f"local EXAMINE {source[0]}")
    try:
        f.local.response("COPYUID")  # (drop any earlier one)
        typ, resp = f.local.uid("COPY", str(source[1]), _quote(f.local_name))
        _check(typ, resp, f"local UID COPY to {f.local_name}")
        # imaplib keeps the tagged OK's [COPYUID v src dst] (RFC 4315) as a response code
        code = [r for r in f.local.response("COPYUID")[1] if isinstance(r, bytes)]
    finally:
        _check(*f.local.select(_quote(f.local_name)), f"local SELECT {f.local_name}")
    m = _COPYUID.search(b"COPYUID " + code[-1]) if code else None
    if m is None:
        return 0  # the source copy was expunged locally: copy the message itself
    local_uid = int(m.group(1))
    f.local_next = max(f.local_next, local_uid + 1)
    _check(*f.local.uid("STORE", str(local_uid), "FLAGS", f"({kept})"), "local UID STORE")
    return local_uid


def _copy(
    f: _Folder,
    uid: int,
    flags: str,
    date: str,
    body: bytes,
    pending: tuple[int, int] | None,
    gm: gmail.GmMeta | None = None,
) -> None:
    kept = _flags_of(" ".join([flags, *gmail.flags_from(gm.labels if gm else ())]))
    local_uid = _local_copy(f.local, pending[1], body) if pending and pending[0] == uid else 0
    same = f.earlier.get(hashlib.sha256(body).digest()) if f.earlier and not local_uid else None
    if same:
        local_uid = same.pop(0)
        _check(*f.local.uid("STORE", str(local_uid), "FLAGS", f"({kept})"), "local UID STORE")
    if not local_uid and gm is not None:
        source = f.state.gmail_copy(f.acc.name, gm.msgid, f.name)
        local_uid = _copy_local(f, uid, source, kept) if source else 0
    if not local_uid:
        f.state.appending(f.acc.name, f.name, uid, f.local_next)
        when = f'"{date}"' if date else None
        key = gmail.thread_key(f.acc.host, f.acc.user, gm.thrid) if gm is not None else ""
        typ, resp = _append(f.local, _quote(f.local_name), f"({kept})" if kept else None, when, body, key)
        _check(typ, resp, f"local APPEND to {f.local_name}")
        m = _APPENDUID.search(b" ".join(r for r in resp if isinstance(r, bytes)))
        local_uid = int(m.group(2)) if m else 0
        f.local_next = max(f.local_next, local_uid + 1)
    if gm is not None:
        tags = gmail.tags_from(gm.labels)
        if tags and local_uid:  # (tags belong to the message: a local COPY has them already)
            _check(
                *f.local.uid("STORE", str(local_uid), "X-GM-LABELS.SILENT", gmail.label_arg(tags)),
                "local STORE",
            )
    f.state.fetched(f.acc.name, f.name, uid, local_uid, kept, (gm.msgid, gm.thrid, gm.labels) if gm else None)


def _sync_folder(
    acc: Account,
    remote: imaplib.IMAP4,
    local: imaplib.IMAP4,
    state: State,
    folder: str,
    report: Report,
    qresync: bool = False,
    gm: bool = False,
) -> None:
    # read-only (EXAMINE) unless local flag changes go back to the server
    _check(*remote.select(_quote(folder), readonly=not acc.push_flags), f"SELECT {folder}")
    uidvalidity = _status_uidvalidity(remote)
    highest_modseq = _untagged_int(remote, "HIGHESTMODSEQ")  # sent once CONDSTORE is enabled
    local_folder = "INBOX" if folder.upper() == "INBOX" else folder
    if local_folder != "INBOX":
        local.create(_quote(local_folder))  # NO [ALREADYEXISTS] is fine
    _check(*local.select(_quote(local_folder)), f"local SELECT {local_folder}")
    local_uv = _status_uidvalidity(local)
    f = _Folder(acc, remote, local, state, folder, local_folder, _untagged_int(local, "UIDNEXT"), qresync, gm)
    known = state.folder(acc.name, folder)
    if known is None or known[0] != uidvalidity or known[3] != local_uv:
        if known is not None:
            report.notes.append(f"{folder}: UIDVALIDITY changed, fetching it again")
            if known[3] == local_uv:  # the local copies are still there: match, don't duplicate
                old = sorted(lu for lu, _ in state.messages(acc.name, folder).values() if lu)
                f.earlier = _earlier_copies(local, old)
        state.reset_folder(acc.name, folder, uidvalidity, local_folder, local_uv)
        last = 0
    else:
        last = known[1]
    pending = state.pending(acc.name, folder)
    typ, data = remote.uid("SEARCH", f"UID {last + 1}:*")
    found = _check(typ, data, "UID SEARCH")[0] or b""
    uids = [int(u) for u in found.split()]
    uids = sorted(u for u in uids if u > last)  # "N:*" always matches the highest UID
    for i in range(0, len(uids), BATCH):
        batch = ",".join(str(u) for u in uids[i : i + BATCH])
        items = (
            f"UID FLAGS INTERNALDATE {gmail.ITEMS} BODY.PEEK[]"
            if gm
            else "UID FLAGS INTERNALDATE BODY.PEEK[]"
        )
        typ, data = remote.uid("FETCH", batch, f"({items})")
        for uid, flags, date, body, meta in sorted(
            _parse_fetch_meta(_check(typ, data, "UID FETCH")), key=lambda t: t[0]
        ):
            _copy(f, uid, flags, date, body, pending, gmail.parse_meta(meta) if gm else None)
            report.fetched += 1
    if acc.expunge and last:  # (after a first copy, or a new UIDVALIDITY, none can be gone)
        _mirror_expunges(f, highest_modseq, report)
    _mirror_flags(f, highest_modseq, report)
    report.folders.append(folder)


def _uid_set(text: bytes) -> set[int]:
    """The UIDs of a sequence set such as ``1:3,7`` (ranges taken either way round)."""
    out: set[int] = set()
    for part in text.split(b","):
        lo, _, hi = part.strip().partition(b":")
        if lo.isdigit() and (not hi or hi.isdigit()):
            a, b = int(lo), int(hi or lo)
            out.update(range(min(a, b), max(a, b) + 1))
    return out


def _mirror_expunges(f: _Folder, highest_modseq: int, report: Report) -> None:
    """Expunge the local copies of messages fetched earlier that the server no longer has
    (``expunge = true``). With QRESYNC (RFC 7162 3.2.6) the server names them itself
    (``UID FETCH ... (CHANGEDSINCE m VANISHED)`` since the HIGHESTMODSEQ mirrored last, and
    nothing is asked when it has not moved); without it, the UIDs still there are listed
    (``UID SEARCH``) and the rest of those fetched are gone."""
    acc, state, folder = f.acc, f.state, f.name
    known = state.messages(acc.name, folder)
    if not known:
        return
    since = state.highest_modseq(acc.name, folder) if highest_modseq else 0
    top = max(known)
    if since and f.qresync:
        if since >= highest_modseq:
            return  # an expunge raises HIGHESTMODSEQ: nothing went
        f.remote.response("VANISHED")  # (drop any earlier ones)
        typ, data = f.remote.uid("FETCH", f"1:{top}", f"(UID) (CHANGEDSINCE {since} VANISHED)")
        _check(typ, data, "UID FETCH VANISHED")
        gone: set[int] = set()
        for line in f.remote.response("VANISHED")[1]:
            if isinstance(line, bytes):
                gone |= _uid_set(line.removeprefix(b"(EARLIER)").strip())
    else:
        typ, data = f.remote.uid("SEARCH", f"UID 1:{top}")
        present = {int(u) for u in (_check(typ, data, "UID SEARCH")[0] or b"").split()}
        gone = set(known) - present
    gone &= set(known)
    if not gone:
        return
    local = sorted(known[u][0] for u in gone if known[u][0])
    for i in range(0, len(local), 500):
        uid_set = ",".join(str(u) for u in local[i : i + 500])
        _check(*f.local.uid("STORE", uid_set, "+FLAGS.SILENT", "(\\Deleted)"), "local UID STORE")
        _check(*f.local.uid("EXPUNGE", uid_set), "local UID EXPUNGE")
    state.forget(acc.name, folder, sorted(gone))
    report.expunged += len(local)


def _flags_by_uid(typ: str, data: Sequence[Any], what: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for line in _check(typ, data, what):
        raw = line[0] if isinstance(line, tuple) else line
        if not isinstance(raw, bytes):
            continue
        uid_m = re.search(rb"UID (\d+)", raw)
        flags_m = re.search(rb"FLAGS \(([^)]*)\)", raw)
        if uid_m and flags_m:
            out[int(uid_m.group(1))] = _flags_of(flags_m.group(1).decode())
    return out


def _mirror_flags(f: _Folder, highest_modseq: int, report: Report) -> None:
    """Copy remote flag changes of messages fetched earlier to their local copies. With
    CONDSTORE (RFC 7162) only the messages changed since the HIGHESTMODSEQ mirrored last
    are read, and nothing at all when it has not moved. With ``flags = "both"``, local
    changes then go to the server (a message changed on both sides keeps the server's)."""
    acc, state, folder = f.acc, f.state, f.name
    known = state.messages(acc.name, folder)
    if not known:
        return
    since = state.highest_modseq(acc.name, folder) if highest_modseq else 0
    if not (since and since >= highest_modseq):
        modifier = f" (CHANGEDSINCE {since})" if since else ""
        items = "UID FLAGS X-GM-LABELS" if f.gmail else "UID FLAGS"
        typ, data = f.remote.uid("FETCH", f"1:{max(known)}", f"({items}){modifier}")
        current = _flags_by_uid(typ, data, "UID FETCH FLAGS")
        if f.gmail:
            _mirror_labels(f, gmail.labels_by_uid(data), known, report)
        report.flags_read += len(current)
        for uid, now in current.items():
            local_uid, flags = known.get(uid, (0, now))
            if now == flags or not local_uid:
                continue  # unchanged, not fetched (yet), or local UID unknown
            _check(*f.local.uid("STORE", str(local_uid), "FLAGS", f"({now})"), "local UID STORE")
            state.set_flags(acc.name, folder, uid, now)
            report.flags_mirrored += 1
    if acc.push_flags:
        _push_flags(f, report)
    if highest_modseq:
        state.set_highest_modseq(acc.name, folder, highest_modseq)


def _mirror_labels(
    f: _Folder, current: dict[int, tuple[str, ...]], known: dict[int, tuple[int, str]], report: Report
) -> None:
    """Copy Gmail label changes of messages fetched earlier to the local tags (Gmail raises
    a message's MODSEQ when its labels change, so CHANGEDSINCE finds them as flag changes)."""
    kept = f.state.gmail_labels(f.acc.name, f.name)
    for uid, labels in current.items():
        local_uid = known.get(uid, (0, ""))[0]
        if uid not in kept or not local_uid or kept[uid] == labels:
            continue
        if gmail.tags_from(kept[uid]) != gmail.tags_from(labels):
            arg = gmail.label_arg(gmail.tags_from(labels))
            _check(*f.local.uid("STORE", str(local_uid), "X-GM-LABELS.SILENT", arg), "local UID STORE")
            report.labels_mirrored += 1
        f.state.gmail_set_labels(f.acc.name, f.name, uid, labels)


def _push_flags(f: _Folder, report: Report) -> None:
    """Store on the server the flags changed locally since they were last in step."""
    acc, state, folder = f.acc, f.state, f.name
    by_local = {lu: (uid, flags) for uid, (lu, flags) in state.messages(acc.name, folder).items() if lu}
    typ, data = f.local.uid("FETCH", "1:*", "(UID FLAGS)")
    for local_uid, now in _flags_by_uid(typ, data, "local UID FETCH FLAGS").items():
        uid, flags = by_local.get(local_uid, (0, now))
        if not uid or now == flags:
            continue
        _check(*f.remote.uid("STORE", str(uid), "FLAGS.SILENT", f"({now})"), "UID STORE")
        state.set_flags(acc.name, folder, uid, now)
        report.flags_pushed += 1


def _sync_imap(acc: Account, target: LocalTarget, state: State, report: Report) -> None:
    remote = _remote_imap(acc)
    local = _local_imap(target, acc.mailbox)
    try:
        caps = remote.capabilities
        qresync = acc.expunge and "QRESYNC" in caps and "ENABLE" in caps
        if qresync:  # (implies CONDSTORE, RFC 7162 3.2.3): the server names what it expunged
            _check(*remote.enable("QRESYNC"), "ENABLE QRESYNC")
        elif "CONDSTORE" in caps and "ENABLE" in caps:
            remote.enable("CONDSTORE")  # EXAMINE then reports HIGHESTMODSEQ
        gm = gmail.CAPABILITY in caps
        for folder in resolve_folders(remote, acc.folders):
            _sync_folder(acc, remote, local, state, folder, report, qresync, gm)
    except (imaplib.IMAP4.error, OSError) as e:
        lost = isinstance(e, (imaplib.IMAP4.abort, OSError))
        raise FetchError(
            f"{'connection lost' if lost else 'failed'} while syncing {acc.name} ({acc.host}:{acc.port})"
            f" after {report.fetched} new messages: {e}"
            + ("; what was copied is kept, run again to continue" if lost else "")
        ) from None
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
        reply = _reply(e)
        pop.close()
        raise FetchError(
            f"login as {acc.user!r} refused by {acc.host}:{acc.port}: {reply}{_hint(acc, reply)}"
        ) from None
    local = _local_imap(target, acc.mailbox)
    try:
        seen = state.pop3_seen(acc.name)
        pending = state.pop3_pending(acc.name)
        _check(*local.select("INBOX"), "local SELECT INBOX")
        local_next = _untagged_int(local, "UIDNEXT")
        _, listing, _ = pop.uidl()
        for entry in listing:
            num, _, uidl = entry.decode().partition(" ")
            if uidl in seen:
                if acc.delete:  # copied by an earlier run that did not get to QUIT
                    pop.dele(int(num))
                continue
            _, lines, _ = pop.retr(int(num))
            body = b"\r\n".join(lines) + b"\r\n"
            # copied by a run killed before it recorded the UIDL: found, not copied again
            found = _local_copy(local, pending[1], body) if pending and pending[0] == uidl else 0
            if not found:
                state.pop3_appending(acc.name, uidl, local_next)
                typ, resp = local.append("INBOX", None, None, body)
                _check(typ, resp, "local APPEND to INBOX")
                m = _APPENDUID.search(b" ".join(r for r in resp if isinstance(r, bytes)))
                local_next = max(local_next, int(m.group(2)) + 1 if m else 0)
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
