"""A postroom configured only the way a Mailpit container is (MP_* variables), and
`postroom readyz` / `postroom version`, as a compose file's health check runs them."""

from __future__ import annotations

import base64
import os
import signal
import smtplib
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest

from postroom import mailpit_env
from postroom.config import ConfigError, load
from tests.helpers import free_port, wait_for_port

POSTROOM = str(Path(sys.executable).with_name("postroom"))


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTROOM_", "MP_"))}
    env.update(extra)
    return env


def _get(url: str, auth: tuple[str, str] | None = None) -> int:
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_a_mailpit_style_environment_alone_configures_postroom(tmp_path: Path) -> None:
    smtp, http, pop3 = free_port(), free_port(), free_port()
    users = tmp_path / "ui-users"
    users.write_text("admin:" + bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode() + "\n")
    env = _env({
        "MP_SMTP_BIND_ADDR": f"127.0.0.1:{smtp}",
        "MP_UI_BIND_ADDR": f"127.0.0.1:{http}",
        "MP_POP3_BIND_ADDR": f"127.0.0.1:{pop3}",
        "MP_DATABASE": str(tmp_path / "mailpit.db"),
        "MP_MAX_MESSAGES": "2",
        "MP_MAX_MESSAGE_SIZE": "1",
        "MP_SMTP_AUTH_ACCEPT_ANY": "true",
        "MP_UI_AUTH_FILE": str(users),
        "MP_WEBROOT": "/mail/",
        "MP_TAG": "important=subject:urgent",
        "MP_DISABLE_WAL": "true",
        "POSTROOM_IMAP": "off",
    })  # fmt: skip
    proc = subprocess.Popen([POSTROOM, "serve"], env=env, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for_port(http, proc=proc)
        wait_for_port(smtp, proc=proc)
        wait_for_port(pop3, proc=proc)
        # the health check finds it from the same environment (address and webroot)
        r = subprocess.run([POSTROOM, "readyz"], env=env, capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        base = f"http://127.0.0.1:{http}/mail"
        assert _get(f"{base}/api/v1/messages") == 401  # MP_UI_AUTH_FILE
        assert _get(f"{base}/api/v1/messages", ("admin", "pw")) == 200
        with smtplib.SMTP("127.0.0.1", smtp, timeout=20) as c:
            for i in range(3):
                c.sendmail("a@example.org", ["b@example.org"], f"Subject: m{i}\r\n\r\nx\r\n".encode())
            with pytest.raises(
                (smtplib.SMTPSenderRefused, smtplib.SMTPDataError)
            ) as big:  # MP_MAX_MESSAGE_SIZE=1 (MB)
                c.sendmail("a@example.org", ["b@example.org"], b"Subject: big\r\n\r\n" + b"x" * 1_100_000)
            assert big.value.smtp_code == 552  # refused at MAIL FROM SIZE=
            c.sendmail("a@example.org", ["b@example.org"], b"Subject: urgent: call\r\n\r\nx\r\n")
        import json

        deadline = time.monotonic() + 15
        while True:  # MP_MAX_MESSAGES=2: the oldest is pruned
            req = urllib.request.Request(f"{base}/api/v1/messages")
            req.add_header("Authorization", "Basic " + base64.b64encode(b"admin:pw").decode())
            with urllib.request.urlopen(req, timeout=10) as resp:
                total = json.load(resp)["total"]
            if total == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert total == 2
        deadline = time.monotonic() + 15
        while True:  # MP_TAG=important=subject:urgent tags it once indexed
            req = urllib.request.Request(f"{base}/api/v1/search?query=subject:urgent")
            req.add_header("Authorization", "Basic " + base64.b64encode(b"admin:pw").decode())
            with urllib.request.urlopen(req, timeout=10) as resp:
                tags = [m["Tags"] for m in json.load(resp)["messages"]]
            if tags == [["important"]] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert tags == [["important"]]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    text = err.decode()
    assert "MP_TAG" not in text  # applied, so not reported
    assert "MP_DISABLE_WAL ignored: postroom always uses SQLite's WAL" in text
    assert (tmp_path / "mailpit.db").exists()


def test_postroom_flags_and_variables_win_over_mailpit_ones(tmp_path: Path) -> None:
    s = load(None, env={"MP_SMTP_BIND_ADDR": "127.0.0.1:2525", "MP_MAX_MESSAGES": "7", "POSTROOM_MAX": "9"})
    assert s.smtp == "127.0.0.1:2525" and s.max == 9
    users = tmp_path / "users"
    users.write_text("alice:secret\n")  # read by load(): a bad file is refused before the store opens
    s = load(None, env={"MP_SMTP_AUTH_FILE": str(users)})
    assert s.smtp_auth_file == str(users) and s.smtp_require_auth  # Mailpit: a password file requires AUTH
    s = load(None, env={"MP_VERBOSE": "1", "MP_ENABLE_CHAOS": "yes", "MP_QUIET": "0"})
    assert s.log_level == "debug" and s.enable_chaos and not s.quiet
    with pytest.raises(ConfigError, match="MP_MAX_MESSAGES"):
        load(None, env={"MP_MAX_MESSAGES": "lots"})


def test_every_mapped_variable_sets_a_real_setting() -> None:
    from dataclasses import fields

    from postroom.config import Settings

    names = {f.name for f in fields(Settings)}
    samples = {"MP_MAX_MESSAGES": "1", "MP_MAX_MESSAGE_SIZE": "1", "MP_SMTP_MAX_RECIPIENTS": "1"}
    samples["MP_CHAOS_TRIGGERS"] = "Sender:451:10"
    for key, setter in mailpit_env.MAPPED.items():
        got = setter(samples.get(key, "true"))
        assert set(got) <= names, key


def test_readyz_reports_why_in_one_line() -> None:
    port = free_port()
    r = subprocess.run(
        [POSTROOM, "readyz", "--listen", f"127.0.0.1:{port}"], env=_env({}), capture_output=True, timeout=30
    )
    assert r.returncode == 1
    err = r.stderr.decode()
    assert err.count("\n") == 1 and f"127.0.0.1:{port}/readyz" in err and "refused" in err.lower()
    t0 = time.monotonic()
    r = subprocess.run([POSTROOM, "readyz", "--listen", f"127.0.0.1:{port}", "--wait", "--timeout", "1"],
                       env=_env({}), capture_output=True, timeout=30)  # fmt: skip
    assert r.returncode == 1 and time.monotonic() - t0 >= 1.0


def test_version_command() -> None:
    r = subprocess.run([POSTROOM, "version"], capture_output=True, timeout=30, check=True)
    assert r.stdout.decode().startswith("postroom ")


def test_mailpit_flag_spellings_on_serve(tmp_path: Path) -> None:
    """`postroom serve` takes Mailpit's flags: each sets what its MP_* variable sets, above
    the environment and below postroom's own flags; one it does not apply is named."""
    import argparse

    from postroom import config as cfg

    p = argparse.ArgumentParser()
    cfg.add_arguments(p)
    mailpit_env.add_flags(p)
    db = str(tmp_path / "m.db")
    args = p.parse_args(
        ["--listen", "127.0.0.1:18025", "-d", db, "-s", "127.0.0.1:11025", "--max-message-size", "2",
         "--smtp-auth-accept-any", "-m", "7", "--verbose", "--disable-wal", "-t", "hot=subject:urgent"]
    )  # fmt: skip
    s = cfg.load(args, env={"MP_UI_BIND_ADDR": "127.0.0.1:9", "MP_MAX_MESSAGES": "3"})
    assert (s.http, s.db, s.smtp, s.max) == ("127.0.0.1:18025", db, "127.0.0.1:11025", 7)
    assert s.smtp_max_size == 2 * 1024 * 1024 and s.log_level == "debug" and not s.smtp_require_auth
    assert s.extra["tags"] == [{"query": "subject:urgent", "tags": ["hot"]}]
    assert any(n.startswith("--disable-wal ignored: ") for n in s.compat_notes)
    # postroom's own flag wins over Mailpit's spelling of the same setting
    s = cfg.load(p.parse_args(["--listen", "127.0.0.1:1", "--http", "127.0.0.1:2", "--db", db]), env={})
    assert s.http == "127.0.0.1:2"
    with pytest.raises(ConfigError, match="-m"):
        cfg.load(p.parse_args(["-m", "lots", "--db", db]), env={})


def test_more_mailpit_settings_carry_over_or_are_named(tmp_path: Path) -> None:
    s = load(None, env={"MP_CHAOS_TRIGGERS": "Sender:451:10, Authentication:535:5"})
    assert s.enable_chaos and s.chaos == "Sender:451:10;Authentication:535:5"
    with pytest.raises(ConfigError, match="MP_CHAOS_TRIGGERS"):
        load(None, env={"MP_CHAOS_TRIGGERS": "Body:451:10"})
    s = load(None, env={"MP_UI_TLS_CERT": __file__, "MP_UI_TLS_KEY": __file__})
    assert s.http_tls and s.tls_cert == s.tls_key == __file__  # one certificate for every listener
    s = load(None, env={"MP_SOMETHING_NEW": "1"})  # a variable postroom does not know: named
    assert "MP_SOMETHING_NEW is not supported by postroom (ignored)" in s.compat_notes


@pytest.mark.parametrize(
    "env",
    [
        {"MP_TAGS_USERNAME": "true"},
        {"MP_SMTP_RELAY_SOMETHING": "x"},
        {"MP_SMTP_FORWARD_SOMETHING": "x"},
    ],
)
def test_unsupported_mailpit_settings_are_refused_with_their_name(env: dict[str, str]) -> None:
    """A Mailpit setting postroom does not implement stops the start (one line naming it)
    instead of being accepted and ignored."""
    [key] = env
    with pytest.raises(ConfigError, match=f"^{key}: not supported by postroom"):
        load(None, env=env)


def test_unsupported_mailpit_flags_are_refused_with_their_name(tmp_path: Path) -> None:
    import argparse

    from postroom import config as cfg
    from postroom import mailpit_env

    p = argparse.ArgumentParser()
    cfg.add_arguments(p)
    mailpit_env.add_flags(p)
    for argv in (["--tags-username"], ["--log-file", "x.log"], ["--webhook-limit", "5"]):
        with pytest.raises(ConfigError, match=f"^{argv[0]}: not supported by postroom"):
            cfg.load(p.parse_args([*argv, "--db", str(tmp_path / "x.db")]), env={})
