"""What a throwaway (``:memory:``) SQLite store, every test server's, leaves out until needed."""

from __future__ import annotations

import asyncio
import time

from postroom.config import Settings
from postroom.events import Bus
from postroom.store.base import Envelope
from postroom.store.sqlite import SQLiteStore

RAW = b"From: a@x\r\nTo: b@y\r\nSubject: hello\r\n\r\nbody\r\n"


def test_imap_data_is_derived_by_the_writer_only_once_imap_reads_the_cache() -> None:
    settings = Settings(db=":memory:", indexer="thread")
    settings.validate()
    st = SQLiteStore(":memory:", settings, Bus())
    st.start()
    try:
        assert st.background.index_inline
        first = asyncio.run(st.deliver(Envelope("a@x", ("b@y",)), RAW))
        assert st.wait_indexed(30)
        for _ in range(2):  # writer barriers: the indexing run the delivery queued is over
            st.write(lambda conn: None)
        assert st.imap_cache_get("meta", [first]) == {}  # IMAP never asked: nothing derived
        # IMAP has read the cache (above): the writer now derives for new mail, older included
        second = asyncio.run(st.deliver(Envelope("a@x", ("b@y",)), RAW))
        deadline = time.monotonic() + 30
        while len(st.imap_cache_get("meta", [first, second])) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert st.imap_cache_get("meta", [first, second]).keys() == {first, second}
    finally:
        st.close()
