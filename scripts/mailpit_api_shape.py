"""Derive tests/vectors/mailpit/api-shape.json from Mailpit's swagger file.

Keeps the facts a compatibility test needs (paths, methods, parameters, status codes, schema
field names and types) and drops all prose (descriptions, summaries, titles, examples).

  python scripts/mailpit_api_shape.py ../shared/reference/mailpit-swagger.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "mailpit" / "api-shape.json"
PROSE = {
    "description",
    "summary",
    "title",
    "example",
    "x-go-package",
    "x-go-name",
    "termsOfService",
    "contact",
    "license",
    "info",
}


def strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k not in PROSE}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def main() -> int:
    src = json.loads(Path(sys.argv[1]).read_text())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(strip(src), indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
