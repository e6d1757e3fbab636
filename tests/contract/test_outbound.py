"""The outbound queue's contract, on every backend that keeps one (all of them today)."""

from __future__ import annotations

import threading
import time

from postroom.store.outbound import HasOutbound, NewDelivery, OutboundQueue

from .conftest import Backend

KINDS = ("relay", "release", "send")


def queue_of(backend: Backend) -> OutboundQueue:
    assert isinstance(backend.store, HasOutbound)
    return backend.store.outbound


def items(n: int, kind: str = "release") -> list[NewDelivery]:
    return [
        NewDelivery("m1", kind, "a@example.org", f"r{i}@example.net", b"Subject: x\r\n\r\nbody %d\r\n" % i)
        for i in range(n)
    ]


def test_enqueue_claim_finish_and_the_delivery_log(backend: Backend) -> None:
    q = queue_of(backend)
    ids = q.enqueue(items(3), give_up_after=60)
    assert len(set(ids)) == 3
    assert q.counts() == {"queued": 3}
    got = q.claim("node-a", 10, 30, KINDS)
    assert [d.id for d in got] == ids and got[0].raw == b"Subject: x\r\n\r\nbody 0\r\n"
    assert q.claim("node-b", 10, 30, KINDS) == []  # held by node-a
    q.finish(ids[0], "node-a", "sent", "smtp.example:25", "250 ok", None)
    later = time.time() + 100
    q.finish(ids[1], "node-a", "retry", "smtp.example:25", "451 4.3.0 later", later)
    q.finish(ids[2], "node-a", "failed", "smtp.example:25", "550 5.1.1 unknown", None)
    q.finish(ids[2], "node-b", "sent", "x", "250", None)  # not the holder: ignored
    assert q.counts() == {"sent": 1, "queued": 1, "failed": 1}
    assert q.claim("node-b", 10, 30, KINDS) == []  # the retry is not due yet
    log = {d.rcpt: d for d in q.deliveries("m1")}
    assert log["r1@example.net"].state == "queued" and abs(log["r1@example.net"].next_at - later) < 1
    assert [a.outcome for a in log["r1@example.net"].history] == ["retry"]
    assert log["r2@example.net"].last_reply == "550 5.1.1 unknown"
    assert q.deliveries("other") == []


def test_a_dead_nodes_rows_are_claimed_again_after_the_lease(backend: Backend) -> None:
    q = queue_of(backend)
    [row] = q.enqueue(items(1), give_up_after=60)
    assert len(q.claim("dead-node", 10, 0.2, KINDS)) == 1
    assert q.claim("node-b", 10, 30, KINDS) == []
    time.sleep(0.3)
    [again] = q.claim("node-b", 10, 30, KINDS)
    assert again.id == row


def test_kinds_keep_workers_apart_and_suppression_applies_at_enqueue(backend: Backend) -> None:
    q = queue_of(backend)
    q.enqueue(items(1, kind="forward"), give_up_after=60)
    assert q.claim("n", 10, 30, KINDS) == []
    assert len(q.claim("n", 10, 30, ("forward",))) == 1
    q.suppress("R0@Example.net", "550 5.1.1 no such user")
    assert [(s.address, s.reason) for s in q.suppressions()] == [("r0@example.net", "550 5.1.1 no such user")]
    q.enqueue(items(2), give_up_after=60)
    states = sorted((d.rcpt, d.state) for d in q.deliveries("m1") if d.kind == "release")
    assert states == [("r0@example.net", "suppressed"), ("r1@example.net", "queued")]
    assert q.unsuppress("r0@example.net") and not q.unsuppress("r0@example.net")


def test_concurrent_claims_never_share_a_row(backend: Backend) -> None:
    q = queue_of(backend)
    q.enqueue(items(60), give_up_after=60)
    taken: dict[str, list[int]] = {}

    def worker(name: str) -> None:
        mine: list[int] = []
        while batch := q.claim(name, 4, 30, KINDS):
            mine += [d.id for d in batch]
        taken[name] = mine

    threads = [threading.Thread(target=worker, args=(f"n{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    all_ids = [i for ids in taken.values() for i in ids]
    assert len(all_ids) == 60 and len(set(all_ids)) == 60
