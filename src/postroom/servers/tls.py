"""TLS for every listener: one server :class:`ssl.SSLContext` built at start.

Either from ``--tls-cert``/``--tls-key`` (PEM files), or, with ``--tls-self-signed``, from
a key and certificate generated in memory at start (ECDSA P-256, valid for ``localhost``,
the SMTP host name, 127.0.0.1 and ::1). The generated key is written only to a private
temporary directory for the moment :meth:`ssl.SSLContext.load_cert_chain` needs a path,
and removed at once.

Errors::

    ConfigError (postroom.config)   a certificate or key that cannot be loaded
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile

from ..config import ConfigError, Settings

__all__ = ["SELF_SIGNED_DAYS", "generate_self_signed", "make_server_context"]

#: Lifetime of a generated certificate. Short on purpose: it is made again at every start.
SELF_SIGNED_DAYS = 365


def make_server_context(settings: Settings) -> ssl.SSLContext:
    """The server-side context for STARTTLS and implicit TLS.

    Raises:
        ConfigError: the certificate or key cannot be loaded, or no TLS was configured.
    """
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.tls_cert:
        try:
            ctx.load_cert_chain(settings.tls_cert, settings.tls_key or None)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"--tls-cert/--tls-key: cannot load {settings.tls_cert}: {e}") from None
        return ctx
    if not settings.tls_self_signed:
        raise ConfigError("TLS needs --tls-cert/--tls-key or --tls-self-signed")
    cert_pem, key_pem = generate_self_signed(settings.smtp_hostname)
    _load_pem(ctx, cert_pem, key_pem)
    return ctx


def generate_self_signed(hostname: str = "localhost") -> tuple[bytes, bytes]:
    """A fresh self-signed certificate and its private key, both PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, hostname or "localhost"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "postroom (self-signed)"),
        ]
    )
    dns = {"localhost", hostname} - {""}
    alt: list[x509.GeneralName] = [x509.DNSName(d) for d in sorted(dns)]
    alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert_pem, key_pem


def _load_pem(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    # load_cert_chain only reads files: use a private directory, gone when we return
    with tempfile.TemporaryDirectory(prefix="postroom-tls-") as tmp:
        path = os.path.join(tmp, "server.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem + cert_pem)
        ctx.load_cert_chain(path)
