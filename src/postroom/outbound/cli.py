"""``postroom send`` (compose and submit a message) and ``postroom sendmail`` (the sendmail
interface that PHP's ``mail()``, cron and many frameworks call).

Credentials never go on the command line (other users see it in ``ps``): the password comes
from ``$POSTROOM_SMTP_PASSWORD`` (or the variable named by ``--password-env``), a file
(``--password-file``), or the ``[send]`` table of the config file; an OAuth2 access token
likewise from ``$POSTROOM_SMTP_OAUTH2_TOKEN``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from typing import Any

from .. import providers
from ..cli import command
from ..config import ConfigError, parse_http_url
from .compose import Attachment, ComposeError, Draft, compose, parse_address, parse_addresses
from .sendmail import run_sendmail
from .smtp_client import DeliveryError, Mode, SmtpTarget, deliver

__all__ = ["send", "sendmail"]

_MODES = ("auto", "tls", "starttls", "none")


def _send_setup(p: argparse.ArgumentParser) -> None:
    m = p.add_argument_group("message")
    m.add_argument("--from", dest="sender", metavar="ADDRESS", help="From: address ('Name <a@b>' works)")
    m.add_argument(
        "--to", action="append", default=[], metavar="ADDRESS", help="recipient (repeat, or comma-separated)"
    )
    m.add_argument("--cc", action="append", default=[], metavar="ADDRESS", help="Cc recipient")
    m.add_argument(
        "--bcc",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="Bcc recipient (not written in the message)",
    )
    m.add_argument("--reply-to", action="append", default=[], metavar="ADDRESS", help="Reply-To address")
    m.add_argument("--subject", default="", help="subject line (any Unicode)")
    m.add_argument("--text", help="plain-text body")
    m.add_argument("--text-file", metavar="FILE", help="plain-text body from a file ('-' for stdin)")
    m.add_argument("--html", help="HTML body")
    m.add_argument("--html-file", metavar="FILE", help="HTML body from a file ('-' for stdin)")
    m.add_argument("--attach", action="append", default=[], metavar="FILE", help="attach a file (repeat)")
    m.add_argument(
        "--inline",
        action="append",
        default=[],
        metavar="CID=FILE",
        help='inline image for <img src="cid:CID">',
    )
    m.add_argument(
        "--header", action="append", default=[], metavar="'NAME: VALUE'", help="extra header (repeat)"
    )
    m.add_argument(
        "--list-unsubscribe",
        action="append",
        default=[],
        metavar="URL",
        help="List-Unsubscribe URL (https: or mailto:)",
    )
    m.add_argument(
        "--one-click",
        action="store_true",
        help="add List-Unsubscribe-Post for RFC 8058 one-click unsubscribe",
    )
    m.add_argument("--eml", metavar="FILE", help="send this ready-made message instead of composing one")
    s = p.add_argument_group("server")
    s.add_argument(
        "--server",
        metavar="HOST:PORT",
        help="SMTP server (default: the local postroom, $POSTROOM_SMTP or 127.0.0.1:1025)",
    )
    s.add_argument("--preset", metavar="NAME", help=f"provider settings: {', '.join(providers.names())}")
    s.add_argument(
        "--tls",
        choices=_MODES,
        help="implicit TLS, STARTTLS, none, or auto (465 implicit, else STARTTLS if offered)",
    )
    s.add_argument(
        "--user", metavar="NAME", help="login name (password from $POSTROOM_SMTP_PASSWORD or --password-file)"
    )
    s.add_argument("--password-env", metavar="VAR", help="environment variable holding the password")
    s.add_argument("--password-file", metavar="FILE", help="file whose first line is the password")
    s.add_argument(
        "--oauth2-token-env",
        metavar="VAR",
        help="environment variable holding an OAuth2 access token (XOAUTH2)",
    )
    s.add_argument(
        "--oauth2-token-file", metavar="FILE", help="file holding an OAuth2 access token (XOAUTH2)"
    )
    s.add_argument("--cafile", metavar="FILE", help="trust this CA (or self-signed) certificate")
    s.add_argument(
        "--insecure", action="store_true", help="do not verify the server's certificate (test servers only)"
    )
    s.add_argument("--timeout", type=float, help="seconds per network step (default 30)")
    s.add_argument("--helo", metavar="NAME", help="name to announce in EHLO")
    p.add_argument(
        "--config", metavar="FILE", help="TOML file whose [send] table sets defaults ($POSTROOM_CONFIG)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the message and its envelope; send nothing")
    q = p.add_argument_group("queue")
    q.add_argument(
        "--queue",
        action="store_true",
        help="hand the message to a running postroom's outbound queue (its relay, retries and bounce handling)",
    )
    q.add_argument(
        "--url",
        metavar="URL",
        help="that postroom's web address (default $POSTROOM_HTTP or http://127.0.0.1:8025)",
    )


def _read_text(value: str | None, path: str | None, what: str) -> str | None:
    if path is None:
        return value
    if value is not None:
        raise ConfigError(f"give --{what} or --{what}-file, not both")
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--{what}-file {path}: {getattr(e, 'strerror', None) or e}") from None


def _config(path: str | None) -> dict[str, Any]:
    path = path or os.environ.get("POSTROOM_CONFIG") or ""
    if not path:
        return {}
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"config file {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: {e}") from None
    table = data.get("send", {})
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: [send] must be a table")
    return table


def _secret(env_name: str | None, file_name: str | None, default_env: str, what: str) -> str:
    if file_name:
        try:
            with open(file_name, encoding="utf-8") as f:
                return f.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{what} file {file_name}: {getattr(e, 'strerror', None) or e}") from None
    if env_name:
        if env_name not in os.environ:
            raise ConfigError(f"{what}: environment variable {env_name} is not set")
        return os.environ[env_name]
    return os.environ.get(default_env, "")


def split_hostport(value: str, default_port: int) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``host`` (default port).

    Raises:
        ConfigError: not that shape.
    """
    host, sep, port = value.strip().rpartition(":")
    if not sep or (host.count(":") and not host.startswith("[")):
        host, port = value.strip(), str(default_port)
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"not host:port: {value!r}")
    return host, int(port)


def local_postroom() -> tuple[str, int]:
    """Where the local postroom listens for SMTP: $POSTROOM_SMTP, else 127.0.0.1:1025."""
    value = os.environ.get("POSTROOM_SMTP", "")
    if not value or value == "off":
        value = "127.0.0.1:1025"
    return split_hostport(value, 1025)


def _target(args: argparse.Namespace, conf: dict[str, Any]) -> SmtpTarget:
    def pick(name: str) -> Any:
        v = getattr(args, name, None)
        return v if v not in (None, False) else conf.get(name.replace("_", "-"), conf.get(name))

    provider = None
    preset = pick("preset")
    tls: str | None = pick("tls")
    if preset:
        try:
            provider = providers.get(str(preset))
        except providers.UnknownProvider as e:
            raise ConfigError(str(e)) from None
    server = pick("server")
    if server:
        host, port = split_hostport(str(server), 587)
    elif provider and (provider.smtp or provider.smtps):
        ep = provider.smtps if (tls == "tls" and provider.smtps) or not provider.smtp else provider.smtp
        assert ep is not None
        host, port = ep.host, ep.port
        tls = tls or ep.tls
    else:
        host, port = local_postroom()
    if tls is not None and tls not in _MODES:
        raise ConfigError(f"tls must be one of {', '.join(_MODES)}, not {tls!r}")
    user = str(pick("user") or "")
    password = _secret(pick("password_env"), pick("password_file"), "POSTROOM_SMTP_PASSWORD", "password")
    token = _secret(
        pick("oauth2_token_env"), pick("oauth2_token_file"), "POSTROOM_SMTP_OAUTH2_TOKEN", "OAuth2 token"
    )
    if user and not (password or token):
        raise ConfigError(
            "--user needs a password: set $POSTROOM_SMTP_PASSWORD, --password-env VAR or --password-file FILE"
        )
    mode: Mode = tls if tls in _MODES else "auto"  # type: ignore[assignment]
    return SmtpTarget(
        host=host,
        port=port,
        tls=mode,
        username=user,
        password=password,
        oauth2_token=token,
        timeout=float(pick("timeout") or 30.0),
        cafile=str(pick("cafile") or ""),
        verify=not pick("insecure"),
        helo=str(pick("helo") or ""),
        provider=provider,
    )


def _draft(args: argparse.Namespace, conf: dict[str, Any]) -> tuple[bytes, str, list[str]]:
    """The message bytes, envelope sender and recipients."""
    sender_text = args.sender or conf.get("from")
    to = parse_addresses(args.to, "--to")
    cc = parse_addresses(args.cc, "--cc")
    bcc = parse_addresses(args.bcc, "--bcc")
    if args.eml:
        from .sendmail import prepare

        try:
            with open(args.eml, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise ConfigError(f"--eml {args.eml}: {e.strerror or e}") from None
        explicit = [a.addr_spec for a in (*to, *cc, *bcc)]
        envelope_from = parse_address(sender_text, "--from").addr_spec if sender_text else ""
        data, hdr_from, hdr_rcpts = prepare(raw, envelope_from, "", strip_bcc=not explicit)
        return data, envelope_from or hdr_from, explicit or hdr_rcpts
    if not sender_text:
        raise ConfigError("--from is required (or 'from' in the config file's [send] table)")
    if not (to or cc or bcc):
        raise ConfigError("give at least one recipient with --to, --cc or --bcc")
    text = _read_text(args.text, args.text_file, "text")
    html = _read_text(args.html, args.html_file, "html")
    files = [Attachment.from_path(p) for p in args.attach]
    for spec in args.inline:
        cid, eq, path = spec.partition("=")
        if not eq or not cid or not path:
            raise ConfigError(f"--inline wants CID=FILE, not {spec!r}")
        files.append(Attachment.from_path(path, content_id=cid))
    headers = []
    for h in args.header:
        name, colon, value = h.partition(":")
        if not colon:
            raise ConfigError(f"--header wants 'Name: value', not {h!r}")
        headers.append((name.strip(), value.strip()))
    sender = parse_address(sender_text, "--from")
    draft = Draft(
        sender=sender,
        to=to,
        cc=cc,
        bcc=bcc,
        reply_to=parse_addresses(args.reply_to, "--reply-to"),
        subject=args.subject,
        text=text,
        html=html,
        attachments=tuple(files),
        headers=tuple(headers),
        list_unsubscribe=tuple(args.list_unsubscribe),
        one_click=args.one_click,
    )
    return compose(draft), sender.addr_spec, draft.recipients()


@command("send", "compose a message and send it through an SMTP server (the local postroom by default)")
def send(args: argparse.Namespace) -> int:
    conf = _config(args.config)
    try:
        data, mail_from, rcpts = _draft(args, conf)
    except ComposeError as e:
        raise ConfigError(str(e)) from None
    if args.dry_run:
        sys.stdout.write(f"MAIL FROM:<{mail_from}>\n")
        for r in rcpts:
            sys.stdout.write(f"RCPT TO:<{r}>\n")
        sys.stdout.write("\n")
        sys.stdout.flush()
        sys.stdout.buffer.write(data.replace(b"\r\n", b"\n"))
        return 0
    if args.queue:
        return _queue(args, mail_from, rcpts, data)
    target = _target(args, conf)
    try:
        refused = deliver(target, mail_from, rcpts, data)
    except DeliveryError as e:
        print(f"postroom send: {e}", file=sys.stderr)
        return 1
    for rcpt, reply in refused.items():
        print(f"postroom send: recipient {rcpt} refused: {reply}", file=sys.stderr)
    print(f"sent to {len(rcpts) - len(refused)} of {len(rcpts)} recipients via {target.where}")
    return 1 if refused else 0


send.setup = _send_setup  # type: ignore[attr-defined]


def _queue(args: argparse.Namespace, mail_from: str, rcpts: list[str], data: bytes) -> int:
    """POST the message to the running postroom's queue (``POST /api/v2/outbound``)."""
    import base64
    import json
    import urllib.error
    import urllib.request

    if args.url:
        base = parse_http_url(args.url)
    else:
        host, port = split_hostport(os.environ.get("POSTROOM_HTTP", "") or "127.0.0.1:8025", 8025)
        base = f"http://{host}:{port}"
    body = json.dumps({"From": mail_from, "To": rcpts, "Raw": base64.b64encode(data).decode()}).encode()
    req = urllib.request.Request(base + "/api/v2/outbound", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            ids = json.load(r)["IDs"]
    except urllib.error.HTTPError as e:
        print(
            f"postroom send: {base} refused the message: {e.read().decode('utf-8', 'replace').strip()}",
            file=sys.stderr,
        )
        return 1
    except (urllib.error.URLError, OSError) as e:
        print(f"postroom send: cannot reach postroom at {base}: {getattr(e, 'reason', e)}", file=sys.stderr)
        return 1
    print(f"queued for {len(ids)} recipients at {base} (GET /api/v2/outbound shows their delivery)")
    return 0


def _sendmail_setup(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "argv",
        nargs=argparse.REMAINDER,
        help="sendmail options (-t -i -f ADDR -bs -S HOST:PORT) and recipients",
    )


@command("sendmail", "the sendmail interface: read a message on stdin and deliver it into postroom")
def sendmail(args: argparse.Namespace) -> int:
    return run_sendmail(list(args.argv))


sendmail.setup = _sendmail_setup  # type: ignore[attr-defined]
