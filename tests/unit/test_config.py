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
