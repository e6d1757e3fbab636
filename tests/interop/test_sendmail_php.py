"""PHP's mail() delivering through `postroom sendmail` (its sendmail_path), as a PHP app does."""

from __future__ import annotations

import email
import subprocess
import sys
from email import policy
from pathlib import Path

import pytest
from tests.helpers import require_tool, smtp_server

pytestmark = pytest.mark.interop


def test_php_mail_goes_through_postroom_sendmail(tmp_path: Path) -> None:
    php = require_tool("php", "php-cli")
    link = tmp_path / "sendmail"
    link.symlink_to(Path(sys.executable).with_name("postroom"))
    script = (
        '$ok = mail("alice@example.org, bob@example.org", "Grüße from PHP", "Hello\\n.\\nstill here",'
        ' "From: Shop <shop@example.org>\\r\\nCc: carol@example.org\\r\\nContent-Type: text/plain; charset=UTF-8");'
        " exit($ok ? 0 : 3);"
    )
    with smtp_server() as s:
        # PHP's default sendmail_path is "sendmail -t -i"; -S points it at this test's postroom
        path = f"{link} -t -i -S 127.0.0.1:{s.smtp_port}"
        r = subprocess.run(
            [php, "-n", "-d", f"sendmail_path={path}", "-r", script], capture_output=True, timeout=60
        )
        assert r.returncode == 0, (r.stdout, r.stderr)
        for box in ("alice@example.org", "bob@example.org", "carol@example.org"):
            page = s.app.store.list_messages(mailbox=box)
            assert page.total == 1, box
        raw = s.app.store.get_raw(page.messages[0].id)
        assert raw is not None
        msg = email.message_from_bytes(raw, policy=policy.default)
        assert msg["From"] == "Shop <shop@example.org>"
        assert "still here" in msg.get_content()  # -i: a lone dot does not end the message
