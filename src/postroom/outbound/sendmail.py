"""The sendmail command-line interface, delivering into postroom over SMTP.

What programs call (Postfix's and Sendmail's manual pages describe the interface):

* ``sendmail [options] rcpt...`` reads a message on stdin and delivers it;
* ``-t`` takes recipients from the To, Cc and Bcc headers too (added to those given as
  arguments, as Postfix does) and removes the Bcc header;
* ``-i`` / ``-oi``: a line holding a single dot does not end the message (PHP's default
  ``sendmail_path`` is ``sendmail -t -i``); without it such a line ends the input;
* ``-f ADDR`` / ``-fADDR`` sets the envelope sender (else the From header's address, else
  ``user@host``), ``-F NAME`` the full name for a From header that is added when missing;
* ``-bs`` speaks SMTP on stdin/stdout (as ``sendmail -bs`` does for some MTAs' clients),
  relayed to postroom's SMTP listener; ``-bm`` (default) reads a message;
* ``-S HOST:PORT`` chooses the SMTP server (Mailpit's sendmail flag); otherwise
  ``$MP_SENDMAIL_SMTP_ADDR``, ``$POSTROOM_SENDMAIL_SMTP``, ``$POSTROOM_SMTP``, 127.0.0.1:1025;
* ``-o...``, ``-B``, ``-N``, ``-R``, ``-V``, ``-L``, ``-v``, ``-e...``, ``-U`` are accepted
  and ignored, as they set queueing and DSN behaviour that a direct hand-over has no use for.

Exit status follows sysexits.h, which cron and PHP report: 0 delivered, 64 usage,
65 bad message, 69 refused permanently, 75 temporary failure.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
import threading
from email.utils import formatdate, getaddresses, make_msgid, parseaddr

from .smtp_client import DeliveryError, SmtpTarget, deliver

__all__ = ["envelope_from_headers", "prepare", "run_sendmail"]

EX_OK, EX_USAGE, EX_DATAERR, EX_UNAVAILABLE, EX_TEMPFAIL = 0, 64, 65, 69, 75
# Largest message read from stdin; postroom's own default --smtp-max-size is 50 MiB.
MAX_MESSAGE = 64 * 1024 * 1024
# Options that take a value (separate or attached) and are ignored.
_IGNORED_WITH_VALUE = frozenset("BNRVLXCh")
# Options without a value that are ignored (verbose, initial submission, ...).
_IGNORED_FLAGS = frozenset("vUmnGq")


class UsageError(Exception):
    pass


def _header_block(raw: bytes) -> tuple[bytes, bytes]:
    """Split at the first empty line: (headers including their final line end, body)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = raw.find(sep)
        if i >= 0:
            return raw[: i + len(sep) // 2], raw[i + len(sep) :]
    return raw, b""


def _unfolded(headers: bytes) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for line in headers.replace(b"\r\n", b"\n").split(b"\n"):
        if not line:
            continue
        text = line.decode("utf-8", "replace")
        if text[:1] in (" ", "\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + " " + text.strip())
        elif ":" in text:
            name, _, value = text.partition(":")
            out.append((name.strip(), value.strip()))
    return out


def envelope_from_headers(raw: bytes) -> tuple[str, list[str]]:
    """The From address and the To/Cc/Bcc addresses of a message's header block."""
    fields = _unfolded(_header_block(raw)[0])
    sender = next((parseaddr(v)[1] for n, v in fields if n.lower() == "from"), "")
    rcpts = [a for _, a in getaddresses([v for n, v in fields if n.lower() in ("to", "cc", "bcc")]) if a]
    return sender, list(dict.fromkeys(rcpts))


def prepare(raw: bytes, sender: str, full_name: str, *, strip_bcc: bool) -> tuple[bytes, str, list[str]]:
    """CRLF line ends, Bcc removed (``strip_bcc``), From/Date/Message-ID added when missing.

    Returns:
        (message bytes, From address of the headers, recipients named in To/Cc/Bcc)
    """
    hdr_from, hdr_rcpts = envelope_from_headers(raw)
    head, body = _header_block(raw)
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    kept: list[bytes] = []
    skipping = False
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        skipping = strip_bcc and line.lower().startswith(b"bcc:")
        if not skipping and line:
            kept.append(line)
    names = {ln.split(b":", 1)[0].strip().lower() for ln in kept if b":" in ln}
    added: list[bytes] = []
    if b"from" not in names:
        who = sender or f"{getpass.getuser()}@{socket.gethostname()}"
        added.append(f"From: {full_name} <{who}>".encode() if full_name else f"From: {who}".encode())
        hdr_from = hdr_from or who
    if b"date" not in names:
        added.append(f"Date: {formatdate(localtime=True)}".encode())
    if b"message-id" not in names:
        domain = (sender or hdr_from).rpartition("@")[2] or socket.gethostname()
        try:
            domain.encode("ascii")
        except UnicodeEncodeError:
            domain = domain.encode("idna").decode("ascii")
        added.append(f"Message-ID: {make_msgid(domain=domain)}".encode())
    out = b"\r\n".join([*kept, *added]) + b"\r\n\r\n" + body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return out, hdr_from, hdr_rcpts


def _target(server: str) -> SmtpTarget:
    from .cli import split_hostport

    value = (
        server or os.environ.get("MP_SENDMAIL_SMTP_ADDR") or os.environ.get("POSTROOM_SENDMAIL_SMTP") or ""
    )
    if not value:
        env = os.environ.get("POSTROOM_SMTP", "")
        value = env if env and env != "off" else "127.0.0.1:1025"
    host, port = split_hostport(value, 25)
    # the local postroom is a development server: plain SMTP unless it is the TLS port
    return SmtpTarget(host=host, port=port, tls="tls" if port == 465 else "none", timeout=60.0)


def _parse(argv: list[str]) -> tuple[dict[str, str | bool], list[str]]:
    opts: dict[str, str | bool] = {"t": False, "i": False, "f": "", "F": "", "S": "", "mode": "m"}
    rcpts: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            rcpts.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            rcpts.append(arg)
            continue
        flag, rest = arg[1:2], arg[2:]
        if flag in ("f", "F", "S", "r"):  # -r is an old synonym of -f
            if not rest:
                if i >= len(argv):
                    raise UsageError(f"option -{flag} needs a value")
                rest = argv[i]
                i += 1
            opts["f" if flag == "r" else flag] = rest
        elif flag == "t" and not rest:
            opts["t"] = True
        elif flag == "i" and not rest:
            opts["i"] = True
        elif flag == "o":
            if rest == "i":
                opts["i"] = True
            elif not rest and i < len(argv):  # "-o value" (rare)
                i += 1
        elif flag == "b":
            if rest not in ("m", "s"):
                raise UsageError(
                    f"mode -b{rest} is not supported (postroom delivers at once; use -bm or -bs)"
                )
            opts["mode"] = rest
        elif flag in _IGNORED_WITH_VALUE:
            if not rest and i < len(argv):
                i += 1
        elif flag == "e" or (flag in _IGNORED_FLAGS and not rest) or flag == "d":
            pass
        else:
            raise UsageError(f"unknown option {arg}")
    return opts, rcpts


def _read_message(dot_ends: bool) -> bytes:
    stdin = sys.stdin.buffer
    if not dot_ends:
        data = stdin.read(MAX_MESSAGE + 1)
    else:
        chunks: list[bytes] = []
        size = 0
        for line in iter(lambda: stdin.readline(MAX_MESSAGE + 1), b""):
            if line.rstrip(b"\r\n") == b".":
                break
            chunks.append(line)
            size += len(line)
            if size > MAX_MESSAGE:
                break
        data = b"".join(chunks)
    if len(data) > MAX_MESSAGE:
        raise UsageError(f"message larger than {MAX_MESSAGE // (1024 * 1024)} MiB")
    return data


def _smtp_on_stdio(target: SmtpTarget) -> int:
    """-bs: relay an SMTP dialogue between stdin/stdout and postroom's listener."""
    try:
        sock = socket.create_connection((target.host, target.port), timeout=target.timeout)
    except OSError as e:
        print(f"sendmail: cannot connect to {target.where}: {e.strerror or e}", file=sys.stderr)
        return EX_TEMPFAIL
    sock.settimeout(None)

    def upstream() -> None:
        try:
            while chunk := os.read(sys.stdin.fileno(), 65536):
                sock.sendall(chunk)
        except OSError:
            pass
        finally:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    threading.Thread(target=upstream, daemon=True).start()
    out = sys.stdout.buffer
    try:
        while chunk := sock.recv(65536):
            out.write(chunk)
            out.flush()
    except OSError:
        pass
    finally:
        sock.close()
    return EX_OK


def run_sendmail(argv: list[str]) -> int:
    """Run the sendmail interface with ``argv`` (without the program name); return the exit status."""
    try:
        opts, rcpts = _parse(argv)
        target = _target(str(opts["S"]))
    except UsageError as e:
        print(f"sendmail: {e}", file=sys.stderr)
        return EX_USAGE
    except ValueError as e:  # ConfigError from split_hostport
        print(f"sendmail: -S: {e}", file=sys.stderr)
        return EX_USAGE
    if opts["mode"] == "s":
        return _smtp_on_stdio(target)
    try:
        raw = _read_message(dot_ends=not opts["i"])
    except UsageError as e:
        print(f"sendmail: {e}", file=sys.stderr)
        return EX_DATAERR
    data, hdr_from, hdr_rcpts = prepare(raw, str(opts["f"]), str(opts["F"]), strip_bcc=bool(opts["t"]))
    if opts["t"]:
        rcpts = list(dict.fromkeys([*rcpts, *hdr_rcpts]))
    if not rcpts:
        print(
            "sendmail: no recipients (give them as arguments, or use -t to read To/Cc/Bcc)", file=sys.stderr
        )
        return EX_USAGE
    mail_from = str(opts["f"]) or hdr_from
    try:
        refused = deliver(target, mail_from, rcpts, data)
    except DeliveryError as e:
        print(f"sendmail: {e}", file=sys.stderr)
        return EX_UNAVAILABLE if e.permanent else EX_TEMPFAIL
    for rcpt, reply in refused.items():
        print(f"sendmail: recipient {rcpt} refused: {reply}", file=sys.stderr)
    return EX_UNAVAILABLE if refused else EX_OK
