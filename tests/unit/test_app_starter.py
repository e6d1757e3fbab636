"""App's listener modules are imported on first use (app._starter): one that another thread
is importing at that moment (the store's inline indexer imports servers.imap's modules
to derive IMAP data) is waited for, not taken half made."""

from __future__ import annotations

import asyncio
import importlib
import sys
import threading
import time
from pathlib import Path

import pytest

import postroom.servers
from postroom.app import _starter


def test_a_listener_module_another_thread_is_importing_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "slow_listener.py").write_text("import time\ntime.sleep(0.5)\nstart_server = 'started'\n")
    monkeypatch.setattr(postroom.servers, "__path__", [*postroom.servers.__path__, str(tmp_path)])
    name = "postroom.servers.slow_listener"
    monkeypatch.delitem(sys.modules, name, raising=False)
    importer = threading.Thread(target=importlib.import_module, args=(name,))
    importer.start()
    try:
        deadline = time.monotonic() + 10
        while name not in sys.modules and time.monotonic() < deadline:  # the import has begun
            time.sleep(0.001)
        assert name in sys.modules
        assert asyncio.run(_starter("slow_listener")) == "started"
    finally:
        importer.join(10)
        sys.modules.pop(name, None)
