"""The pytest plugin, driven by pytester: fixtures, markers, failure listings, a shared server."""

from __future__ import annotations

import pytest

# pytester's in-process runs drop the modules first imported during a run from sys.modules
# afterwards; a later import then makes a second copy whose classes are not the first's
# (a search node of one copy is unknown to the other's compiler). Importing what the
# in-process servers use here keeps one copy for the whole pytest process.
import postroom.app
import postroom.search
import postroom.store.sqlite
import postroom.store.sqlite_search
import postroom.web.app  # noqa: F401
from postroom.testing import Server

pytest_plugins = ["pytester"]

SEND = """
import smtplib

def send(port, to, subject, body="hello", sender="app@example.com"):
    msg = f"From: {sender}\\r\\nTo: {to}\\r\\nSubject: {subject}\\r\\n\\r\\n{body}\\r\\n"
    with smtplib.SMTP("127.0.0.1", port) as c:
        c.sendmail(sender, [to], msg.encode())
"""


@pytest.fixture
def tester(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(sendhelper=SEND)
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    return pytester


def test_mail_fixture_waits_and_extracts(tester: pytest.Pytester) -> None:
    tester.makepyfile(
        """
        from sendhelper import send

        def test_reset(mail):
            send(mail.smtp_port, "alice@example.com", "Reset", "Code 123456: https://app.test/reset/abc")
            msg = mail.wait_for(to="alice@example.com", subject="Reset")
            assert msg.code() == "123456"
            assert msg.link("/reset/") == "https://app.test/reset/abc"

        def test_fresh_server_each_test(mail):
            assert mail.messages() == []
        """
    )
    result = tester.runpytest()
    result.assert_outcomes(passed=2)


def test_failure_lists_the_mail_received(tester: pytest.Pytester) -> None:
    tester.makepyfile(
        """
        from sendhelper import send

        def test_wrong_subject(mail):
            send(mail.smtp_port, "bob@example.com", "Welcome aboard")
            mail.wait_for(to="bob@example.com", subject="Reset", timeout=0.2)

        def test_assertion(mail):
            send(mail.smtp_port, "carol@example.com", "Invoice 7")
            mail.assert_received(to="dave@example.com")
        """
    )
    result = tester.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*NoMatchingMail: timed out after 0.2 s waiting for a message matching to='bob@example.com', "
            "subject='Reset'; none matched.",
            "*Received 1 message:",
            "*1. * from app@example.com to bob@example.com: 'Welcome aboard'",
            "*(to matched; subject was 'Welcome aboard')",
            "*expected a message matching to='dave@example.com', found 0.",
            "*to carol@example.com: 'Invoice 7'",
            "*(to was carol@example.com)",
        ]
    )
    out = result.stdout.str()
    assert "message(s)" not in out
    # one listing per failure: no second "received mail" section when the error has one
    # (the short summary repeats the whole message when pytest runs under CI=true, which is pytest's
    # own doing, so only the report above it is counted)
    report = out.split("short test summary info")[0]
    assert report.count("'Welcome aboard'\n") == 1 and "postroom: received mail" not in out
    # library frames are hidden: the traceback ends at the test's own line
    assert "reader.py" not in out


def test_marker_configures_the_server(tester: pytest.Pytester) -> None:
    tester.makepyfile(
        """
        import smtplib
        import pytest
        from postroom.testing import reject
        from sendhelper import send

        @pytest.mark.postroom(smtp_require_auth=True, pop3=False)
        def test_auth_required(mail):
            assert "pop3" not in mail.listeners
            with pytest.raises(smtplib.SMTPSenderRefused) as err:
                send(mail.smtp_port, "a@example.com", "x")
            assert err.value.smtp_code == 530

        @pytest.mark.postroom(handler=lambda m: reject("550 5.7.1 nope"))
        def test_handler(mail):
            with pytest.raises(smtplib.SMTPDataError):
                send(mail.smtp_port, "a@example.com", "x")
            mail.assert_not_received()

        @pytest.mark.postroom(chaos="rcpt:451")
        def test_chaos(mail):
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                send(mail.smtp_port, "a@example.com", "x")

        @pytest.mark.postroom(bogus=1)
        def test_bad_setting(mail):
            pass
        """
    )
    result = tester.runpytest("--strict-markers")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*unknown postroom setting(s): bogus*"])


def test_shared_session_server_isolates_tests(tester: pytest.Pytester) -> None:
    tester.makepyfile(
        """
        import pytest
        from sendhelper import send

        SEEN = []

        @pytest.mark.postroom(shared=True)
        def test_one(mail, mail_server):
            SEEN.append(id(mail_server))
            send(mail.smtp_port, "one@example.com", "first test")
            assert [m.subject for m in mail.wait_for(count=1)] == ["first test"]

        @pytest.mark.postroom(shared=True)
        def test_two(mail, mail_server):
            SEEN.append(id(mail_server))
            assert mail.messages() == []          # the first test's mail is not here
            assert len(mail_server.messages()) == 1  # ...but it is on the server
            send(mail.smtp_port, "two@example.com", "second test")
            assert [m.subject for m in mail.wait_for(count=1)] == ["second test"]
            assert SEEN[0] == SEEN[1]

        @pytest.mark.postroom(shared=True, smtp_require_auth=True)
        def test_settings_need_their_own(mail):
            pass
        """
    )
    result = tester.runpytest()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*need a server of their own*"])


def test_ini_shared_and_external_url(tester: pytest.Pytester) -> None:
    tester.makepyfile(
        """
        from postroom.testing import Client
        from sendhelper import send

        def test_uses_the_running_server(mail, mail_server):
            assert isinstance(mail_server, Client)
            send(mail.smtp_port, "ext@example.com", "over http")
            assert mail.wait_for(to="ext@example.com").subject == "over http"
        """
    )
    with Server(pop3=False, imap=False) as s:
        s.clear()
        result = tester.runpytest(f"--postroom-url={s.http_url}", f"--postroom-smtp-port={s.smtp_port}")
        result.assert_outcomes(passed=1)
        assert [m.subject for m in s.messages()] == ["over http"]


def test_markers_are_registered(tester: pytest.Pytester) -> None:
    result = tester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.postroom(shared=False, handler=None, chaos=None, **settings)*"]
    )


def test_async_test_with_the_mail_fixture(tester: pytest.Pytester) -> None:
    tester.makepyfile(
        """
        import asyncio
        import aiosmtplib

        def test_async(mail):
            async def main():
                async with aiosmtplib.SMTP(hostname="127.0.0.1", port=mail.smtp_port) as c:
                    await c.sendmail("a@example.com", ["b@example.com"], b"Subject: async\\r\\n\\r\\nx\\r\\n")
                return await mail.wait_for_async(subject="async")
            m = asyncio.run(main())
            assert m.subject == "async"
        """
    )
    tester.runpytest().assert_outcomes(passed=1)


def test_a_handler_that_raises_fails_its_test(tester: pytest.Pytester) -> None:
    tester.makepyfile(
        """
        import smtplib
        import pytest
        from sendhelper import send

        def broken(msg):
            raise ValueError("handler bug")

        @pytest.mark.postroom(handler=broken)
        def test_own_server(mail):
            with pytest.raises(smtplib.SMTPDataError):
                send(mail.smtp_port, "a@example.com", "x")

        @pytest.mark.postroom(handler=broken, shared=True)
        def test_shared_server(mail):
            with pytest.raises(smtplib.SMTPDataError):
                send(mail.smtp_port, "a@example.com", "x")

        @pytest.mark.postroom(shared=True)
        def test_next_one_is_fine(mail):
            send(mail.smtp_port, "a@example.com", "y")
            mail.wait_for(subject="y")
        """
    )
    result = tester.runpytest()
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(["*HandlerFailed: a postroom handler raised ValueError: handler bug*"])
