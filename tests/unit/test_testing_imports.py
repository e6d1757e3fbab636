"""The first test that asks for the ``mail`` fixture pays for the imports of the server it
starts (issue 20): an in-process test server that receives mail over SMTP and hands it to the
test must not load what only other features use. Each module named here was once loaded by
that start (the search language, the relay's queue, the indexer with its conversation
threading, the ``email`` package's header registry) or belongs to a listener or a command
the test server does not start."""

from __future__ import annotations

import subprocess
import sys

# loaded on first use only: a search, the relay, a listener or command of its own
NOT_AT_FIRST_TEST = (
    "postroom.search",
    "postroom.store.sqlite_search",
    "postroom.store.search_sql",
    "postroom.store.indexer",
    "postroom.store.index_worker",
    "postroom.store.thread_index",
    "postroom.threads",
    "postroom.store.outbound",
    "postroom.store.sqlite_outbound",
    "email.policy",
    "email.headerregistry",
    "html.parser",
    "aiohttp",
    "postroom.web",
    "postroom.servers.http",
    "postroom.servers.imap",
    "postroom.servers.pop3",
    "postroom.checks",
    "postroom.outbound",
    "postroom.fetch",
)

_SCRIPT = f"""
import smtplib, sys
from postroom.testing import Server

server = Server(lazy=True)  # what the mail fixture starts (plugin.py)
server.start()
try:
    with smtplib.SMTP(server.host, server.smtp_port) as client:
        client.sendmail("a@example.com", ["b@example.com"], b"Subject: hello\\r\\n\\r\\nhi\\r\\n")
    assert server.wait_for(to="b@example.com").subject == "hello"
finally:
    server.stop()
print(" ".join(m for m in {NOT_AT_FIRST_TEST!r} if m in sys.modules))
"""


def test_a_test_servers_first_message_loads_nothing_it_does_not_use() -> None:
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == []


def test_chaos_loads_without_the_smtp_server() -> None:
    """The app's fault injector (runtime.chaos, imported with every App) needs the SMTP
    server's modules only to raise a disconnect, inside a session the server runs."""
    code = (
        "import sys\nimport postroom.runtime.chaos\n"
        "print(' '.join(m for m in ('postroom.servers.smtp', 'postroom.servers.smtp_session') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == []
