"""Every code example in README.md and docs/*.md runs (issue 20): a doc example cannot break
silently.

A fenced block with a language is an example; a block without one is output or a diagram.
Examples run by language:

* ``python``: a block defining ``test_*`` functions is a test file, run by pytest (with the
  postroom plugin, as a user's suite); any other block is a script, run by Python.
* ``sh``: run by ``bash -e`` with this virtualenv's ``bin`` first on ``PATH``, in a temporary
  directory, with a postroom of the test's own running. The ports the docs use (SMTP 1025 and
  2525, HTTP 8025 and 8125) are replaced by that server's ports or by free ones, so examples
  keep the usual numbers and tests keep ephemeral ports.
* ``json``, ``toml``, ``yaml``: parsed.

An example that cannot run here says so on the line before its fence:
``<!-- example: not run (the reason) -->``. The reason is required; the test lists them.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from postroom.testing import Server

ROOT = Path(__file__).resolve().parent.parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
_FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
_NOT_RUN = re.compile(r"<!--\s*example:\s*not run\s*\((?P<why>[^)]+)\)\s*-->\s*$")
_RUNNERS = ("python", "sh", "json", "toml", "yaml")
# Long enough for a slow, shared CI machine; each example is small.
_TIMEOUT = 300


@dataclass(frozen=True)
class Example:
    path: Path
    line: int
    lang: str
    code: str
    not_run: str | None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def examples() -> list[Example]:
    found = []
    for path in DOCS:
        text = path.read_text()
        for m in _FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = _NOT_RUN.search(before)
            found.append(Example(path, line, m.group(1), m.group(2), marker.group("why") if marker else None))
    return found


ALL = examples()
RUN = [e for e in ALL if e.not_run is None]


def test_every_example_runs_or_says_why_not() -> None:
    unknown = [f"{e.id} ({e.lang})" for e in RUN if e.lang not in _RUNNERS]
    assert not unknown, f"examples in a language this test cannot run, and not marked: {unknown}"
    assert all(e.not_run and e.not_run.strip() for e in ALL if e.not_run is not None)
    assert len(RUN) >= 15, [e.id for e in RUN]  # the harness finds the examples at all


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Server:
    with Server(pop3=False, imap=False) as s:
        yield s  # type: ignore[misc]


def _ports(code: str, server: Server) -> str:
    http = server.address("http")[1]
    mapping = {
        "1025": str(server.smtp_port),
        "8025": str(http),
        "2525": str(_free_port()),
        "8125": str(_free_port()),
    }
    return re.sub(
        r"(?<=[:=])(1025|8025|2525|8125)\b|(?<=--smtp-port )(1025|2525)\b",
        lambda m: mapping[m.group(0)],
        code,
    )


def _env(server: Server) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("POSTROOM_URL", None)
    env["POSTROOM_SMTP"] = f"127.0.0.1:{server.smtp_port}"  # postroom send / sendmail
    return env


@pytest.mark.parametrize("example", RUN, ids=[e.id for e in RUN])
def test_example(example: Example, server: Server, tmp_path: Path) -> None:
    code = example.code
    if example.lang == "json":
        json.loads(code)
        return
    if example.lang == "toml":
        tomllib.loads(code)
        return
    if example.lang == "yaml":
        import yaml

        yaml.safe_load(code)
        return
    if example.lang == "sh":
        script = tmp_path / "example.sh"
        script.write_text("set -e\n" + _ports(code, server))
        result = subprocess.run(
            ["bash", str(script)],
            cwd=tmp_path,
            env=_env(server),
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
        )
    elif re.search(r"^(async )?def test_", code, re.M):
        (tmp_path / "test_example.py").write_text(code)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "test_example.py"],
            cwd=tmp_path, env=_env(server), capture_output=True, text=True, timeout=_TIMEOUT,
        )  # fmt: skip
    else:
        (tmp_path / "example.py").write_text(_ports(code, server))
        result = subprocess.run(
            [sys.executable, "example.py"],
            cwd=tmp_path,
            env=_env(server),
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
        )
    assert result.returncode == 0, f"{example.id} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
