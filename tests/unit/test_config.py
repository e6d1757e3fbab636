"""Settings: precedence, validation, and the generated configuration page."""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from postroom import config as cfg

ROOT = Path(__file__).resolve().parents[2]


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    cfg.add_arguments(p)
    return p.parse_args(list(argv))


def test_flags_beat_env_beat_file_beat_defaults(tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text('smtp = "127.0.0.1:3000"\nhttp = "127.0.0.1:3001"\npop3 = "off"\nmax-age = "2d"\n')
    env = {"POSTROOM_HTTP": "127.0.0.1:4001", "POSTROOM_POP3": "127.0.0.1:4002", "POSTROOM_SUBADDRESS": "yes"}
    s = cfg.load(parse("--config", str(toml), "--pop3", "127.0.0.1:5002"), env=env)
    assert s.smtp == "127.0.0.1:3000"  # file
    assert s.http == "127.0.0.1:4001"  # env over file
    assert s.pop3 == "127.0.0.1:5002"  # flag over env
    assert s.subaddress is True
    assert s.max_age_seconds == 2 * 86400
    assert s.imap == "127.0.0.1:1143"  # default


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--smtp", "localhost"], "expected host:port"),
        (["--smtp", "127.0.0.1:99999"], "port out of range"),
        (["--max", "many"], "expected a number"),
        (["--max-age", "soon"], "bad duration"),
        (["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"], "no such file"),
        (["--smtps", "127.0.0.1:4650"], "needs --tls-cert"),
        (["--mailbox-key", "user"], "address, domain or local"),
    ],
)
def test_bad_settings_name_the_problem(argv: list[str], message: str) -> None:
    with pytest.raises(cfg.ConfigError, match=message):
        cfg.load(parse(*argv), env={})


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(cfg.ConfigError, match="POSTROOM_SUBADDRESS"):
        cfg.load(parse(), env={"POSTROOM_SUBADDRESS": "perhaps"})


def test_hostport_forms() -> None:
    assert cfg.parse_hostport("2525") == ("127.0.0.1", 2525)
    assert cfg.parse_hostport(":2525") == ("0.0.0.0", 2525)
    assert cfg.parse_hostport("[::1]:2525") == ("::1", 2525)


def test_configuration_doc_is_current() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_config_doc.py"), "--check"])
    assert r.returncode == 0, "docs/configuration.md is stale: run python scripts/gen_config_doc.py"


def test_every_option_is_a_setting_with_the_same_default() -> None:
    defaults = cfg.Settings()
    for o in cfg.OPTIONS:
        assert hasattr(defaults, o.name), f"Settings lacks {o.name}"
        assert getattr(defaults, o.name) == o.default, f"default of {o.name} differs"
    declared = {o.name for o in cfg.OPTIONS}
    missing = (
        {f.name for f in fields(cfg.Settings)}
        - declared
        - {"extra", "compat_notes", "smtp_relay_keys", "smtp_forward_keys"}
    )
    assert not missing, f"settings without a flag/env/TOML option: {sorted(missing)}"


def test_a_misspelt_key_in_the_config_file_is_named_not_ignored(tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text('smpt = "127.0.0.1:2525"\n')
    with pytest.raises(cfg.ConfigError, match=r"p\.toml: smpt: not a setting \(did you mean smtp\?\)"):
        cfg.load(parse("--config", str(toml)), env={})
    # tables are other commands' sections and the tagging and threading rules: kept, as before
    toml.write_text(
        'smtp = "127.0.0.1:2525"\n[send]\nfrom = "a@example.com"\n[[tags]]\nmatch = "x"\ntags = "y"\n'
    )
    s = cfg.load(parse("--config", str(toml)), env={})
    assert s.smtp == "127.0.0.1:2525" and s.extra["send"] == {"from": "a@example.com"}
    toml.write_text("threading = false\n")  # a switch read from extra (store/thread_index.py)
    assert cfg.load(parse("--config", str(toml)), env={}).extra["threading"] is False
    toml.write_bytes(b'smtp = "\xff"\n')
    with pytest.raises(cfg.ConfigError, match=r"p\.toml: not UTF-8 text"):
        cfg.load(parse("--config", str(toml)), env={})
    with pytest.raises(cfg.ConfigError, match=r"--config .*: Is a directory"):
        cfg.load(parse("--config", str(tmp_path)), env={})


@pytest.mark.parametrize(
    "url,shown",
    [
        ("http://u:@h:99999", "'http://u:***@h:99999'"),  # an empty password
        ("http://u:t@host:99999", "'http://u:***@host:99999'"),  # a password found elsewhere in the URL
        ("http://u:s3cret@h:99999", "'http://u:***@h:99999'"),
    ],
)
def test_a_bad_url_is_shown_with_only_its_password_masked(url: str, shown: str) -> None:
    with pytest.raises(cfg.ConfigError) as e:
        cfg.parse_http_url(url)
    assert str(e.value) == f"--url: bad port in {shown}"


BAD_AUTH = {  # setting -> (the listener that reads it, what is said when it cannot be used)
    "smtp_auth": ("smtp", "--smtp-auth:1: expected user:password"),
    "smtp_auth_file": ("smtp", "cannot read credentials file .*: not UTF-8"),
    "pop3_auth": ("pop3", "--pop3-auth:1: expected user:password"),
    "ui_auth": ("http", "--ui-auth: no user:password pair"),
    "ui_auth_file": ("http", "--ui-auth-file: cannot read .*: not UTF-8"),
    "send_api_auth_file": ("http", "--send-api-auth-file: cannot read .*: not UTF-8"),
}
LISTENING = {"smtp": "127.0.0.1:0", "http": "127.0.0.1:0", "pop3": "127.0.0.1:0", "imap": "127.0.0.1:0"}


@pytest.mark.parametrize("name", sorted(BAD_AUTH))
def test_credentials_are_checked_when_their_listener_is_on_only(tmp_path: Path, name: str) -> None:
    """A listener's credentials that cannot be used are refused at start when it is on, and
    not read when it is off (Mailpit-style containers set MP_SMTP_AUTH and friends for
    every listener, and a postroom.testing server may run without HTTP)."""
    listener, message = BAD_AUTH[name]
    bad = "nocolon"
    if name.endswith("_file"):
        (tmp_path / "users").write_bytes(b"\xff:x\n")
        bad = str(tmp_path / "users")
    cfg.Settings(**{**LISTENING, listener: "off", name: bad}).validate()  # the others on
    with pytest.raises(cfg.ConfigError, match=message):
        cfg.Settings(**{**LISTENING, name: bad}).validate()


def test_mailpit_credentials_of_a_listener_that_is_off_are_not_refused() -> None:
    s = cfg.load(None, env={"MP_SMTP_AUTH": "nocolon", "POSTROOM_SMTP": "off"})
    assert s.smtp == "off" and s.smtp_auth == "nocolon"
    s = cfg.load(None, env={"MP_POP3_AUTH": "nocolon", "POSTROOM_POP3": "off"})
    assert s.pop3 == "off" and s.pop3_auth == "nocolon"
    with pytest.raises(cfg.ConfigError, match="--pop3-auth:1: expected user:password"):
        cfg.load(None, env={"MP_POP3_AUTH": "nocolon"})
    with pytest.raises(cfg.ConfigError, match="--smtp-auth:1: expected user:password"):
        cfg.load(None, env={"MP_SMTP_AUTH": "nocolon"})
