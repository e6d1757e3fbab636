"""Credentials files (servers/auth.py) and the server TLS context (servers/tls.py)."""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509

from postroom.config import ConfigError, Settings
from postroom.servers.auth import Authenticator, parse_credentials
from postroom.servers.tls import generate_self_signed, make_server_context

# -- credentials ----------------------------------------------------------------------------


def test_parse_credentials_keeps_colons_in_passwords_and_skips_comments() -> None:
    text = "# comment\n\nAlice@Example.org:pa:ss\n  bob : x y \n"
    assert parse_credentials(text) == {"alice@example.org": "pa:ss", "bob": " x y"}


@pytest.mark.parametrize("line", ["no-colon", ":password-without-user"])
def test_parse_credentials_names_the_bad_line(line: str) -> None:
    with pytest.raises(ConfigError, match=r"users:2: expected user:password"):
        parse_credentials(f"ok:1\n{line}\n", "users")


def test_password_cram_md5_and_apop_checks(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("alice@example.org:secret\n")
    auth = Authenticator(str(path))
    assert auth.check_password("ALICE@example.org", "secret")
    assert not auth.check_password("alice@example.org", "Secret")
    assert not auth.check_password("nobody@example.org", "secret")
    challenge = "<1.2@postroom>"
    digest = hmac.new(b"secret", challenge.encode(), hashlib.md5).hexdigest()
    assert auth.check_cram_md5("alice@example.org", challenge, digest.upper())
    assert not auth.check_cram_md5("alice@example.org", "<other@postroom>", digest)
    apop = hashlib.md5(b"<9.9@postroom>secret").hexdigest()
    assert auth.check_apop("alice@example.org", "<9.9@postroom>", apop)
    assert not auth.check_apop("bob@example.org", "<9.9@postroom>", apop)
    assert auth.knows("alice@example.org") and not auth.knows("bob@example.org")


def test_credentials_are_read_again_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("alice:one\n")
    auth = Authenticator(str(path))
    assert auth.check_password("alice", "one")
    path.write_text("alice:two\n")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert auth.check_password("alice", "two") and not auth.check_password("alice", "one")
    path.write_text("broken line\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    assert auth.check_password("alice", "two")  # a broken edit keeps the old credentials


def test_unreadable_credentials_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read credentials file"):
        Authenticator(str(tmp_path / "missing"))


# -- TLS --------------------------------------------------------------------------------------


def _handshake(ctx: ssl.SSLContext) -> x509.Certificate:
    """Do a real TLS handshake against ``ctx`` over a socket pair; return the peer cert."""
    a, b = socket.socketpair()
    client_ctx = ssl.create_default_context()
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with ctx.wrap_socket(a, server_side=True) as s:
                s.sendall(b"hi")
        except BaseException as e:  # surfaced by the assertion below
            errors.append(e)

    t = threading.Thread(target=serve)
    t.start()
    with client_ctx.wrap_socket(b, server_hostname="localhost") as c:
        assert c.recv(2) == b"hi"
        der = c.getpeercert(binary_form=True)
    t.join(10)
    assert not errors
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_self_signed_context_serves_a_certificate_for_localhost() -> None:
    ctx = make_server_context(Settings(tls_self_signed=True, smtp_hostname="mail.test"))
    cert = _handshake(ctx)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "mail.test"}
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}


def test_certificate_files_are_loaded(tmp_path: Path) -> None:
    cert_pem, key_pem = generate_self_signed("files.test")
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    ctx = make_server_context(
        Settings(tls_cert=str(tmp_path / "cert.pem"), tls_key=str(tmp_path / "key.pem"))
    )
    cert = _handshake(ctx)
    common_names = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    assert [a.value for a in common_names] == ["files.test"]


def test_a_bad_certificate_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate")
    (tmp_path / "key.pem").write_text("not a key")
    with pytest.raises(ConfigError, match="cannot load"):
        make_server_context(Settings(tls_cert=str(tmp_path / "cert.pem"), tls_key=str(tmp_path / "key.pem")))


def test_no_tls_configured_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        make_server_context(Settings())


def test_require_tls_without_a_certificate_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="--smtp-require-tls needs"):
        Settings(smtp_require_tls=True).validate()
    Settings(smtp_require_tls=True, tls_self_signed=True).validate()
