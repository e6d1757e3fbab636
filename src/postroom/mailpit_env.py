"""Mailpit's environment variables (``MP_*``), read as postroom settings.

A team moving from Mailpit keeps its ``docker-compose.yml``: each ``MP_*`` variable that
has a postroom equivalent sets it (below postroom's own ``POSTROOM_*`` variables and flags,
above the TOML file). A variable postroom treats differently, or has no use for, is named in
one line at start (:func:`read` returns those notes); one whose behaviour postroom lacks
(:data:`UNSUPPORTED`) stops the start with one line. Nothing is silently ignored.
Mailpit reads a boolean as true for ``1``, ``true`` or ``yes``; so does this module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "FLAGS",
    "FORWARD_KEYS",
    "IGNORED",
    "MAPPED",
    "PER_KEY",
    "RELAY_KEYS",
    "UNSUPPORTED",
    "add_flags",
    "read",
    "read_flags",
    "with_tag_rules",
]


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes")


def _addr(value: str) -> str:
    # Mailpit writes "0.0.0.0:1025" or "[::]:1025"; postroom reads the same shapes
    return value.strip()


def _megabytes(value: str) -> int:
    mb = int(value.strip())
    return mb * 1024 * 1024 if mb > 0 else 1 << 40  # Mailpit: 0 is unlimited


def _verbose(value: str) -> str:
    return "debug" if _flag(value) else "info"


Setter = Callable[[str], dict[str, Any]]


def _to(name: str, convert: Callable[[str], Any] = str) -> Setter:
    return lambda v: {name: convert(v)}


def _when_true(values: dict[str, Any]) -> Setter:
    return lambda v: dict(values) if _flag(v) else {}


def _smtp_auth_file(value: str) -> dict[str, Any]:
    # Mailpit: an SMTP password file makes authentication required (and, unless
    # MP_SMTP_AUTH_ALLOW_INSECURE, only after STARTTLS: RFC 4954 4)
    return {"smtp_auth_file": value, "smtp_require_auth": True} if value else {}


def _chaos_triggers(value: str) -> dict[str, Any]:
    # Mailpit: "Sender:451:10,Recipient:452:20" (trigger, code, percent) enables chaos;
    # postroom's --chaos reads the same faults, separated by ";"
    items = [t.strip() for t in value.split(",") if t.strip()]
    for item in items:
        name, code, percent = [*item.split(":"), "", ""][:3]
        if name.lower() not in ("sender", "recipient", "authentication") or not (code + percent).isdigit():
            raise ValueError(item)
    return {"chaos": ";".join(items), "enable_chaos": True} if items else {}


#: MP_* variable -> what it sets (a function of its value giving postroom settings).
MAPPED: dict[str, Setter] = {
    "MP_DATABASE": _to("db"),
    "MP_DATA_FILE": _to("db"),  # Mailpit's deprecated name
    "MP_MAX_MESSAGES": _to("max", int),
    "MP_MAX_AGE": _to("max_age"),
    "MP_MAX_MESSAGE_SIZE": _to("smtp_max_size", _megabytes),
    "MP_QUIET": _when_true({"quiet": True}),
    "MP_VERBOSE": _to("log_level", _verbose),
    "MP_UI_BIND_ADDR": _to("http", _addr),
    "MP_WEBROOT": _to("webroot"),
    "MP_UI_AUTH_FILE": _to("ui_auth_file"),
    "MP_UI_AUTH": _to("ui_auth"),
    "MP_SEND_API_AUTH_FILE": _to("send_api_auth_file"),
    "MP_SEND_API_AUTH_ACCEPT_ANY": _when_true({"send_api_auth_accept_any": True}),
    "MP_LABEL": _to("label"),
    "MP_HIDE_DELETE_ALL_BUTTON": _when_true({"hide_delete_all_button": True}),
    "MP_TAG": _to("tag"),
    "MP_CHAOS_TRIGGERS": _chaos_triggers,
    "MP_UI_TLS_CERT": lambda v: {"tls_cert": v, "http_tls": True} if v else {},  # one certificate for all
    "MP_UI_TLS_KEY": _to("tls_key"),
    "MP_TAGS_CONFIG": _to("tags_config"),
    "MP_SMTP_BIND_ADDR": _to("smtp", _addr),
    "MP_SMTP_AUTH_FILE": _smtp_auth_file,
    "MP_SMTP_AUTH": lambda v: {"smtp_auth": v, "smtp_require_auth": True} if v.strip() else {},
    "MP_SMTP_AUTH_ACCEPT_ANY": _when_true({"smtp_require_auth": False}),
    "MP_SMTP_TLS_CERT": _to("tls_cert"),
    "MP_SMTP_TLS_KEY": _to("tls_key"),
    "MP_SMTP_REQUIRE_STARTTLS": _when_true({"smtp_require_tls": True}),
    "MP_SMTP_TLS_REQUIRED": _when_true({"smtp_require_tls": True}),  # deprecated name
    "MP_SMTP_MAX_RECIPIENTS": _to("smtp_max_recipients", int),
    "MP_SMTP_ALLOWED_RECIPIENTS": _to("smtp_allowed_recipients"),
    "MP_SMTP_IGNORE_REJECTED_RECIPIENTS": _when_true({"smtp_ignore_rejected_recipients": True}),
    "MP_SMTP_STRICT_RFC_HEADERS": _when_true({"smtp_strict_rfc_headers": True}),
    "MP_USE_MESSAGE_DATES": _when_true({"use_message_dates": True}),
    "MP_IGNORE_DUPLICATE_IDS": _when_true({"ignore_duplicate_ids": True}),
    "MP_POP3_BIND_ADDR": _to("pop3", _addr),
    "MP_POP3_AUTH_FILE": _to("auth_file"),
    "MP_POP3_AUTH": _to("pop3_auth"),
    "MP_ENABLE_CHAOS": _when_true({"enable_chaos": True}),
    "MP_WEBHOOK_URL": _to("webhook"),
    "MP_ENABLE_SPAMASSASSIN": _to("enable_spamassassin"),
    "MP_ALLOW_INTERNAL_HTTP_REQUESTS": _when_true({"link_check_private": True}),
    "MP_SMTP_RELAY_CONFIG": _to("smtp_relay_config"),
    "MP_SMTP_RELAY_ALL": _when_true({"smtp_relay_all": True}),
    "MP_SMTP_RELAY_MATCHING": _to("smtp_relay_matching"),
    "MP_SMTP_FORWARD_CONFIG": _to("smtp_forward_config"),
}

#: MP_* variables postroom does not apply, with the reason given at start.
IGNORED: dict[str, str] = {
    "MP_DISABLE_WAL": "postroom always uses SQLite's WAL (a database on NFS is not supported)",
    "MP_COMPRESSION": "postroom always stores raw messages zstd-compressed",
    "MP_DISABLE_VERSION_CHECK": "postroom never checks for updates",
    "MP_DISABLE_AUTO_VACUUM": "postroom manages SQLite's free pages itself",
    "MP_TENANT_ID": "postroom has no tenants; give each team its own --db",
    "MP_DISABLE_HTTP_COMPRESSION": "postroom's HTTP server does not compress responses",
    "MP_SMTP_AUTH_ALLOW_INSECURE": "postroom allows AUTH without TLS unless --smtp-require-tls",
    "MP_SMTP_DISABLE_RDNS": "postroom never looks up reverse DNS",
    "MP_DEMO_MODE": "postroom has no demo mode",
    "MP_ENABLE_PROMETHEUS": "postroom always serves /metrics on its HTTP listener (behind the UI's auth)",
    "MP_BLOCK_REMOTE_CSS_AND_FONTS": "postroom's message view blocks all remote content unless asked",
    "MP_POP3_TLS_CERT": "postroom's POP3 uses --tls-cert/--tls-key (STARTTLS, or --pop3s)",
    "MP_POP3_TLS_KEY": "postroom's POP3 uses --tls-cert/--tls-key (STARTTLS, or --pop3s)",
}


#: MP_* variables (and so their flags) postroom refuses: a Mailpit setting that would change
#: behaviour here and is not implemented. Starting without it would silently differ.
UNSUPPORTED: frozenset[str] = frozenset(
    {
        "MP_TAGS_USERNAME", "MP_TAGS_DISABLE", "MP_TAGS_TITLE_CASE",
        "MP_DISABLE_LINK_CHECK_RATE_LIMIT", "MP_ALLOW_UNTRUSTED_TLS", "MP_LOG_FILE",
        "MP_WEBHOOK_LIMIT", "MP_WEBHOOK_DELAY",
    }
)  # fmt: skip
# Mailpit's relay and forward variables that it does not document
_UNSUPPORTED_PREFIXES = ("MP_SMTP_RELAY_", "MP_SMTP_FORWARD_")
_TARGET_KEYS = (
    "host", "port", "starttls", "tls", "allow-insecure", "auth", "username", "password", "secret",
    "return-path", "override-from",
)  # fmt: skip


def _per_key(prefix: str, keys: tuple[str, ...]) -> dict[str, str]:
    return {f"{prefix}{k.upper().replace('-', '_')}": k for k in keys}


#: Mailpit's per-key relay variables -> the relay YAML key each one sets (used when no
#: MP_SMTP_RELAY_CONFIG file is given: outbound/relay_config.py ``relay_from_keys``).
RELAY_KEYS = _per_key(
    "MP_SMTP_RELAY_", (*_TARGET_KEYS, "allowed-recipients", "blocked-recipients", "preserve-message-ids")
)
#: The same for forwarding (MP_SMTP_FORWARD_*, instead of MP_SMTP_FORWARD_CONFIG).
FORWARD_KEYS = _per_key("MP_SMTP_FORWARD_", (*_TARGET_KEYS, "to"))
#: The per-key families by the setting that collects each one's ``(file key, value)`` pairs
#: (read by :func:`read`; outbound/relay_config.py ``relay_from_keys``, ``forward_from_keys``).
PER_KEY: dict[str, dict[str, str]] = {"smtp_relay_keys": RELAY_KEYS, "smtp_forward_keys": FORWARD_KEYS}


def read(env: Mapping[str, str], known: frozenset[str]) -> tuple[dict[str, Any], list[str]]:
    """Settings from the ``MP_*`` variables in ``env``.

    Args:
        env: the environment.
        known: names of the settings this build has (a mapped variable whose setting is
            absent is reported, not applied).

    Returns:
        (settings by name, one-line notes about variables that are not applied)

    Raises:
        ValueError: a variable's value has the wrong shape, or postroom does not support it
            (:data:`UNSUPPORTED`); the text names it.
    """
    values: dict[str, Any] = {}
    notes: list[str] = []
    for key in sorted(k for k in env if k.startswith("MP_")):
        raw = env[key]
        family = next((name for name, table in PER_KEY.items() if key in table), None)
        if family is not None:  # per-key settings: a config of their own
            values[family] = (*values.get(family, ()), (PER_KEY[family][key], raw))
            continue
        if key in UNSUPPORTED or (key not in MAPPED and key.startswith(_UNSUPPORTED_PREFIXES)):
            raise ValueError(f"{key}: not supported by postroom (see docs/mailpit.md); remove it")
        if key in MAPPED:
            try:
                got = MAPPED[key](raw)
            except ValueError:
                raise ValueError(f"{key}: cannot read {raw!r}") from None
            missing = sorted(set(got) - known)
            if missing:
                notes.append(f"{key} is not supported by this postroom (ignored)")
                continue
            values.update(got)
        elif key in IGNORED:
            notes.append(f"{key} ignored: {IGNORED[key]}")
        elif key != "MP_SENDMAIL_SMTP_ADDR":  # read by `postroom sendmail`
            notes.append(f"{key} is not supported by postroom (ignored)")
    return values, notes


def with_tag_rules(extra: dict[str, Any], tag_arg: str, tags_config: str) -> dict[str, Any]:
    """``extra`` (the config file's sections) with Mailpit's tagging filters added to its
    ``[[tags]]`` rules (:mod:`postroom.mailpit_tags`).

    Raises:
        ValueError: a filter cannot be read (the text names it).
    """
    from .mailpit_tags import rules

    return {**extra, "tags": [*(extra.get("tags") or []), *rules(tag_arg, tags_config)]}


#: Mailpit's command-line spellings that postroom's own flags do not already have: each
#: sets what its ``MP_*`` variable sets (a flag of postroom's own name, such as --smtp,
#: --max, --max-age, --webroot or --enable-chaos, is postroom's and means the same).
FLAGS: dict[tuple[str, ...], str] = {
    ("--listen", "-l"): "MP_UI_BIND_ADDR",
    ("--database", "-d", "--db-file"): "MP_DATABASE",
    ("-s",): "MP_SMTP_BIND_ADDR",
    ("-m",): "MP_MAX_MESSAGES",
    ("-t",): "MP_TAG",
    ("--max-message-size",): "MP_MAX_MESSAGE_SIZE",
    ("-q",): "MP_QUIET",
    ("--verbose", "-v"): "MP_VERBOSE",
    ("--smtp-auth-accept-any",): "MP_SMTP_AUTH_ACCEPT_ANY",
    ("--smtp-tls-cert", "--smtp-ssl-cert"): "MP_SMTP_TLS_CERT",
    ("--smtp-tls-key", "--smtp-ssl-key"): "MP_SMTP_TLS_KEY",
    ("--smtp-require-starttls", "--smtp-tls-required"): "MP_SMTP_REQUIRE_STARTTLS",
    ("--pop3-auth-file",): "MP_POP3_AUTH_FILE",
    ("--allow-internal-http-requests",): "MP_ALLOW_INTERNAL_HTTP_REQUESTS",
    ("--webhook-url",): "MP_WEBHOOK_URL",
    ("--disable-wal",): "MP_DISABLE_WAL",
    ("--compression",): "MP_COMPRESSION",
    ("--disable-version-check",): "MP_DISABLE_VERSION_CHECK",
    ("--disable-auto-vacuum",): "MP_DISABLE_AUTO_VACUUM",
    ("--tenant-id",): "MP_TENANT_ID",
    ("--disable-http-compression",): "MP_DISABLE_HTTP_COMPRESSION",
    ("--smtp-auth-allow-insecure",): "MP_SMTP_AUTH_ALLOW_INSECURE",
    ("--smtp-disable-rdns",): "MP_SMTP_DISABLE_RDNS",
    ("--enable-prometheus",): "MP_ENABLE_PROMETHEUS",
    ("--chaos-triggers",): "MP_CHAOS_TRIGGERS",
    ("--ui-tls-cert", "--ui-ssl-cert"): "MP_UI_TLS_CERT",
    ("--ui-tls-key", "--ui-ssl-key"): "MP_UI_TLS_KEY",
    ("--block-remote-css-and-fonts",): "MP_BLOCK_REMOTE_CSS_AND_FONTS",
    ("--pop3-tls-cert",): "MP_POP3_TLS_CERT",
    ("--pop3-tls-key",): "MP_POP3_TLS_KEY",
    ("--tags-username",): "MP_TAGS_USERNAME",
    ("--tags-disable",): "MP_TAGS_DISABLE",
    ("--tags-title-case",): "MP_TAGS_TITLE_CASE",
    ("--disable-link-check-rate-limit",): "MP_DISABLE_LINK_CHECK_RATE_LIMIT",
    ("--allow-untrusted-tls",): "MP_ALLOW_UNTRUSTED_TLS",
    ("--log-file",): "MP_LOG_FILE",
    ("--webhook-limit",): "MP_WEBHOOK_LIMIT",
    ("--webhook-delay",): "MP_WEBHOOK_DELAY",
}
# Those of FLAGS that Mailpit reads as switches (given alone, or =true/=false)
_SWITCHES = frozenset(
    {
        "MP_QUIET", "MP_VERBOSE", "MP_SMTP_AUTH_ACCEPT_ANY", "MP_SMTP_REQUIRE_STARTTLS",
        "MP_ALLOW_INTERNAL_HTTP_REQUESTS", "MP_DISABLE_WAL", "MP_DISABLE_VERSION_CHECK",
        "MP_DISABLE_AUTO_VACUUM", "MP_DISABLE_HTTP_COMPRESSION", "MP_SMTP_AUTH_ALLOW_INSECURE",
        "MP_SMTP_DISABLE_RDNS", "MP_BLOCK_REMOTE_CSS_AND_FONTS",
        "MP_TAGS_USERNAME", "MP_TAGS_TITLE_CASE",
        "MP_DISABLE_LINK_CHECK_RATE_LIMIT", "MP_ALLOW_UNTRUSTED_TLS",
    }
)  # fmt: skip
_DEST = "mailpit_flag_"


def add_flags(parser: Any) -> None:
    """Add Mailpit's spellings (:data:`FLAGS`) to ``serve``'s argparse parser."""
    g = parser.add_argument_group("Mailpit's flags (docs/mailpit.md)")
    for names, key in FLAGS.items():
        label = "" if key in _SWITCHES else key[3:]
        extra: dict[str, Any] = {"nargs": "?", "const": "true"} if key in _SWITCHES else {}
        g.add_argument(
            *names, dest=_DEST + key, default=None, metavar=label or "BOOL", help=f"as {key}", **extra
        )


def read_flags(given: Mapping[str, Any], known: frozenset[str]) -> tuple[dict[str, Any], list[str]]:
    """Settings from the Mailpit flags in ``given`` (argparse's namespace as a dict), with
    notes naming the flag; see :func:`read`."""
    env = {k[len(_DEST) :]: str(v) for k, v in given.items() if k.startswith(_DEST) and v is not None}
    flag_of = {key: names[0] for names, key in FLAGS.items()}
    try:
        values, notes = read(env, known)
    except ValueError as e:  # "MP_X: cannot read ...": name the flag that was given
        key, _, rest = str(e).partition(":")
        raise ValueError(f"{flag_of.get(key, key)}:{rest}") from None
    renamed = []
    for note in notes:  # each note starts with the variable's name: name the flag instead
        key, _, rest = note.partition(" ")
        renamed.append(f"{flag_of.get(key, key)} {rest}")
    return values, renamed
