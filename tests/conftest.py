from __future__ import annotations

import pytest

from postroom.testing import MailReader, Server


@pytest.fixture
def server(mail: MailReader) -> Server:
    """A fresh postroom (every listener on a free loopback port, a throwaway store).

    Built on the postroom pytest plugin's ``mail`` fixture, so ``@pytest.mark.postroom(...)``
    configures it (any setting by name) and a failing test's report lists the mail it caught.
    """
    if not isinstance(mail, Server):
        pytest.skip("needs an in-process server (not --postroom-url or a shared server)")
    return mail
