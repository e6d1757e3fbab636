"""The writer's batch of new mail and other changes, in two transactions (sqlite_jobs.run_split)."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import pytest

from postroom.store.base import Envelope, StoreError
from postroom.store.sqlite_jobs import _Call, _Ingest, run_split


def test_changes_queued_with_mail_that_could_not_be_stored_fail_with_it() -> None:
    """The mail's transaction fails (it is kept for another attempt): a delete of everything
    queued after it must not commit before it, so it fails as in one transaction."""
    mail = _Ingest(Envelope("a@example.com", ("b@example.com",)), b"x", (), None, seq=1)
    delete_all: concurrent.futures.Future[Any] = concurrent.futures.Future()
    change = _Call(lambda conn: None, delete_all)
    ran: list[list[Any]] = []

    def run(part: list[Any]) -> bool:
        ran.append(part)
        return not any(isinstance(j, _Ingest) for j in part)  # the mail's transaction fails

    run_split([mail, change], run)
    assert ran == [[mail]]
    with pytest.raises(StoreError):
        delete_all.result(timeout=1)


def test_both_transactions_run_in_order_when_the_mail_is_stored() -> None:
    mail = _Ingest(Envelope("a@example.com", ("b@example.com",)), b"x", (), None, seq=1)
    change = _Call(lambda conn: None, concurrent.futures.Future())
    ran: list[list[Any]] = []
    run_split([change, mail], lambda part: ran.append(part) is None)
    assert ran == [[mail], [change]]
