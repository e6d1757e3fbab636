"""Relay and forward configuration, in Mailpit's YAML format (``--smtp-relay-config``,
``--smtp-forward-config``), with postroom's own keys for what Mailpit lacks.

Mailpit's keys: ``host``, ``port``, ``starttls``, ``tls``, ``allow-insecure``, ``auth``
(none, plain, login, cram-md5), ``username``, ``password``, ``secret``, ``return-path``,
``override-from``, ``allowed-recipients`` (a regular expression), ``blocked-recipients``,
``preserve-message-ids``; the forward file also has ``to`` (comma-separated addresses).
postroom adds: ``rate`` (messages a second to this server, default 10) and ``burst``,
``concurrency`` (connections at once, default 4), ``timeout`` (per network step, default
60s), ``retry-base`` (first retry delay,
default 30s), ``retry-max`` (longest delay, default 1h), ``retry-for`` (give up after,
default 24h), ``dkim-domain``, ``dkim-selector``, ``dkim-key`` (a PEM private key file), and
``mx: true`` (no ``host``: deliver to each recipient domain's mail exchanger, RFC 5321 5.1,
on ``mx-port``, default 25, resolving through ``dns-server`` or the system's resolver).

The relay password may come from the environment instead (``password-env: VAR``), so the
file can be committed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..config import ConfigError, parse_dns_server, parse_duration
from .smtp_client import Mode, SmtpTarget

__all__ = [
    "ForwardConfig",
    "RelayConfig",
    "forward_from_keys",
    "load_forward",
    "load_relay",
    "relay_from_keys",
]

# Mailpit's keys (with postroom's) that a file may hold; anything else is a typo to report.
_KEYS = {
    "host", "port", "starttls", "tls", "allow-insecure", "auth", "username", "password", "password-env", "secret",
    "return-path", "override-from", "allowed-recipients", "recipient-allowlist", "blocked-recipients",
    "preserve-message-ids", "forward-smtp-errors", "to", "rate", "burst", "concurrency", "retry-base",
    "retry-max", "retry-for", "dkim-domain", "dkim-selector", "dkim-key", "cafile", "mx", "mx-port", "dns-server", "timeout",
}  # fmt: skip


@dataclass(frozen=True)
class RelayConfig:
    target: SmtpTarget
    return_path: str = ""
    override_from: str = ""
    allowed: re.Pattern[str] | None = None
    blocked: re.Pattern[str] | None = None
    preserve_message_ids: bool = False
    rate: float = 10.0
    burst: int = 10
    concurrency: int = 4
    retry_base: float = 30.0
    retry_max: float = 3600.0
    retry_for: float = 86400.0
    dkim_domain: str = ""
    dkim_selector: str = ""
    dkim_key: bytes = b""
    mx: bool = False  # deliver to each recipient domain's MX instead of one smarthost
    mx_port: int = 25
    dns_server: tuple[str, int] | None = None  # resolver for MX lookups (default: the system's)

    def permits(self, rcpt: str) -> bool:
        """Mailpit's rule: an allow-list regex must match, a block-list regex must not."""
        if self.allowed is not None and not self.allowed.search(rcpt):
            return False
        return not (self.blocked is not None and self.blocked.search(rcpt))


@dataclass(frozen=True)
class ForwardConfig:
    relay: RelayConfig
    to: tuple[str, ...]


def _regex(value: Any, key: str, path: str) -> re.Pattern[str] | None:
    if not value:
        return None
    try:
        return re.compile(str(value), re.IGNORECASE)
    except re.error as e:
        raise ConfigError(f"{path}: {key} is not a regular expression: {e}") from None


def _read(path: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping of settings")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    return data


def _relay(data: dict[str, Any], path: str) -> RelayConfig:
    host = str(data.get("host") or "")
    mx = bool(data.get("mx"))
    if mx and host:
        raise ConfigError(f"{path}: give host (a smarthost) or mx: true, not both")
    if not host and not mx:
        raise ConfigError(f"{path}: host is required (or mx: true to deliver to each domain's MX)")
    tls, starttls = bool(data.get("tls")), bool(data.get("starttls"))
    if tls and starttls:
        raise ConfigError(f"{path}: tls and starttls cannot both be true")
    mode: Mode = "tls" if tls else "starttls" if starttls else "none"
    port = int(data.get("port") or (465 if tls else 587 if starttls else 25))
    auth = str(data.get("auth") or ("plain" if data.get("username") else "none")).lower()
    if auth not in ("none", "plain", "login", "cram-md5"):
        raise ConfigError(f"{path}: auth must be none, plain, login or cram-md5, not {auth!r}")
    password = str(data.get("password") or data.get("secret") or "")
    if data.get("password-env"):
        var = str(data["password-env"])
        if var not in os.environ:
            raise ConfigError(f"{path}: password-env {var} is not set")
        password = os.environ[var]
    key = b""
    if data.get("dkim-key"):
        try:
            key = Path(str(data["dkim-key"])).read_bytes()
        except OSError as e:
            raise ConfigError(f"{path}: dkim-key {data['dkim-key']}: {e.strerror or e}") from None
        if not (data.get("dkim-domain") and data.get("dkim-selector")):
            raise ConfigError(f"{path}: dkim-key needs dkim-domain and dkim-selector")
    target = SmtpTarget(
        host=host, port=port, tls=mode, username=str(data.get("username") or "") if auth != "none" else "",
        password=password if auth != "none" else "", verify=not data.get("allow-insecure"),
        cafile=str(data.get("cafile") or ""), timeout=parse_duration(str(data.get("timeout", "60s"))),
    )  # fmt: skip
    try:
        return RelayConfig(
            target=target,
            return_path=str(data.get("return-path") or ""),
            override_from=str(data.get("override-from") or ""),
            allowed=_regex(
                data.get("allowed-recipients") or data.get("recipient-allowlist"), "allowed-recipients", path
            ),
            blocked=_regex(data.get("blocked-recipients"), "blocked-recipients", path),
            preserve_message_ids=bool(data.get("preserve-message-ids")),
            rate=float(data.get("rate", 10.0)),
            burst=int(data.get("burst", data.get("rate", 10))),
            concurrency=int(data.get("concurrency", 4)),
            retry_base=parse_duration(str(data.get("retry-base", "30s"))),
            retry_max=parse_duration(str(data.get("retry-max", "1h"))),
            retry_for=parse_duration(str(data.get("retry-for", "24h"))),
            dkim_domain=str(data.get("dkim-domain") or ""),
            dkim_selector=str(data.get("dkim-selector") or ""),
            dkim_key=key,
            mx=mx,
            mx_port=int(data.get("mx-port", 25)),
            dns_server=parse_dns_server(str(data["dns-server"])) if data.get("dns-server") else None,
        )
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None


def load_relay(path: str) -> RelayConfig:
    """The relay configuration file at ``path``.

    Raises:
        ConfigError: unreadable, or a setting that cannot work (the text names it).
    """
    return _checked(_relay(_read(path), path), path)


_T = TypeVar("_T")
_SWITCH_KEYS = ("starttls", "tls", "allow-insecure", "preserve-message-ids")


def relay_from_keys(keys: dict[str, str]) -> RelayConfig:
    """The relay Mailpit's per-key ``MP_SMTP_RELAY_*`` variables describe (``keys``: the
    file's key names; a switch is true for ``1``, ``true`` or ``yes``, as Mailpit reads it).

    Raises:
        ConfigError: as :func:`load_relay`, naming ``MP_SMTP_RELAY_*``.
    """
    where = "MP_SMTP_RELAY_*"
    return _from_keys(keys, where, lambda data: _checked(_relay(data, where), where))


def forward_from_keys(keys: dict[str, str]) -> ForwardConfig:
    """The same for ``MP_SMTP_FORWARD_*`` (a relay plus ``to``).

    Raises:
        ConfigError: as :func:`load_forward`, naming ``MP_SMTP_FORWARD_*``.
    """
    where = "MP_SMTP_FORWARD_*"
    return _from_keys(keys, where, lambda data: _forward(data, where))


def _from_keys(keys: dict[str, str], where: str, build: Callable[[dict[str, Any]], _T]) -> _T:
    data: dict[str, Any] = dict(keys)
    for k in _SWITCH_KEYS:
        if k in data:
            data[k] = data[k].strip().lower() in ("1", "true", "yes")
    try:
        return build(data)
    except ValueError as e:  # a port that is not a number
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{where}: {e}") from None


def _checked(cfg: RelayConfig, path: str) -> RelayConfig:
    if cfg.rate <= 0 or cfg.concurrency <= 0 or cfg.burst <= 0:
        raise ConfigError(f"{path}: rate, burst and concurrency must be positive")
    return cfg


def load_forward(path: str) -> ForwardConfig:
    """The forward configuration file at ``path`` (a relay plus ``to``).

    Raises:
        ConfigError: as :func:`load_relay`, or no ``to`` addresses.
    """
    return _forward(_read(path), path)


def _forward(data: dict[str, Any], path: str) -> ForwardConfig:
    to = tuple(a.strip() for a in str(data.get("to") or "").split(",") if a.strip())
    if not to:
        raise ConfigError(f"{path}: to (the addresses to forward to) is required")
    return ForwardConfig(_relay(data, path), to)
