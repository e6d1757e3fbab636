"""When the indexer process takes a batch during a burst of SMTP (index_process.BurstPacing).

The machine's idle CPU is handed in (a shared CI machine has none to spare on demand); the
reading of the real one is tested on its own.
"""

from __future__ import annotations

import sys
import time

import pytest

from postroom.store.index_process import (
    DEFER_STEP,
    IDLE_CORES,
    IDLE_WINDOW,
    MAX_DEFER,
    BurstPacing,
    cpu_idle_seconds,
)


class Machine:
    """A clock and the idle CPU seconds summed over the cores, advanced by the test."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.idle_s: float | None = 50.0

    def clock(self) -> float:
        return self.now

    def idle(self) -> float | None:
        return self.idle_s

    def wait(self, seconds: float, idle_cores: float) -> None:
        self.now += seconds
        if self.idle_s is not None:
            self.idle_s += seconds * idle_cores


def pauses_until_batch(
    pacing: BurstPacing, machine: Machine, idle_cores: float, limit: float = 10.0
) -> float:
    """Seconds of DEFER_STEP pauses during a burst until the pacing takes a batch."""
    start = machine.now
    while not pacing.take_batch(True):
        machine.wait(DEFER_STEP, idle_cores)
        assert machine.now - start < limit, "no batch taken"
    return machine.now - start


def test_outside_a_burst_a_batch_is_taken_at_once() -> None:
    m = Machine()
    pacing = BurstPacing(m.idle, m.clock)
    assert pacing.take_batch(False)
    assert pacing.burst == 0.0


def test_a_busy_machine_gets_one_batch_per_max_defer_during_a_burst() -> None:
    m = Machine()
    pacing = BurstPacing(m.idle, m.clock)
    busy = IDLE_CORES / 4  # a little idle time, less than the threshold
    assert pauses_until_batch(pacing, m, busy) == pytest.approx(MAX_DEFER, abs=DEFER_STEP)
    pacing.started()
    m.wait(0.15, 0.0)  # the batch
    assert pauses_until_batch(pacing, m, busy) == pytest.approx(MAX_DEFER - 0.15, abs=DEFER_STEP)
    assert pacing.burst  # written in small transactions (a burst is on)


def test_idle_cpu_during_a_burst_takes_a_batch_without_waiting_max_defer() -> None:
    m = Machine()
    pacing = BurstPacing(m.idle, m.clock)
    first = pauses_until_batch(pacing, m, idle_cores=1.0)  # one of the cores has nothing to do
    assert first <= IDLE_WINDOW + 2 * DEFER_STEP
    batches = 1
    t0 = m.now
    while m.now - t0 < MAX_DEFER:
        pacing.started()
        m.wait(0.12, 0.0)  # the batch: the indexer uses the idle core itself
        pauses_until_batch(pacing, m, idle_cores=1.0)
        batches += 1
    # one batch per MAX_DEFER before; now one per batch and a pause of IDLE_WINDOW or so
    assert batches >= MAX_DEFER / (0.12 + IDLE_WINDOW + 2 * DEFER_STEP)


def test_the_cpu_the_indexer_used_itself_does_not_count_as_idle() -> None:
    m = Machine()
    pacing = BurstPacing(m.idle, m.clock)
    pauses_until_batch(pacing, m, idle_cores=1.0)
    pacing.started()
    # Idle during the batch (the indexer waited on the write lock, say) is before the window.
    m.wait(0.5, 2.0)
    assert pauses_until_batch(pacing, m, IDLE_CORES / 4) == pytest.approx(MAX_DEFER - 0.5, abs=DEFER_STEP)


def test_without_a_reading_of_idle_cpu_the_pacing_is_max_defer() -> None:
    m = Machine()
    m.idle_s = None
    pacing = BurstPacing(m.idle, m.clock)
    assert pauses_until_batch(pacing, m, 2.0) == pytest.approx(MAX_DEFER, abs=DEFER_STEP)


def test_after_catching_up_a_burst_is_a_new_one() -> None:
    m = Machine()
    pacing = BurstPacing(m.idle, m.clock)
    busy = IDLE_CORES / 4
    pauses_until_batch(pacing, m, busy)
    pacing.started()
    pacing.caught_up()
    m.wait(5.0, busy)
    # the new burst waits MAX_DEFER from when it is seen, not from the last batch
    assert pauses_until_batch(pacing, m, busy) == pytest.approx(MAX_DEFER, abs=DEFER_STEP)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_cpu_idle_seconds_reads_the_machine() -> None:
    before = cpu_idle_seconds()
    assert before is not None and before > 0
    time.sleep(0.05)
    after = cpu_idle_seconds()
    assert after is not None and after >= before
