"""Mail providers' server settings (``--preset gmail``), kept as data in ``data/providers.json``.

Used by ``postroom send`` (SMTP) and by fetching (IMAP, POP3). Each provider names its
servers, whether it wants an app password (or an authorization code, as 163 and QQ call
it) instead of the account password, and a one-line hint shown when a login is refused.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

__all__ = ["Endpoint", "Provider", "TlsMode", "UnknownProvider", "client_context", "get", "names"]

TlsMode = Literal["tls", "starttls", "none"]


def client_context(cafile: str, verify: bool) -> ssl.SSLContext:
    """The TLS context of a connection to a mail server (``postroom send``'s SMTP, fetching's
    IMAP and POP3): the system's CAs, or ``cafile``'s; no verification when not ``verify``."""
    ctx = ssl.create_default_context(cafile=cafile or None)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class UnknownProvider(KeyError):
    """No preset by that name; ``str()`` lists the known ones."""

    def __str__(self) -> str:
        return f"unknown preset {self.args[0]!r} (known: {', '.join(names())})"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    tls: TlsMode


@dataclass(frozen=True)
class Provider:
    key: str
    name: str
    smtp: Endpoint | None
    smtps: Endpoint | None
    imap: Endpoint | None
    pop3: Endpoint | None
    app_password: bool
    oauth2: bool
    hint: str


def _endpoint(raw: object) -> Endpoint | None:
    if not isinstance(raw, dict):
        return None
    tls = raw.get("tls", "tls")
    if tls not in ("tls", "starttls", "none"):
        raise ValueError(f"providers.json: bad tls mode {tls!r}")
    return Endpoint(str(raw["host"]), int(raw["port"]), tls)


@cache
def _all() -> dict[str, Provider]:
    text = resources.files("postroom").joinpath("data/providers.json").read_text("utf-8")
    out: dict[str, Provider] = {}
    for key, raw in json.loads(text).items():
        if key.startswith("_"):
            continue
        out[key] = Provider(
            key=key,
            name=str(raw["name"]),
            smtp=_endpoint(raw.get("smtp")),
            smtps=_endpoint(raw.get("smtps")),
            imap=_endpoint(raw.get("imap")),
            pop3=_endpoint(raw.get("pop3")),
            app_password=bool(raw.get("app_password")),
            oauth2=bool(raw.get("oauth2")),
            hint=str(raw.get("hint", "")),
        )
    return out


def names() -> list[str]:
    """The preset names, sorted."""
    return sorted(_all())


def get(key: str) -> Provider:
    """The preset called ``key`` (case-insensitive).

    Raises:
        UnknownProvider: no such preset.
    """
    try:
        return _all()[key.strip().lower()]
    except KeyError:
        raise UnknownProvider(key) from None
