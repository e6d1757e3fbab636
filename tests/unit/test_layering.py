"""Layering of the runtime features (issue 20): chaos, handlers, webhooks and the printer live in
postroom.runtime; the composition root, the config and the runtime never import the test
toolkit, which builds on them."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent.parent / "src" / "postroom"


def _imports(path: Path) -> set[str]:
    """Every module a file imports (relative imports resolved), at run time or for typing."""
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join([*base, *(node.module or "").split(".")]).rstrip("."))
            else:
                found.add(node.module or "")
    return found


def test_nothing_below_the_toolkit_imports_it() -> None:
    lower = [SRC / "app.py", SRC / "config.py", SRC / "cli.py", *sorted((SRC / "runtime").glob("*.py"))]
    lower += sorted((SRC / "servers").glob("*.py")) + sorted((SRC / "web").glob("*.py"))
    offenders = {
        str(p.relative_to(SRC)): sorted(m for m in _imports(p) if m.startswith("postroom.testing"))
        for p in lower
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_app_holds_the_features_in_typed_fields() -> None:
    from dataclasses import fields

    from postroom.app import App

    names = {f.name: f.type for f in fields(App)}
    assert names["chaos"] == "Chaos" and names["handlers"] == "Handlers" and names["webhooks"] == "Webhooks"
    assert names["smtp_hooks"] == "list[SMTPHook]"
    text = "\n".join(p.read_text() for p in SRC.rglob("*.py"))
    for key in ("chaos", "handlers", "webhooks", "smtp_hooks", "request_stop"):
        assert f'extras["{key}"]' not in text and f'extras.get("{key}")' not in text


def test_the_pytest_plugin_imports_nothing_heavy_at_start() -> None:
    """pytest imports the plugin at every start (and in every xdist worker): it must not pull
    in the server, the store or aiohttp, which a test loads when it first asks for ``mail``."""
    import subprocess
    import sys

    code = (
        "import sys, pytest; before = set(sys.modules); import postroom.testing.plugin; "
        "print(sorted(m for m in set(sys.modules) - before if m.startswith(('postroom', 'aiohttp', 'email'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['postroom', 'postroom.testing', 'postroom.testing.plugin']"
