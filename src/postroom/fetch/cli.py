"""``postroom import`` and ``postroom export``: move captured mail between postroom and files.

``import`` reads Maildir, mbox, ``.eml`` files and ``.zip`` archives (see
:mod:`postroom.fetch.archive`) and delivers each message into a running postroom over
SMTP, as if the application had sent it: each recipient gets it in their mailbox, the raw
bytes unchanged (like Mailpit's ``ingest``). Recipients come from ``--to``, else the
message's ``Delivered-To``/``X-Original-To``, else its To, Cc and Bcc.

``export`` reads from a running postroom through its HTTP API (every message, a search
or one mailbox) and writes Maildir (read state as the ``S`` flag), mbox, ``.eml`` files or a
``.zip``. It works against any postroom, local or remote, with ``--user`` and a password
from ``$POSTROOM_HTTP_PASSWORD`` or ``--password-file``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import imaplib
import json
import os
import smtplib
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Any

from ..cli import command
from ..config import ConfigError, parse_http_url
from ..outbound.cli import local_postroom, split_hostport
from .archive import ArchiveError, EmlDirWriter, Item, Writer, iter_path, open_writer
from .deliver import ImapRefused, ImapSink, Progress, SmtpSink

__all__ = ["dump", "export", "fetch", "import_", "ingest"]

# Messages per page when listing through the API (Mailpit's API caps a page too).
PAGE = 250


def _head_fields(data: bytes) -> list[tuple[str, str]]:
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = data.find(b"\n\n")
    head = data[: end if end >= 0 else len(data)].decode("utf-8", "replace").replace("\r\n", "\n")
    out: list[tuple[str, str]] = []
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())
        elif ":" in line:
            name, _, value = line.partition(":")
            out.append((name.strip().lower(), value.strip()))
    return out


def envelope_of(data: bytes) -> tuple[str, list[str]]:
    """(sender, recipients) that the message's own headers name."""
    fields = _head_fields(data)

    def addrs(*names: str) -> list[str]:
        return list(dict.fromkeys(a for _, a in getaddresses([v for n, v in fields if n in names]) if a))

    sender = next((parseaddr(v)[1] for n, v in fields if n == "return-path"), "")
    sender = sender or next((parseaddr(v)[1] for n, v in fields if n == "from"), "")
    return sender, addrs("delivered-to", "x-original-to") or addrs("to", "cc", "bcc")


def _import_setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="Maildir, mbox, .eml file, directory or .zip")
    p.add_argument(
        "--smtp",
        metavar="HOST:PORT",
        help="postroom's SMTP address (default $POSTROOM_SMTP or 127.0.0.1:1025)",
    )
    p.add_argument(
        "--to",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="deliver every message to this mailbox (repeat)",
    )
    p.add_argument(
        "--imap",
        metavar="HOST:PORT",
        help="deliver by IMAP APPEND to postroom's IMAP instead: bytes kept exactly, with flags and Maildir folders",
    )
    p.add_argument(
        "--local-password-env",
        metavar="VAR",
        help="with --imap: variable holding the IMAP password (when postroom has --auth-file)",
    )
    p.add_argument(
        "--recent",
        "-r",
        type=int,
        default=0,
        metavar="DAYS",
        help="only files changed in the last DAYS days (Mailpit's ingest --recent; Maildir and .eml)",
    )
    p.add_argument("--dry-run", action="store_true", help="list what would be imported; deliver nothing")


def _sink(args: argparse.Namespace) -> tuple[SmtpSink | ImapSink, str]:
    if args.imap:
        host, port = split_hostport(args.imap, 1143)
        env = args.local_password_env
        return ImapSink(host, port, os.environ.get(env, "") if env else "postroom-import"), f"{host}:{port}"
    host, port = split_hostport(args.smtp, 1025) if args.smtp else local_postroom()
    return SmtpSink(host, port), f"{host}:{port}"


@command("import", "deliver messages from Maildir, mbox, .eml files or .zip into a running postroom")
def import_(args: argparse.Namespace) -> int:
    sink, where = _sink(args)
    fixed = [a for _, a in getaddresses(args.to) if a]
    newer = time.time() - args.recent * 86400 if args.recent > 0 else 0.0
    progress = Progress("imported")
    done = skipped = 0
    unread: list[str] = []  # files (or PATHs) that could not be read: reported, the rest goes on

    def bad(e: ArchiveError) -> None:
        progress.done()
        print(f"postroom import: {e}", file=sys.stderr)
        unread.append(str(e))

    try:
        for path in args.paths:
            try:
                for item in iter_path(Path(path), on_error=bad):
                    if newer and _older(item, newer):
                        continue
                    done, skipped = _import_one(item, fixed, None if args.dry_run else sink, done, skipped)
                    progress.update(done)
            except ArchiveError as e:
                bad(e)
    except (OSError, smtplib.SMTPException, imaplib.IMAP4.error, ImapRefused) as e:
        progress.done()
        print(f"postroom import: delivery to {where} failed after {done} messages: {e}", file=sys.stderr)
        return 1
    finally:
        sink.close()
    progress.done()
    verb = "would import" if args.dry_run else "imported"
    summary = f"{verb} {done} messages" + (f", skipped {skipped} (see above)" if skipped else "")
    if unread:
        summary += f", {len(unread)} {'file' if len(unread) == 1 else 'files'} not read (see above)"
    print(summary)
    return 1 if unread or (skipped and not done) else 0


def _older(item: Item, since: float) -> bool:
    """Whether the file ``item`` came from (not an mbox or zip entry) changed before ``since``."""
    if "#" in item.source or "!" in item.source:
        return False
    try:
        return Path(item.source).stat().st_mtime < since
    except OSError:
        return False


def _import_one(
    item: Item, fixed: list[str], sink: SmtpSink | ImapSink | None, done: int, skipped: int
) -> tuple[int, int]:
    env_from, rcpts = envelope_of(item.data)
    rcpts = fixed or rcpts
    if not rcpts:
        print(f"postroom import: {item.source}: no recipient in its headers (use --to)", file=sys.stderr)
        return done, skipped + 1
    if sink is None:
        print(f"{item.source}: to {', '.join(rcpts)}")
        return done + 1, skipped
    try:
        sink.send(env_from, rcpts, item)
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as e:
        print(f"postroom import: {item.source}: refused: {e}", file=sys.stderr)
        return done, skipped + 1
    return done + 1, skipped


import_.setup = _import_setup  # type: ignore[attr-defined]


def _export_setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("dest", metavar="DEST", help="Maildir directory, mbox file, .eml directory or .zip file")
    p.add_argument(
        "--format",
        choices=("maildir", "mbox", "eml", "zip"),
        help="default: zip for *.zip, mbox for *.mbox, else maildir",
    )
    p.add_argument(
        "--url",
        metavar="URL",
        help="postroom's web address (default $POSTROOM_HTTP or http://127.0.0.1:8025)",
    )
    p.add_argument(
        "--query", metavar="SEARCH", help="only messages matching this search (postroom's search language)"
    )
    p.add_argument("--mailbox", metavar="ADDRESS", help="only this mailbox")
    p.add_argument(
        "--user", metavar="NAME", help="HTTP user (password from $POSTROOM_HTTP_PASSWORD or --password-file)"
    )
    p.add_argument("--password-file", metavar="FILE", help="file whose first line is the HTTP password")


def _base_url(arg: str | None, option: str = "url") -> str:
    if arg:
        return parse_http_url(arg, option)
    host, port = split_hostport(os.environ.get("POSTROOM_HTTP", "") or "127.0.0.1:8025", 8025)
    return f"http://{host}:{port}"


def _auth_header(args: argparse.Namespace) -> dict[str, str]:
    if not args.user:
        return {}
    if args.password_file:
        try:
            password = Path(args.password_file).read_text().splitlines()[0]
        except (OSError, IndexError) as e:
            raise ConfigError(
                f"--password-file {args.password_file}: {getattr(e, 'strerror', None) or 'empty'}"
            ) from None
    else:
        password = os.environ.get("POSTROOM_HTTP_PASSWORD", "")
        if not password:
            raise ConfigError("--user needs $POSTROOM_HTTP_PASSWORD or --password-file")
    token = base64.b64encode(f"{args.user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _get(url: str, headers: dict[str, str]) -> bytes:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return bytes(r.read())
    except urllib.error.HTTPError as e:
        detail = e.read()[:200].decode("utf-8", "replace").strip()
        raise ArchiveError(f"{url.split('?')[0]} answered {e.code} {detail}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ArchiveError(
            f"cannot reach {url.split('?')[0]}: {getattr(reason, 'strerror', None) or reason}"
        ) from None


def _received(summary: dict[str, Any]) -> float:
    created = summary.get("Created")
    if not isinstance(created, str):
        return 0.0
    try:
        return dt.datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _export_to(
    args: argparse.Namespace, base: str, headers: dict[str, str], make: Callable[[], Writer], by_id: bool
) -> int:
    """Page through the API at ``base`` into the writer ``make`` gives once the first page
    is read (a server that cannot be reached, or refuses, leaves nothing behind); the count
    written."""
    terms = [t for t in (args.query, f"mailbox:{args.mailbox}" if args.mailbox else None) if t]
    progress = Progress("exported")
    writer: Writer | None = None
    try:
        start = 0
        while True:
            q: dict[str, str | int] = {"start": start, "limit": PAGE}
            if terms:
                q["query"] = " ".join(terms)
            where = "search" if terms else "messages"
            page = json.loads(_get(f"{base}/api/v1/{where}?{urllib.parse.urlencode(q)}", headers))
            if writer is None:
                writer = make()
            messages = page.get("messages") or []
            for m in messages:
                if by_id and writer.has(m["ID"]):
                    continue
                raw = _get(f"{base}/api/v1/message/{urllib.parse.quote(m['ID'])}/raw", headers)
                flags = frozenset({"seen"}) if m.get("Read") else frozenset()
                writer.add(raw, flags, _received(m), m["ID"] if by_id else str(m.get("Subject") or m["ID"]))
                progress.update(writer.count)
            start += len(messages)
            if not messages or start >= int(page.get("messages_count", page.get("total", 0))):
                break
    finally:
        progress.done()
        if writer is not None:
            writer.close()
    assert writer is not None  # made with the first page
    return writer.count


@command("export", "write a running postroom's messages to Maildir, mbox, .eml files or .zip")
def export(args: argparse.Namespace) -> int:
    dest = Path(args.dest)
    fmt = args.format or (
        "zip" if dest.suffix == ".zip" else "mbox" if dest.suffix in (".mbox", ".mbx") else "maildir"
    )
    base, headers = _base_url(args.url), _auth_header(args)  # before the destination is made
    try:
        count = _export_to(args, base, headers, lambda: open_writer(dest, fmt), by_id=False)
    except ArchiveError as e:
        print(f"postroom export: {e}", file=sys.stderr)
        return 1
    print(f"exported {count} messages to {dest} ({fmt})")
    return 0


export.setup = _export_setup  # type: ignore[attr-defined]


# -- Mailpit's names: `mailpit ingest PATH...` and `mailpit dump DIR --http URL` -----------


def _ingest_setup(p: argparse.ArgumentParser) -> None:
    _import_setup(p)
    p.add_argument(
        "--smtp-addr", "-S", dest="smtp", metavar="HOST:PORT", help="same as --smtp (Mailpit's name)"
    )


def ingest(args: argparse.Namespace) -> int:
    return import_(args)


ingest.setup = _ingest_setup  # type: ignore[attr-defined]
command("ingest", "Mailpit's name for import: deliver .eml files, Maildir, mbox or .zip over SMTP")(ingest)


def _dump_setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("dest", metavar="OUTPUT-DIR", help="directory for one ID.eml file per message")
    p.add_argument("--http", dest="url", metavar="URL", help="base URL of the running postroom (or Mailpit)")
    p.add_argument("--database", metavar="FILE", help="not supported: give --http")
    p.add_argument("--user", metavar="NAME", help="HTTP user (password from $POSTROOM_HTTP_PASSWORD)")
    p.add_argument("--password-file", metavar="FILE", help="file whose first line is the HTTP password")
    p.set_defaults(query=None, mailbox=None)


def dump(args: argparse.Namespace) -> int:
    """Mailpit's ``dump``: every message as ``OUTPUT-DIR/ID.eml``, files already there skipped."""
    if args.database:
        raise ConfigError("postroom dump reads a running server: give --http URL, not --database")
    base, headers = _base_url(args.url, "http"), _auth_header(args)
    try:
        count = _export_to(args, base, headers, lambda: EmlDirWriter(Path(args.dest), by_id=True), by_id=True)
    except (ArchiveError, OSError) as e:
        print(f"postroom dump: {e}", file=sys.stderr)
        return 1
    print(f"dumped {count} messages to {args.dest}")
    return 0


dump.setup = _dump_setup  # type: ignore[attr-defined]
command("dump", "Mailpit's dump: write every message of a running postroom as OUTPUT-DIR/ID.eml")(dump)


def _fetch_setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("accounts", nargs="*", metavar="ACCOUNT", help="account names from [fetch.accounts.NAME]")
    p.add_argument("--all", action="store_true", help="every account in the config file")
    p.add_argument(
        "--config", metavar="FILE", help="TOML file with [fetch.accounts.NAME] tables ($POSTROOM_CONFIG)"
    )
    p.add_argument(
        "--into",
        metavar="HOST:PORT",
        help="postroom's IMAP address (default $POSTROOM_IMAP or 127.0.0.1:1143)",
    )
    p.add_argument(
        "--local-password-env",
        metavar="VAR",
        help="variable holding the local IMAP password (with --auth-file)",
    )
    p.add_argument(
        "--state", metavar="FILE", help="sync state file (default ~/.local/state/postroom/fetch-state.sqlite)"
    )
    p.add_argument(
        "--watch",
        action="store_true",
        help="keep fetching until interrupted: at once when IMAP IDLE reports new mail, else every --interval seconds",
    )
    p.add_argument(
        "--interval", type=float, default=60.0, help="seconds between fetches with --watch (default 60)"
    )


@command("fetch", "copy real inboxes (IMAP or POP3 accounts in the config file) into postroom, incrementally")
def fetch(args: argparse.Namespace) -> int:
    from .accounts import State, default_state_path, load_accounts
    from .imap_sync import FetchError, LocalTarget, Report, sync_account
    from .watch import watch

    path = args.config or os.environ.get("POSTROOM_CONFIG", "")
    if not path:
        raise ConfigError("give --config FILE (or $POSTROOM_CONFIG) with [fetch.accounts.NAME] tables")
    accounts = load_accounts(path)
    if args.all == bool(args.accounts):
        raise ConfigError(f"name the accounts to fetch, or --all (known: {', '.join(sorted(accounts))})")
    chosen = list(accounts.values()) if args.all else []
    for name in args.accounts:
        if name not in accounts:
            raise ConfigError(f"no fetch account {name!r} (known: {', '.join(sorted(accounts))})")
        chosen.append(accounts[name])
    host, port = split_hostport(args.into or os.environ.get("POSTROOM_IMAP", "") or "127.0.0.1:1143", 1143)
    password = os.environ.get(args.local_password_env, "") if args.local_password_env else "postroom-fetch"
    target = LocalTarget(host, port, password)
    state = State(Path(args.state) if args.state else default_state_path())
    failed = 0

    def show(r: Report | FetchError) -> None:
        nonlocal failed
        if isinstance(r, FetchError):
            failed += 1
            print(f"postroom fetch: {r}", file=sys.stderr, flush=True)
            return
        extra = f", {r.flags_mirrored} flag changes" if r.flags_mirrored else ""
        extra += f", {r.flags_pushed} flag changes sent to the server" if r.flags_pushed else ""
        extra += f", {r.expunged} expunged" if r.expunged else ""
        extra += f", {r.labels_mirrored} label changes" if r.labels_mirrored else ""
        print(
            f"{r.account}: {r.fetched} new messages in {', '.join(r.folders) or 'no folder'}{extra}",
            flush=True,
        )
        for note in r.notes:
            print(f"{r.account}: {note}", flush=True)

    try:
        if args.watch:
            try:
                watch(chosen, target, state, max(args.interval, 1.0), show, lambda: False)
            except KeyboardInterrupt:
                return 0
        for acc in chosen:
            try:
                show(sync_account(acc, target, state))
            except FetchError as e:
                show(e)
    finally:
        state.close()
    return 1 if failed else 0


fetch.setup = _fetch_setup  # type: ignore[attr-defined]
