"""The connection limit shared by the SMTP processes (servers/smtp_gate.py)."""

from __future__ import annotations

import fcntl
import os
import threading
import time

from postroom.servers.smtp_gate import SharedGate


def test_the_limit_counts_every_process_and_a_close_frees_a_place() -> None:
    main = SharedGate.create(3, 3)
    worker = SharedGate(main.fd, 1, 3, 3)
    assert [main.admit(), worker.admit(), worker.admit()] == [True, True, True]
    assert not main.admit() and not worker.admit() and main.count == 3
    worker.release()
    assert main.count == 2 and main.admit() and not worker.admit()
    main.clear(1)  # the worker exited: its remaining connection is gone with it
    assert main.count == 2 and worker.admit()
    worker.release()
    worker.release()  # more releases than admissions leave the slot at 0
    assert worker.count == 2
    main.close()


def test_a_closing_connection_does_not_wait_for_another_process_admitting() -> None:
    """Taking a connection off the count needs no lock: a session closing in one process
    is not held up while another process holds the lock (admitting, or preempted there)."""
    gate = SharedGate.create(2, 10)
    assert gate.admit()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # another process, holding the lock for a while
        fcntl.lockf(gate.fd, fcntl.LOCK_EX)
        os.write(w, b"x")
        time.sleep(3)
        os._exit(0)
    try:
        os.read(r, 1)
        done = threading.Event()
        threading.Thread(target=lambda: (gate.release(), done.set()), daemon=True).start()
        assert done.wait(1), "release waited for the lock"
        assert gate.count == 0
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(r)
        os.close(w)
        gate.close()
