"""The table of postroom's options (:data:`OPTIONS`), one :class:`Option` each; read by
:mod:`postroom.config` (CLI, environment, TOML) and ``scripts/gen_config_doc.py``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

__all__ = ["OPTIONS", "Option", "default_db"]


@dataclass(frozen=True)
class Option:
    name: str  # attribute of Settings; flag is --name-with-dashes; env is POSTROOM_NAME
    type: type
    default: Any
    help: str
    group: str = "general"
    metavar: str | None = None


def default_db() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "postroom", "postroom.db")


OPTIONS: list[Option] = [
    # listeners
    Option("smtp", str, "127.0.0.1:1025", "SMTP listen address (host:port, or 'off')", "listeners", "ADDR"),
    Option(
        "smtps", str, "off", "implicit-TLS SMTP listen address (needs a certificate)", "listeners", "ADDR"
    ),
    Option("http", str, "127.0.0.1:8025", "HTTP (web UI and API) listen address", "listeners", "ADDR"),
    Option("pop3", str, "127.0.0.1:1110", "POP3 listen address", "listeners", "ADDR"),
    Option("pop3s", str, "off", "implicit-TLS POP3 listen address", "listeners", "ADDR"),
    Option("imap", str, "127.0.0.1:1143", "IMAP listen address", "listeners", "ADDR"),
    Option("imaps", str, "off", "implicit-TLS IMAP listen address", "listeners", "ADDR"),
    # storage
    Option(
        "db",
        str,
        "",
        "database: a SQLite file path, ':memory:', or postgresql://... shared by several nodes "
        "(default: ~/.local/share/postroom/postroom.db)",
        "storage",
        "PATH",
    ),
    Option(
        "max", int, 10000, "keep at most this many messages (0: no limit); oldest are pruned", "storage", "N"
    ),
    Option(
        "max_age", str, "", "prune messages older than this (e.g. 12h, 7d; empty: keep)", "storage", "AGE"
    ),
    Option(
        "fsync",
        bool,
        False,
        "fsync the database at every commit, so that acknowledged mail survives power loss too "
        "(it always survives a crash of postroom); slower",
        "storage",
    ),
    Option(
        "smtp_workers",
        str,
        "auto",
        "processes that accept SMTP on the same socket and journal each message for this one to store, "
        "for throughput beyond one CPU core; 0: SMTP in this process; auto: 2 on a machine with 2 or "
        "more cores, else 0 (never with --fsync, chaos or handlers)",
        "smtp",
        "N",
    ),
    Option(
        "indexer",
        str,
        "process",
        "where full-text indexing runs: 'process' (its own process, so it uses another core) or 'thread'",
        "storage",
        "WHERE",
    ),
    # conversations (docs/threads.md)
    Option(
        "threads_subject",
        str,
        "replies",
        "join conversations by subject alone: replies (Re:/AW:/... without References), all, or off",
        "conversations",
        "POLICY",
    ),
    Option(
        "threads_window",
        int,
        30,
        "subject-only grouping links messages at most this many days apart (0: no limit)",
        "conversations",
        "DAYS",
    ),
    # mailboxes
    Option(
        "mailbox_key",
        str,
        "address",
        "what names a recipient's mailbox: address, domain or local",
        "mailboxes",
        "KEY",
    ),
    Option("subaddress", bool, False, "file user+tag@ under user@ and tag the message 'tag'", "mailboxes"),
    # TLS
    Option("tls_cert", str, "", "PEM certificate for STARTTLS and implicit TLS", "tls", "FILE"),
    Option("tls_key", str, "", "PEM private key for --tls-cert", "tls", "FILE"),
    Option("tls_self_signed", bool, False, "generate a self-signed certificate at start", "tls"),
    # SMTP
    Option(
        "smtp_auth_file",
        str,
        "",
        "credentials for SMTP AUTH (lines of user:password); default accepts any",
        "smtp",
        "FILE",
    ),
    Option("smtp_auth", str, "", "inline SMTP AUTH logins 'user:password ...' (Mailpit's)", "smtp", "PAIRS"),
    Option("smtp_require_auth", bool, False, "refuse mail from clients that did not AUTH", "smtp"),
    Option("smtp_require_tls", bool, False, "refuse AUTH and mail before STARTTLS", "smtp"),
    Option(
        "smtp_max_size", int, 50 * 1024 * 1024, "largest message accepted, in bytes (SIZE)", "smtp", "BYTES"
    ),
    Option("smtp_max_recipients", int, 1000, "recipients per message", "smtp", "N"),
    Option("smtp_allowed_recipients", str, "", "refuse recipients not matching this regex", "smtp", "REGEX"),
    Option(
        "smtp_ignore_rejected_recipients",
        bool,
        False,
        "answer 250 to recipients --smtp-allowed-recipients refuses, and drop them",
        "smtp",
    ),
    Option(
        "smtp_strict_rfc_headers",
        bool,
        False,
        "refuse a message with CR CR LF (a CR without LF) in its header",
        "smtp",
    ),
    Option("use_message_dates", bool, False, "a message's Created is its Date header's time", "smtp"),
    Option("ignore_duplicate_ids", bool, False, "accept but drop mail whose Message-ID is stored", "smtp"),
    Option("smtp_max_connections", int, 500, "concurrent SMTP connections", "smtp", "N"),
    Option(
        "smtp_hostname", str, "postroom", "name in the SMTP greeting and Received: headers", "smtp", "NAME"
    ),
    Option(
        "smtp_timeout",
        int,
        300,
        "seconds an SMTP client gets to finish each command, counted from the last reply (RFC 5321 4.5.3.2.7)",
        "smtp",
        "S",
    ),
    Option(
        "smtp_session_limit",
        int,
        3600,
        "seconds one SMTP connection may last in all (0: no limit)",
        "smtp",
        "S",
    ),
    # POP3 / IMAP
    Option(
        "auth_file",
        str,
        "",
        "credentials for POP3/IMAP (lines of user:password); default accepts any password",
        "pop3/imap",
        "FILE",
    ),
    Option(
        "pop3_auth",
        str,
        "",
        "inline POP3 logins 'user:password ...' (Mailpit's MP_POP3_AUTH; --auth-file wins)",
        "pop3/imap",
        "PAIRS",
    ),
    Option("require_tls_login", bool, False, "refuse plaintext POP3/IMAP login without TLS", "pop3/imap"),
    Option(
        "pop3_timeout",
        int,
        600,
        "seconds a logged-in POP3 client may take for its next command (RFC 1939 section 3: at least 600)",
        "pop3/imap",
        "S",
    ),
    Option(
        "pop3_login_timeout",
        int,
        180,
        "seconds a POP3 client gets to log in, from its connect (not restarted by commands)",
        "pop3/imap",
        "S",
    ),
    Option("pop3_max_connections", int, 1000, "concurrent POP3 connections in all", "pop3/imap", "N"),
    Option(
        "pop3_max_per_address",
        int,
        100,
        "concurrent POP3 connections from one client address (an idle unauthenticated one is "
        "dropped first to make room)",
        "pop3/imap",
        "N",
    ),
    Option(
        "imap_login_timeout",
        int,
        60,
        "seconds an IMAP client gets to log in, from its connect (not restarted by input)",
        "pop3/imap",
        "S",
    ),
    Option("imap_max_connections", int, 1000, "concurrent IMAP connections in all", "pop3/imap", "N"),
    Option(
        "imap_max_per_address",
        int,
        100,
        "concurrent IMAP connections from one client address (an idle unauthenticated one is "
        "dropped first to make room)",
        "pop3/imap",
        "N",
    ),
    # web
    Option("ui_auth_file", str, "", "htpasswd file protecting the web UI and API", "web", "FILE"),
    Option("ui_auth", str, "", "inline UI/API logins 'user:password ...' (Mailpit's)", "web", "PAIRS"),
    Option("send_api_auth_file", str, "", "htpasswd file for POST /api/v1/send alone", "web", "FILE"),
    Option("send_api_auth_accept_any", bool, False, "POST /api/v1/send needs no login", "web"),
    Option("label", str, "", "a name for this server, in the UI's title", "web", "TEXT"),
    Option("hide_delete_all_button", bool, False, "no 'Delete all' button in the web UI", "web"),
    Option("tag", str, "", "tag new mail by search: 'TAGS=FILTER ...' (docs/mailpit.md)", "web", "RULES"),
    Option("tags_config", str, "", "Mailpit's YAML file of tagging filters (docs/mailpit.md)", "web", "FILE"),
    Option("webroot", str, "/", "URL path prefix of the UI and API", "web", "PATH"),
    Option("http_tls", bool, False, "serve HTTPS with --tls-cert/--tls-key (or self-signed)", "web"),
    Option(
        "allowed_hosts",
        str,
        "",
        "extra Host names the web UI and API answer to, comma-separated ('.example.com' for a domain "
        "and its subdomains, '*' for any); loopback names, IP addresses and single-label names are "
        "always allowed (protection against DNS rebinding, docs/security.md)",
        "web",
        "NAMES",
    ),
    Option(
        "api_cors",
        str,
        "",
        "origins allowed to call the API from a browser (CORS), comma-separated, e.g. "
        "'https://app.example:3000', or '*' (Mailpit's --api-cors); default: none",
        "web",
        "ORIGINS",
    ),
    Option(
        "http_header_timeout",
        float,
        10.0,
        "seconds a client gets to send a request's line and headers (slowloris)",
        "web",
        "S",
    ),
    Option("http_body_timeout", float, 60.0, "seconds a client gets to send a request body", "web", "S"),
    Option(
        "http_idle_timeout", float, 75.0, "seconds an idle keep-alive HTTP connection stays open", "web", "S"
    ),
    # failed logins (HTTP basic auth, SMTP AUTH, POP3, IMAP; docs/security.md)
    Option(
        "auth_failure_delay",
        float,
        1.0,
        "seconds each failed login waits before its answer",
        "authentication",
        "S",
    ),
    Option(
        "auth_max_failures",
        int,
        10,
        "failed logins from one client address within --auth-lockout seconds before that address "
        "is refused (0: no limit)",
        "authentication",
        "N",
    ),
    Option(
        "auth_lockout",
        int,
        300,
        "seconds a failed login counts against its client address",
        "authentication",
        "S",
    ),
    # misc
    Option(
        "config",
        str,
        "",
        "TOML file with settings (keys as the long flag names, dashes or underscores)",
        "general",
        "FILE",
    ),
    Option("log_level", str, "info", "debug, info, warning or error", "general", "LEVEL"),
    Option("quiet", bool, False, "print nothing but errors", "general"),
    # testing (see docs/testing.md)
    Option("print", bool, False, "print each message to standard output as it arrives", "testing"),
    Option("exit_after", int, 0, "stop after this many messages have arrived (0: never)", "testing", "N"),
    Option(
        "chaos",
        str,
        "",
        "inject SMTP faults, e.g. 'rcpt:451:50%;data:delay=2' (see docs/testing.md)",
        "testing",
        "SPEC",
    ),
    Option("enable_chaos", bool, False, "let the API change faults (Mailpit's /api/v1/chaos)", "testing"),
    Option(
        "webhook",
        str,
        "",
        "POST a JSON summary of each new message to these URLs (comma-separated)",
        "testing",
        "URLS",
    ),
    # outbound (see docs/relay.md)
    Option(
        "smtp_relay_config",
        str,
        "",
        "YAML file (Mailpit's keys) naming the SMTP server that release and relay send through",
        "relay",
        "FILE",
    ),
    Option("smtp_relay_all", bool, False, "relay every new message to its recipients (caution!)", "relay"),
    Option(
        "smtp_relay_matching",
        str,
        "",
        "relay new messages to the recipients matching this regular expression",
        "relay",
        "REGEX",
    ),
    # fetch (see docs/fetch.md)
    Option(
        "fetch_config",
        str,
        "",
        "TOML file with [fetch.accounts.NAME] tables: fetch these accounts into this server while it runs",
        "fetch",
        "FILE",
    ),
    Option(
        "fetch_state",
        str,
        "",
        "sync state file of --fetch-config (default ~/.local/state/postroom/fetch-state.sqlite)",
        "fetch",
        "FILE",
    ),
    Option(
        "fetch_interval",
        float,
        60.0,
        "seconds between fetches of each --fetch-config account (new mail comes at once by IMAP IDLE)",
        "fetch",
        "S",
    ),
    Option(
        "smtp_forward_config",
        str,
        "",
        "YAML file: a relay plus 'to', forwarding a copy of every new message to those addresses",
        "relay",
        "FILE",
    ),
    # checks (see docs/checks.md)
    Option(
        "enable_spamassassin",
        str,
        "",
        "spamd address HOST:PORT for the SpamAssassin check (Mailpit's flag)",
        "checks",
        "ADDR",
    ),
    Option(
        "link_check_private",
        bool,
        False,
        "let the link check request loopback, private and link-local addresses",
        "checks",
    ),
    Option(
        "checks_dns",
        str,
        "",
        "DNS server HOST[:PORT] for SPF/DKIM/DMARC (default: the system's; 'off': not checked)",
        "checks",
        "ADDR",
    ),
    Option(
        "webhook_retries", int, 5, "retries of a failed webhook POST (backoff 1 s, doubling)", "testing", "N"
    ),
]
