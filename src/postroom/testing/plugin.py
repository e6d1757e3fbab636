"""pytest plugin (entry point ``pytest11``): fixtures for testing code that sends email.

Installing postroom is enough; there is nothing to configure::

    def test_reset(mail):                       # a fresh server for this test
        app.config["SMTP_PORT"] = mail.smtp_port
        client.post("/forgot", data={"email": "alice@example.com"})
        msg = mail.wait_for(to="alice@example.com", subject="Reset")
        client.get(msg.link("/reset/"))

Fixtures (both typed :class:`postroom.testing.Mail`):

* ``mail`` -- per test. By default a fresh in-process :class:`~postroom.Server` that starts
  its SMTP listener only (HTTP, POP3 and IMAP on first use), on free ports, so
  pytest-xdist workers never clash. With ``@pytest.mark.postroom(shared=True)`` (or the ini
  option ``postroom_shared = true``) it is a view of the session server instead, and with
  ``--postroom-url`` a view of that server: it sees only the mail that arrived during the
  test (only mail to its ``unique_address()`` once it used one).
* ``mail_server`` -- one per session (per xdist worker): a :class:`~postroom.Server`,
  or a :class:`~postroom.Client` of a running postroom when ``--postroom-url`` (or the
  ini option / ``POSTROOM_URL``) names one; ``mail`` then uses it too.

Nothing of postroom but this module is imported when pytest starts; the rest is imported
when a test first asks for ``mail``.

The marker ``@pytest.mark.postroom(**options)`` configures the ``mail`` server: any
setting (``smtp_require_auth=True``, ``smtp_auth_file=...``), ``handler=fn`` (see
:mod:`postroom.runtime.handlers`), ``chaos="rcpt:451"`` (see
:mod:`postroom.runtime.chaos`) and ``shared=True``.

When a test that used ``mail`` fails, its report gets a "postroom: received mail"
section listing every message the test's server caught.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .client import Client
    from .mail import Mail
    from .server import Server

__all__ = ["mail", "mail_server"]

_MARKER = (
    "postroom(shared=False, handler=None, chaos=None, **settings): configure the `mail` "
    "fixture's server (any postroom setting by name; shared=True: a view of the session server)"
)
_LOCAL_MARKER = (
    "postroom_local: the test needs an in-process server (handlers, settings); "
    "it is skipped when the suite runs against --postroom-url"
)
_NOT_SHARED = "settings other than handler and chaos need a server of their own; drop shared=True"
_NEEDS_LOCAL = "needs an in-process postroom.Server ({why}); this run uses --postroom-url"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("postroom", "postroom (email testing)")
    group.addoption(
        "--postroom-url",
        default=None,
        metavar="URL",
        help="use the postroom running at URL (its web/API address) instead of in-process servers",
    )
    group.addoption(
        "--postroom-smtp-port",
        type=int,
        default=None,
        metavar="PORT",
        help="SMTP port of the server given by --postroom-url (default 1025)",
    )
    parser.addini("postroom_url", "postroom to use instead of in-process servers (web/API URL)", default="")
    parser.addini(
        "postroom_shared",
        "mail fixture: a view of one session server instead of a server per test",
        "bool",
        False,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER)
    config.addinivalue_line("markers", _LOCAL_MARKER)


def _url(config: pytest.Config) -> str:
    return str(
        config.getoption("--postroom-url")
        or config.getini("postroom_url")
        or os.environ.get("POSTROOM_URL", "")
    )


@pytest.fixture(scope="session")
def mail_server(pytestconfig: pytest.Config) -> Iterator[Server | Client]:
    """One postroom for the whole session (per xdist worker), or the one at --postroom-url."""
    url = _url(pytestconfig)
    if url:
        from .client import Client

        port = pytestconfig.getoption("--postroom-smtp-port") or 1025
        yield Client(url, smtp_port=int(port))
        return
    from .server import Server

    with Server() as server:
        yield server


@pytest.fixture
def mail(request: pytest.FixtureRequest) -> Iterator[Mail]:
    """The mail of this test: a fresh server, or an isolated view of the session server."""
    marker = request.node.get_closest_marker("postroom")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    if marker and marker.args:
        raise pytest.UsageError("@pytest.mark.postroom takes keyword arguments only")
    shared = bool(options.pop("shared", request.config.getini("postroom_shared")))
    if shared or _url(request.config):
        yield from _shared(request, options)
        return
    from .server import Server

    # SMTP now; HTTP, POP3 and IMAP the first time the test asks for their address
    server = Server(lazy=True, **options).start()
    try:
        yield server
        server.handlers.raise_errors()  # a handler that raised fails the test that owns it
    finally:
        server.stop(wait=False)  # stopped by the next test's start (one hand-off to the loop), or at exit


def _shared(request: pytest.FixtureRequest, options: dict[str, Any]) -> Generator[Mail, None, None]:
    handler = options.pop("handler", None)
    chaos = options.pop("chaos", None)
    remote = bool(_url(request.config))
    if remote and request.node.get_closest_marker("postroom_local"):
        pytest.skip(_NEEDS_LOCAL.format(why="marked postroom_local"))
    if remote and handler is not None:
        pytest.skip(_NEEDS_LOCAL.format(why="handler= runs Python inside the server"))
    if options:
        if remote:
            pytest.skip(_NEEDS_LOCAL.format(why=f"settings {', '.join(options)}"))
        raise pytest.UsageError(f"@pytest.mark.postroom({', '.join(options)}=...): {_NOT_SHARED}")
    server = request.getfixturevalue("mail_server")
    from .server import Server

    if not isinstance(server, Server):
        remote_view = server.scope()
        try:
            if chaos:
                remote_view.chaos.load(chaos)  # this view's faults, removed at close
            yield remote_view
        finally:
            remote_view.close()
        return
    remove = server.handlers.add(handler) if handler is not None else None
    if chaos:
        server.chaos.load(chaos)
    errors_before = len(server.handlers.errors)
    view = server.scope()
    try:
        yield view
    finally:
        view.close()
        if remove is not None:
            remove()
        if chaos:
            server.chaos.clear()
    if len(server.handlers.errors) > errors_before:
        server.handlers.raise_errors()  # the test's own handler raised: it fails this test


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if call.when == "call" and report.failed:
        reader = getattr(item, "funcargs", {}).get("mail")
        if reader is not None:
            from .reader import NoMatchingMail, listing, plural

            if call.excinfo is not None and call.excinfo.errisinstance(NoMatchingMail):
                return report  # the error lists the mail already: one listing, not two
            try:
                found = reader.messages()
                report.sections.append(
                    ("postroom: received mail", f"{plural(len(found))}:\n{listing(found)}")
                )
            except Exception as e:  # the server may be gone; never hide the real failure
                report.sections.append(("postroom: received mail", f"(could not list: {e})"))
    return report
