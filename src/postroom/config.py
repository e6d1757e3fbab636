"""One settings object: command-line flags > environment (POSTROOM_*) > Mailpit's environment
(MP_*, see :mod:`postroom.mailpit_env`) > TOML file > defaults.

Every option is declared once in :data:`OPTIONS` (:mod:`postroom.config_options`); the CLI, the environment reader and
the TOML reader are all generated from that table, so a new option is one line here.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from .config_options import OPTIONS, Option, default_db

if TYPE_CHECKING:
    import argparse  # (imported where a parser is built: an SMTP worker process builds none)

__all__ = [
    "OPTIONS",
    "ConfigError",
    "Option",
    "Settings",
    "parse_dns_server",
    "parse_hostport",
    "parse_http_url",
]


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message says which and why."""


@dataclass
class Settings:
    smtp: str = "127.0.0.1:1025"
    smtps: str = "off"
    http: str = "127.0.0.1:8025"
    pop3: str = "127.0.0.1:1110"
    pop3s: str = "off"
    imap: str = "127.0.0.1:1143"
    imaps: str = "off"
    db: str = ""
    max: int = 10000
    max_age: str = ""
    fsync: bool = False
    smtp_workers: str = "auto"
    indexer: str = "process"
    threads_subject: str = "replies"
    threads_window: int = 30
    mailbox_key: str = "address"
    subaddress: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    tls_self_signed: bool = False
    smtp_auth_file: str = ""
    smtp_auth: str = ""
    smtp_require_auth: bool = False
    smtp_require_tls: bool = False
    smtp_max_size: int = 50 * 1024 * 1024
    smtp_max_recipients: int = 1000
    smtp_allowed_recipients: str = ""
    smtp_ignore_rejected_recipients: bool = False
    use_message_dates: bool = False
    smtp_strict_rfc_headers: bool = False
    ignore_duplicate_ids: bool = False
    smtp_max_connections: int = 500
    smtp_hostname: str = "postroom"
    smtp_timeout: int = 300
    smtp_session_limit: int = 3600
    auth_file: str = ""
    pop3_auth: str = ""
    require_tls_login: bool = False
    pop3_timeout: int = 600
    pop3_login_timeout: int = 180
    pop3_max_connections: int = 1000
    pop3_max_per_address: int = 100
    imap_login_timeout: int = 60
    imap_max_connections: int = 1000
    imap_max_per_address: int = 100
    ui_auth_file: str = ""
    ui_auth: str = ""
    send_api_auth_file: str = ""
    send_api_auth_accept_any: bool = False
    label: str = ""
    hide_delete_all_button: bool = False
    tag: str = ""
    tags_config: str = ""
    webroot: str = "/"
    http_tls: bool = False
    allowed_hosts: str = ""
    api_cors: str = ""
    http_header_timeout: float = 10.0
    http_body_timeout: float = 60.0
    http_idle_timeout: float = 75.0
    auth_failure_delay: float = 1.0
    auth_max_failures: int = 10
    auth_lockout: int = 300
    config: str = ""
    log_level: str = "info"
    quiet: bool = False
    print: bool = False
    exit_after: int = 0
    chaos: str = ""
    enable_chaos: bool = False
    webhook: str = ""
    smtp_relay_config: str = ""
    smtp_relay_all: bool = False
    smtp_relay_matching: str = ""
    smtp_forward_config: str = ""
    fetch_config: str = ""
    fetch_state: str = ""
    fetch_interval: float = 60.0
    webhook_retries: int = 5
    enable_spamassassin: str = ""
    link_check_private: bool = False
    checks_dns: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # one line each for Mailpit variables (MP_*) that were not applied; logged at start
    compat_notes: tuple[str, ...] = ()
    # Mailpit's per-key MP_SMTP_RELAY_* variables as (relay YAML key, value): a relay
    # configuration when no --smtp-relay-config file is given
    smtp_relay_keys: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    smtp_forward_keys: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # MP_SMTP_FORWARD_*

    @property
    def db_target(self) -> str:
        return self.db or default_db()

    @property
    def max_age_seconds(self) -> float | None:
        return parse_duration(self.max_age) if self.max_age else None

    def validate(self) -> None:
        """Raise ConfigError naming the first setting that cannot work."""
        for name in ("smtp", "smtps", "http", "pop3", "pop3s", "imap", "imaps"):
            value = getattr(self, name)
            if value != "off":
                parse_hostport(value, name)
        if self.mailbox_key not in ("address", "domain", "local"):
            raise ConfigError(f"--mailbox-key must be address, domain or local, not {self.mailbox_key!r}")
        if self.smtp_workers != "auto" and not (self.smtp_workers.isdigit() and int(self.smtp_workers) <= 16):
            raise ConfigError(
                f"--smtp-workers must be auto or a number from 0 to 16, not {self.smtp_workers!r}"
            )
        if self.indexer not in ("process", "thread"):
            raise ConfigError(f"--indexer must be process or thread, not {self.indexer!r}")
        if self.max < 0:
            raise ConfigError("--max must be 0 or more")
        if self.threads_subject not in ("replies", "all", "off"):
            raise ConfigError(f"--threads-subject must be replies, all or off, not {self.threads_subject!r}")
        if self.threads_window < 0:
            raise ConfigError("--threads-window must be 0 or more days")
        if self.max_age:
            parse_duration(self.max_age)
        try:
            re.compile(self.smtp_allowed_recipients)
        except re.error as e:
            raise ConfigError(f"--smtp-allowed-recipients: not a regular expression: {e}") from None
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("--tls-cert and --tls-key go together")
        for name in (
            "tls_cert",
            "tls_key",
            "smtp_auth_file",
            "auth_file",
            "ui_auth_file",
            "send_api_auth_file",
        ):
            path = getattr(self, name)
            if path and not os.path.isfile(path):
                raise ConfigError(f"--{name.replace('_', '-')}: {_not_a_file(path)}")
        tls = bool(self.tls_cert) or self.tls_self_signed
        for name in ("smtps", "pop3s", "imaps"):
            if getattr(self, name) != "off" and not tls:
                raise ConfigError(f"--{name} needs --tls-cert/--tls-key or --tls-self-signed")
        if self.http_tls and not tls:
            raise ConfigError("--http-tls needs --tls-cert/--tls-key or --tls-self-signed")
        if self.smtp_require_tls and not tls:  # no client could ever send mail
            raise ConfigError("--smtp-require-tls needs --tls-cert/--tls-key or --tls-self-signed")
        if self.smtp_max_size <= 0 or self.smtp_max_recipients <= 0 or self.smtp_max_connections <= 0:
            raise ConfigError("SMTP limits must be positive numbers")
        if self.smtp_timeout <= 0 or self.smtp_session_limit < 0:
            raise ConfigError("--smtp-timeout must be positive and --smtp-session-limit not negative")
        if self.pop3_timeout <= 0 or self.pop3_login_timeout <= 0:
            raise ConfigError("--pop3-timeout and --pop3-login-timeout must be positive numbers")
        if self.pop3_max_connections <= 0 or self.pop3_max_per_address <= 0:
            raise ConfigError("--pop3-max-connections and --pop3-max-per-address must be positive numbers")
        if self.imap_max_connections <= 0 or self.imap_max_per_address <= 0 or self.imap_login_timeout <= 0:
            raise ConfigError(
                "--imap-max-connections, --imap-max-per-address and --imap-login-timeout must be positive numbers"
            )
        for name in ("http_header_timeout", "http_body_timeout", "http_idle_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive number of seconds")
        if self.auth_failure_delay < 0 or self.auth_max_failures < 0 or self.auth_lockout < 0:
            raise ConfigError(
                "--auth-failure-delay, --auth-max-failures and --auth-lockout must be 0 or more"
            )
        if self.exit_after < 0 or self.webhook_retries < 0:
            raise ConfigError("--exit-after and --webhook-retries must be 0 or more")
        for name in ("smtp_relay_config", "smtp_forward_config", "fetch_config"):
            path = getattr(self, name)
            if path and not os.path.isfile(path):
                raise ConfigError(f"--{name.replace('_', '-')}: {_not_a_file(path)}")
        if self.fetch_config and self.imap == "off":
            raise ConfigError(
                "--fetch-config needs the IMAP listener (--imap): fetched mail is stored through it"
            )
        if self.fetch_config and self.auth_file:
            raise ConfigError(
                "--fetch-config with --auth-file is not supported: run `postroom fetch --watch --local-password-env VAR`"
            )
        for keys, path, kind in (
            (self.smtp_relay_keys, self.smtp_relay_config, "relay"),
            (self.smtp_forward_keys, self.smtp_forward_config, "forward"),
        ):
            if keys and path:
                var = f"MP_SMTP_{kind.upper()}"
                raise ConfigError(f"give {var}_CONFIG (--smtp-{kind}-config) or {var}_* variables, not both")
        if (self.smtp_relay_all or self.smtp_relay_matching) and not (
            self.smtp_relay_config or self.smtp_relay_keys
        ):
            raise ConfigError("--smtp-relay-all and --smtp-relay-matching need --smtp-relay-config")
        if self.smtp_relay_matching:
            try:
                re.compile(self.smtp_relay_matching)
            except re.error as e:
                raise ConfigError(f"--smtp-relay-matching: not a regular expression: {e}") from None
        if self.enable_spamassassin:
            parse_hostport(self.enable_spamassassin, "enable-spamassassin")
        if self.checks_dns and self.checks_dns != "off":
            parse_dns_server(self.checks_dns)
        if self.chaos:
            from .runtime.chaos import ChaosError, parse_spec

            try:
                parse_spec(self.chaos)
            except ChaosError as e:
                raise ConfigError(f"--chaos: {e}") from None
        self._read_files()

    def _read_files(self) -> None:
        """Read what the servers read when they start (credentials, webhook URLs, relay,
        forward and fetch configurations), so that a bad one is one line (ConfigError)
        before a store is opened or a port bound. Credentials of a listener that is off
        are not read (nor refused): Mailpit-style containers set ``MP_*`` for every
        listener whichever runs."""
        smtp, http = self.listening("smtp", "smtps"), self.listening("http")
        pop3 = self.listening("pop3", "pop3s")
        if self.auth_file or (smtp and (self.smtp_auth_file or self.smtp_auth)) or (pop3 and self.pop3_auth):
            from .servers.auth import Authenticator  # POP3 and IMAP read --auth-file at a login

            if self.auth_file:
                Authenticator(self.auth_file)
            if smtp and self.smtp_auth_file:
                Authenticator(self.smtp_auth_file)
            elif smtp and self.smtp_auth:
                Authenticator.inline(self.smtp_auth, "--smtp-auth")
            if pop3 and self.pop3_auth and not self.auth_file:  # (--auth-file wins, as in pop3.py)
                Authenticator.inline(self.pop3_auth, "--pop3-auth")
        if http and (self.ui_auth_file or self.ui_auth or self.send_api_auth_file):
            from .web.auth import load_htpasswd

            if self.ui_auth_file:
                load_htpasswd("--ui-auth-file", self.ui_auth_file)
            elif self.ui_auth:
                load_htpasswd("--ui-auth", "", inline=self.ui_auth)
            if self.send_api_auth_file and not self.send_api_auth_accept_any:
                load_htpasswd("--send-api-auth-file", self.send_api_auth_file)
        if self.webhook:
            from .runtime.webhooks import checked_urls

            try:
                checked_urls(self.webhook.split(","))
            except ValueError as e:
                raise ConfigError(f"--webhook: {e}") from None
        if (
            self.smtp_relay_config
            or self.smtp_relay_keys
            or self.smtp_forward_config
            or self.smtp_forward_keys
        ):
            from .outbound.service import read_configs

            read_configs(self)
        if self.fetch_config:
            from .fetch.accounts import load_accounts

            load_accounts(self.fetch_config)

    def listening(self, *names: str) -> bool:
        """Whether any of the listeners ``names`` (``smtp``, ``http``, ...) is on."""
        return any(getattr(self, name) != "off" for name in names)

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_cert) or self.tls_self_signed


def parse_dns_server(value: str) -> tuple[str, int]:
    """``HOST[:PORT]`` of a DNS server (port 53 when not given; ``[v6]:port`` for IPv6)."""
    v = value.strip()
    if v.count(":") > 1 and not v.startswith("["):
        return v, 53  # a bare IPv6 address
    if v.startswith("[") and v.endswith("]"):
        return v[1:-1], 53
    if ":" not in v:
        if not v:
            raise ConfigError("--checks-dns: empty address")
        return v, 53
    return parse_hostport(v, "checks-dns")


def parse_hostport(value: str, name: str = "address") -> tuple[str, int]:
    """'127.0.0.1:1025', ':1025' (all interfaces), '[::1]:1025' or '1025' -> (host, port)."""
    v = value.strip()
    if v.isdigit():
        host, port_s = "127.0.0.1", v
    elif v.startswith("["):
        host, _, rest = v[1:].partition("]")
        port_s = rest.lstrip(":")
    else:
        host, sep, port_s = v.rpartition(":")
        if not sep:
            raise ConfigError(f"--{name}: expected host:port, got {value!r}")
        host = host or "0.0.0.0"
    try:
        port = int(port_s)
    except ValueError:
        raise ConfigError(f"--{name}: bad port in {value!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"--{name}: port out of range in {value!r}")
    return host, port


def _not_a_file(path: str) -> str:
    """Why ``path`` is no file to read a setting from: missing, a directory, a pipe, ..."""
    if not os.path.exists(path):
        return f"no such file: {path}"
    if os.path.isdir(path):
        return f"{path} is a directory"
    return f"{path} is not a regular file"


def parse_http_url(value: str, name: str = "url") -> str:
    """A running postroom's web address, ``http(s)://host[:port][/prefix]``, without the
    trailing slash; anything else is a ConfigError naming ``--name`` (a password in it is
    not repeated)."""
    from urllib.parse import urlsplit

    v = value.strip().rstrip("/")
    parts = urlsplit(v)
    shown = value
    if parts.password is not None:  # the userinfo's password only (it may be empty, or "t")
        user, _, host = parts.netloc.rpartition("@")
        shown = value.replace(parts.netloc, user.split(":", 1)[0] + ":***@" + host, 1)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--{name}: expected an http:// or https:// URL, got {shown!r}")
    try:
        parts.port  # noqa: B018 (validates it)
    except ValueError:
        raise ConfigError(f"--{name}: bad port in {shown!r}") from None
    return v


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """'90' (seconds), '15m', '12h', '7d', '2w' -> seconds."""
    t = text.strip().lower()
    try:
        if t and t[-1] in _UNITS:
            return float(t[:-1]) * _UNITS[t[-1]]
        return float(t)
    except ValueError:
        raise ConfigError(f"bad duration {text!r} (use e.g. 90s, 15m, 12h, 7d)") from None


def _coerce(opt: Option, raw: Any, source: str) -> Any:
    if opt.type is bool:
        if isinstance(raw, bool):
            return raw
        s = str(raw).strip().lower()
        if s in ("1", "true", "yes", "on"):
            return True
        if s in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{source}: expected true or false, got {raw!r}")
    if opt.type is int:
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: expected a number, got {raw!r}") from None
    if opt.type is float:
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: expected a number of seconds, got {raw!r}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{source}: expected a number of seconds, got {raw!r}")
        return value
    return str(raw)


def add_arguments(parser: argparse.ArgumentParser, options: list[Option] | None = None) -> None:
    """Add every option as a flag (defaults are None so that we can tell what was given)."""
    import argparse

    groups: dict[str, argparse._ArgumentGroup] = {}
    for opt in options or OPTIONS:
        g = groups.get(opt.group) or parser.add_argument_group(opt.group)
        groups[opt.group] = g
        flag = "--" + opt.name.replace("_", "-")
        env = "POSTROOM_" + opt.name.upper()
        default = f" (default: {opt.default})" if opt.default not in ("", False, None) else ""
        helptext = f"{opt.help}{default} [env {env}]".replace("%", "%%")  # argparse formats help
        if opt.type is bool:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=helptext)
        else:
            g.add_argument(flag, default=None, metavar=opt.metavar or opt.name.upper(), help=helptext)


def load(args: argparse.Namespace | None = None, env: dict[str, str] | None = None) -> Settings:
    """Build Settings from flags > environment > TOML file > defaults, and validate them."""
    env = dict(os.environ) if env is None else env
    values: dict[str, Any] = {}
    given = vars(args) if args is not None else {}
    config_path = given.get("config") or env.get("POSTROOM_CONFIG") or ""
    if config_path:
        values.update(_read_toml(config_path))
    from . import mailpit_env

    try:
        mp_values, notes = mailpit_env.read(env, frozenset(o.name for o in OPTIONS))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    values.update(mp_values)
    values["compat_notes"] = tuple(notes)
    for opt in OPTIONS:
        key = "POSTROOM_" + opt.name.upper()
        if key in env:
            values[opt.name] = _coerce(opt, env[key], key)
    try:  # Mailpit's flag spellings: above the environment, below postroom's own flags
        flag_values, flag_notes = mailpit_env.read_flags(given, frozenset(o.name for o in OPTIONS))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    values.update(flag_values)
    values["compat_notes"] += tuple(flag_notes)
    for opt in OPTIONS:
        v = given.get(opt.name)
        if v is not None:
            values[opt.name] = _coerce(opt, v, "--" + opt.name.replace("_", "-"))
    known = {f.name for f in fields(Settings)}
    settings = Settings(**{k: v for k, v in values.items() if k in known})
    if settings.tag or settings.tags_config:  # Mailpit's tagging filters join the [[tags]] rules
        try:
            settings.extra = mailpit_env.with_tag_rules(settings.extra, settings.tag, settings.tags_config)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    settings.validate()
    return settings


# Top-level keys of a --config file that are not settings but switches read from
# Settings.extra: threading = false (store/thread_index.py).
EXTRA_SWITCHES = frozenset({"threading"})


def _read_toml(path: str) -> dict[str, Any]:
    import tomllib  # (only for a --config file: ~14 ms of CPU for every process that imports config)
    from pathlib import Path  # (likewise: ~3 ms with urllib.parse)

    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"--config: no such file: {path}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--config {path}: not UTF-8 text") from None
    except OSError as e:  # a directory, no permission
        raise ConfigError(f"--config {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"--config {path}: {e}") from None
    by_name = {o.name: o for o in OPTIONS}
    out: dict[str, Any] = {}
    for k, v in data.items():
        name = k.replace("-", "_")
        if name in by_name:
            out[name] = _coerce(by_name[name], v, f"{path}: {k}")
        elif (
            name in EXTRA_SWITCHES
            or isinstance(v, dict)
            or (isinstance(v, list) and all(isinstance(t, dict) for t in v))
        ):
            out.setdefault("extra", {})[name] = v  # sections for rules, webhooks, tagging...
        else:  # a misspelt setting would otherwise be ignored without a word
            import difflib

            near = difflib.get_close_matches(name, by_name, n=1)
            hint = f" (did you mean {near[0].replace('_', '-')}?)" if near else ""
            raise ConfigError(f"{path}: {k}: not a setting{hint}")
    return out
