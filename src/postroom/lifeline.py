"""Helper processes that end with the process that started them.

postroom's indexer (store/index_worker.py) and its helper processes used to notice that
postroom had gone only when they next read their stdin (the store's wake-up pipe); one busy
with a batch, or stuck, outlived a ``postroom serve`` killed with ``kill -9`` (the OOM
killer, a CI runner's timeout), still holding the database open (issue 14). The indexer's
helpers, forked by a ``ProcessPoolExecutor``, read no such pipe at all.

:func:`die_with_parent` makes the calling process end when its parent does, two ways:

* Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills this process the moment its
  parent dies, whatever it is doing. The kernel counts the *thread* that started the process
  as the parent, so the parent must start it from a thread that lives at least as long as
  the process should (the store starts the indexer from the thread that reads its output).
* Everywhere: a daemon thread that checks every :data:`POLL_SECONDS` whether the parent is
  still the parent (``os.getppid()``; an orphan is adopted by another process) and ends this
  process with ``os._exit`` if not.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time

__all__ = ["PARENT_ENV", "POLL_SECONDS", "die_with_parent"]

log = logging.getLogger(__name__)

PARENT_ENV = "POSTROOM_PARENT_PID"  # set by a parent for its child: its own PID
POLL_SECONDS = 0.5
EXIT_CODE = 70  # EX_SOFTWARE: the process did not finish its work
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _set_pdeathsig() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    os._exit(EXIT_CODE)


def die_with_parent(parent: int | None = None, *, kernel: bool = True) -> None:
    """End this process when ``parent`` does (see the module docstring).

    Args:
        parent: the PID of the process to live no longer than. Default: the one in the
            environment variable :data:`PARENT_ENV`, else the current parent. Given
            explicitly, it closes the race of a parent that died before this call.
        kernel: also ask the kernel (Linux); False leaves only the portable watch.
    """
    if parent is None:
        parent = int(os.environ.get(PARENT_ENV) or os.getppid())
    if kernel and sys.platform.startswith("linux") and not _set_pdeathsig():
        log.debug("prctl(PR_SET_PDEATHSIG) failed; watching the parent PID only")
    if os.getppid() != parent:  # it had gone before the kernel knew to tell us
        os._exit(EXIT_CODE)
    threading.Thread(target=_watch, args=(parent,), name="postroom-lifeline", daemon=True).start()
