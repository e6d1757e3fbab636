"""Mailpit's tagging filters (--tag / MP_TAG, --tags-config / MP_TAGS_CONFIG) as postroom rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from postroom.config import ConfigError, load
from postroom.mailpit_tags import rules_from_arg, rules_from_yaml, split_words


def test_tag_argument_words_and_quotes() -> None:
    assert split_words(' a=b  "c d=e f" ') == ["a=b", "c d=e f"]
    assert rules_from_arg('urgent,alert=subject:urgent "billing=from:billing@example.com is:unread"') == [
        {"query": "subject:urgent", "tags": ["urgent", "alert"]},
        {"query": "from:billing@example.com is:unread", "tags": ["billing"]},
    ]
    assert rules_from_arg("x=a=b") == [{"query": "a=b", "tags": ["x"]}]  # the first '=' splits
    for bad in ("urgent", "=subject:x", "urgent=", ",=x"):
        with pytest.raises(ValueError, match="TAGS=FILTER"):
            rules_from_arg(bad)


def test_tags_config_yaml(tmp_path: Path) -> None:
    good = tmp_path / "tags.yml"
    good.write_text('filters:\n  - match: "subject:invoice"\n    tags: "billing, money"\n')
    assert rules_from_yaml(str(good)) == [{"query": "subject:invoice", "tags": ["billing", "money"]}]
    for text in ("filters: 3\n", "- a\n", "filters:\n  - match: x\n", "filters:\n  - tags: a\n", ": :\n"):
        bad = tmp_path / "bad.yml"
        bad.write_text(text)
        with pytest.raises(ValueError, match="--tags-config"):
            rules_from_yaml(str(bad))
    with pytest.raises(ValueError, match="cannot read"):
        rules_from_yaml(str(tmp_path / "missing.yml"))


def test_settings_join_mailpit_filters_to_the_config_files_rules(tmp_path: Path) -> None:
    conf = tmp_path / "postroom.toml"
    conf.write_text('[[tags]]\nquery = "from:ci@"\ntags = ["ci"]\n')
    yml = tmp_path / "tags.yml"
    yml.write_text("filters:\n  - match: subject:invoice\n    tags: billing\n")
    s = load(
        None, env={"POSTROOM_CONFIG": str(conf), "MP_TAGS_CONFIG": str(yml), "MP_TAG": "hot=subject:urgent"}
    )
    assert s.extra["tags"] == [
        {"query": "from:ci@", "tags": ["ci"]},
        {"query": "subject:invoice", "tags": ["billing"]},
        {"query": "subject:urgent", "tags": ["hot"]},
    ]
    with pytest.raises(ConfigError, match="TAGS=FILTER"):
        load(None, env={"MP_TAG": "nonsense"})
