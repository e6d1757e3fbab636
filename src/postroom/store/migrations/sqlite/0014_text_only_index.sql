-- Messages whose text an indexing helper wrote but whose conversation the indexer has not
-- (message.indexed = 2, TEXT_ONLY in store/index_write.py): few and short-lived. Each start
-- marks those left by the previous run, and wait_indexed looks for them; without an index
-- both scanned the whole message table (~60 ms at 100,000 messages, before the SMTP
-- greeting). The statements spell the value 2 out: SQLite uses a partial index only for a
-- term it can see matches the index's WHERE.
CREATE INDEX message_text_only ON message(indexed) WHERE indexed = 2;
