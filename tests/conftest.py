from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from postroom.testing import MailReader, Server

# Property tests run on shared 2-core machines (CI runs two pytest workers beside other work):
# generation speed is not what they test, so the too_slow/data_too_large health checks and the
# per-example deadline are off, and CI draws a fixed sequence so a run is reproducible.
settings.register_profile(
    "postroom",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "postroom-ci",
    parent=settings.get_profile("postroom"),
    derandomize=True,
    print_blob=True,
)
settings.load_profile("postroom-ci" if os.environ.get("CI") == "true" else "postroom")


@pytest.fixture
def server(mail: MailReader) -> Server:
    """A fresh postroom (every listener on a free loopback port, a throwaway store).

    Built on the postroom pytest plugin's ``mail`` fixture, so ``@pytest.mark.postroom(...)``
    configures it (any setting by name) and a failing test's report lists the mail it caught.
    """
    if not isinstance(mail, Server):
        pytest.skip("needs an in-process server (not --postroom-url or a shared server)")
    return mail
