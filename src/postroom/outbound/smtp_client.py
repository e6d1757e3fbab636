"""Hand one message to an SMTP server (submission), with errors a person can act on.

Used by ``postroom send`` and ``postroom sendmail``. TLS modes: ``tls`` is implicit TLS
(RFC 8314, port 465), ``starttls`` upgrades a plain connection (RFC 3207, port 587),
``none`` stays plain, and ``auto`` picks implicit TLS on 465 and STARTTLS elsewhere when the
server offers it. Authentication: PLAIN or LOGIN (whichever the server offers, smtplib's
order) with a password, or XOAUTH2 (Google's and Microsoft's SASL mechanism) with an
OAuth2 access token. A password is never sent over a plain connection to a host that is
not loopback unless the caller chose ``tls="none"``.

Errors: every failure is a :class:`DeliveryError` whose text is one line naming the likely
cause (wrong port for the TLS mode, an app password needed, a certificate not trusted);
``permanent`` tells a 5xx refusal from a temporary one.
"""

from __future__ import annotations

import ipaddress
import smtplib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..providers import Provider, client_context

__all__ = ["DeliveryError", "SmtpTarget", "deliver"]

Mode = Literal["auto", "tls", "starttls", "none"]

# Reply texts (lower case) by which providers say "not with your account password".
_APP_PASSWORD_WORDS = (
    "application-specific password",
    "app password",
    "authorization code",
    "授权码",
    "basic authentication is disabled",
    "smtpclientauthentication is disabled",
)


class DeliveryError(Exception):
    """The message was not handed over; ``str()`` is one line for a person.

    Attributes:
        code: the SMTP reply code, when the server answered one.
        permanent: True for a 5xx refusal (retrying will not help).
    """

    def __init__(self, text: str, code: int | None = None) -> None:
        super().__init__(text)
        self.code = code
        self.permanent = code is not None and 500 <= code < 600


@dataclass(frozen=True)
class SmtpTarget:
    """Where and how to connect."""

    host: str
    port: int
    tls: Mode = "auto"
    username: str = ""
    password: str = ""
    oauth2_token: str = ""
    timeout: float = 30.0
    cafile: str = ""
    verify: bool = True
    helo: str = ""
    provider: Provider | None = None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def mode(self) -> Literal["tls", "starttls", "none", "opportunistic"]:
        if self.tls != "auto":
            return self.tls
        return "tls" if self.port == 465 else "opportunistic"


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _context(t: SmtpTarget) -> ssl.SSLContext:
    return client_context(t.cafile, t.verify)


def _text(resp: bytes | str) -> str:
    s = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)
    return " ".join(s.split())


def _connect(t: SmtpTarget) -> smtplib.SMTP:
    mode = t.mode()
    helo = t.helo or None
    try:
        if mode == "tls":
            return smtplib.SMTP_SSL(
                t.host, t.port, local_hostname=helo, timeout=t.timeout, context=_context(t)
            )
        return smtplib.SMTP(t.host, t.port, local_hostname=helo, timeout=t.timeout)
    except socket.gaierror:
        raise DeliveryError(f"cannot resolve host {t.host!r} (check the name, or the DNS)") from None
    except ConnectionRefusedError:
        raise DeliveryError(
            f"connection refused by {t.where}: nothing listens there (wrong port, or the server is down)"
        ) from None
    except ssl.SSLCertVerificationError as e:
        raise DeliveryError(
            f"the certificate of {t.where} is not trusted ({e.verify_message}); pass --cafile FILE, or --insecure for a test server"
        ) from None
    except ssl.SSLError as e:
        if (
            "WRONG_VERSION_NUMBER" in str(e)
            or "record layer failure" in str(e)
            or "UNKNOWN_PROTOCOL" in str(e)
        ):
            raise DeliveryError(
                f"TLS handshake with {t.where} failed: it speaks plain SMTP there; use --tls starttls (port 587 or 25) instead of implicit TLS"
            ) from None
        raise DeliveryError(f"TLS handshake with {t.where} failed: {e.reason or e}") from None
    except (TimeoutError, smtplib.SMTPServerDisconnected) as e:
        if t.port == 465 and mode != "tls":
            raise DeliveryError(
                f"no SMTP greeting from {t.where}: port 465 expects implicit TLS; use --tls tls"
            ) from None
        what = "timed out" if isinstance(e, TimeoutError) else "closed the connection"
        raise DeliveryError(
            f"{t.where} {what} before its greeting (firewall, wrong port, or a TLS port: try --tls tls)"
        ) from None
    except smtplib.SMTPConnectError as e:
        raise DeliveryError(
            f"{t.where} refused the session: {e.smtp_code} {_text(e.smtp_error)}", e.smtp_code
        ) from None
    except OSError as e:
        raise DeliveryError(f"cannot connect to {t.where}: {e.strerror or e}") from None


def _secure(smtp: smtplib.SMTP, t: SmtpTarget) -> None:
    mode = t.mode()
    smtp.ehlo_or_helo_if_needed()
    if mode in ("starttls", "opportunistic") and smtp.has_extn("starttls"):
        try:
            smtp.starttls(context=_context(t))
        except ssl.SSLCertVerificationError as e:
            raise DeliveryError(
                f"the certificate of {t.where} is not trusted ({e.verify_message}); pass --cafile FILE, or --insecure for a test server"
            ) from None
        except ssl.SSLError as e:
            raise DeliveryError(f"STARTTLS with {t.where} failed: {e.reason or e}") from None
        smtp.ehlo()
    elif mode == "starttls":
        raise DeliveryError(
            f"{t.where} does not offer STARTTLS; use --tls tls for an implicit-TLS port (465) or --tls none for a plain test server"
        )
    secure = mode == "tls" or isinstance(smtp.sock, ssl.SSLSocket)
    if (t.password or t.oauth2_token) and not secure and t.tls != "none" and not _is_loopback(t.host):
        raise DeliveryError(
            f"{t.where} offers no TLS: refusing to send the password in clear text (--tls none allows it)"
        )


def _login(smtp: smtplib.SMTP, t: SmtpTarget) -> None:
    if not (t.username or t.oauth2_token):
        return
    if not smtp.has_extn("auth"):
        extra = (
            "" if isinstance(smtp.sock, ssl.SSLSocket) else " (some servers offer AUTH only after STARTTLS)"
        )
        raise DeliveryError(f"{t.where} does not offer AUTH{extra}")
    try:
        if t.oauth2_token:
            sasl = f"user={t.username}\x01auth=Bearer {t.oauth2_token}\x01\x01"
            smtp.auth("XOAUTH2", lambda challenge=None: "" if challenge else sasl, initial_response_ok=True)
        else:
            smtp.login(t.username, t.password)
    except smtplib.SMTPAuthenticationError as e:
        reply = _text(e.smtp_error)
        hint = ""
        if t.provider and t.provider.hint:
            hint = f"; {t.provider.hint}"
        elif any(w in reply.lower() for w in _APP_PASSWORD_WORDS):
            hint = "; the provider wants an app password (or OAuth2 token), not the account password"
        raise DeliveryError(
            f"login as {t.username!r} refused by {t.where}: {e.smtp_code} {reply}{hint}", e.smtp_code
        ) from None
    except smtplib.SMTPNotSupportedError:
        raise DeliveryError(f"{t.where} does not offer AUTH") from None
    except smtplib.SMTPException as e:
        offered = smtp.esmtp_features.get("auth", "").strip() or "none"
        want = "XOAUTH2" if t.oauth2_token else "PLAIN, LOGIN or CRAM-MD5"
        raise DeliveryError(f"{t.where} offers AUTH {offered}; postroom needs {want} ({e})") from None


def deliver(target: SmtpTarget, mail_from: str, rcpts: Sequence[str], data: bytes) -> dict[str, str]:
    """Send ``data`` from ``mail_from`` to ``rcpts``.

    Returns:
        The recipients the server refused (address -> reply) while taking the message for
        the others; empty when every recipient was accepted.

    Raises:
        DeliveryError: nothing was accepted (every recipient refused, or a connection,
            TLS, login, sender or data failure).
    """
    if not rcpts:
        raise DeliveryError("no recipients")
    options: list[str] = []
    smtp = _connect(target)
    try:
        _secure(smtp, target)
        _login(smtp, target)
        if not all(a.isascii() for a in (mail_from, *rcpts)):
            if not smtp.has_extn("smtputf8"):
                raise DeliveryError(f"{target.where} lacks SMTPUTF8, needed for a non-ASCII address")
            options.append("SMTPUTF8")
        if not data.isascii() and smtp.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        if smtp.has_extn("size"):
            options.append(f"SIZE={len(data)}")
        refused = smtp.sendmail(mail_from, list(rcpts), data, mail_options=options)
        return {r: f"{code} {_text(text)}" for r, (code, text) in refused.items()}
    except smtplib.SMTPSenderRefused as e:
        raise DeliveryError(
            f"sender <{mail_from}> refused by {target.where}: {e.smtp_code} {_text(e.smtp_error)}",
            e.smtp_code,
        ) from None
    except smtplib.SMTPRecipientsRefused as e:
        codes = [c for c, _ in e.recipients.values()]
        detail = "; ".join(f"{r}: {c} {_text(t)}" for r, (c, t) in e.recipients.items())
        code = min(codes) if codes else None
        raise DeliveryError(f"every recipient refused by {target.where}: {detail}", code) from None
    except smtplib.SMTPDataError as e:
        raise DeliveryError(
            f"message refused by {target.where}: {e.smtp_code} {_text(e.smtp_error)}", e.smtp_code
        ) from None
    except smtplib.SMTPServerDisconnected:
        raise DeliveryError(f"{target.where} closed the connection mid-session") from None
    except (TimeoutError, OSError) as e:
        if isinstance(e, ssl.SSLError):
            raise DeliveryError(f"TLS failure talking to {target.where}: {e.reason or e}") from None
        raise DeliveryError(f"connection to {target.where} failed mid-session: {e}") from None
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
