from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import RunningServer, running_server


@pytest.fixture
def server() -> Iterator[RunningServer]:
    """A fresh postroom with every listener on a free loopback port and a throwaway store."""
    with running_server() as s:
        yield s
