"""Write docs/configuration.md from the one table of options (postroom.config.OPTIONS).

python scripts/gen_config_doc.py          # rewrite the file
python scripts/gen_config_doc.py --check  # exit 1 when the file is stale (used by the tests)
"""

from __future__ import annotations

import sys
from pathlib import Path

from postroom.config import OPTIONS

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

INTRO = """# Configuration

Every setting can be given five ways; the first that is present wins:

1. a command-line flag: `postroom serve --smtp 127.0.0.1:2525`
2. an environment variable: `POSTROOM_SMTP=127.0.0.1:2525`
3. Mailpit's environment variable, where one exists: `MP_SMTP_BIND_ADDR=127.0.0.1:2525`
   (the list is in [mailpit.md](mailpit.md))
4. a TOML file named by `--config FILE` (or `POSTROOM_CONFIG`), with the long flag names as keys:
   `smtp = "127.0.0.1:2525"` (dashes or underscores both work; a key that is not a setting is
   an error, tables such as `[send]` are for other commands; `threading = false` turns
   conversation threading off)
5. the default below.

Listeners bind to 127.0.0.1 unless told otherwise; `off` disables one. Boolean flags also have a
`--no-...` form. This page is generated from the option table in `src/postroom/config_options.py`
(`python scripts/gen_config_doc.py`); a test fails when it is out of date.

Files and values the servers read when they start (credentials, webhook URLs, relay, forward and
fetch configurations) are read before the store is opened or a port bound: one that cannot be
used stops `postroom serve` with one line naming it (exit status 2). Credentials are read only
for a listener that is on: `--smtp-auth-file` and `--smtp-auth` when `--smtp` or `--smtps` is,
`--pop3-auth` when `--pop3` or `--pop3s` is (and no `--auth-file`), `--ui-auth-file`,
`--ui-auth` and `--send-api-auth-file` when `--http` is. So `MP_SMTP_AUTH`, `MP_POP3_AUTH` and
`MP_UI_AUTH*` set for every container are not refused where their listener is `off`.
`--auth-file` (POP3 and IMAP) is always read.
"""


def render() -> str:
    out = [INTRO]
    group = None
    for o in OPTIONS:
        if o.group != group:
            group = o.group
            out.append(
                f"\n## {group}\n\n| flag | environment | default | meaning |\n| --- | --- | --- | --- |"
            )
        flag = "--" + o.name.replace("_", "-")
        default = "" if o.default in ("", None) else f"`{o.default}`"
        if o.type is bool:
            default = "`false`" if not o.default else "`true`"
        out.append(f"| `{flag}` | `POSTROOM_{o.name.upper()}` | {default} | {o.help.replace('|', '/')} |")
    return "\n".join(out) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        return 0 if DOC.exists() and DOC.read_text() == text else 1
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
