-- A conversation key from outside the message's headers: postroom fetch stores Gmail's
-- X-GM-THRID here (through IMAP APPEND's X-POSTROOM-THREAD, docs/imap.md), and the
-- indexer connects the messages that share one as it connects those that share a
-- Message-ID (docs/threads.md). '' for the rest.
ALTER TABLE message ADD COLUMN thread_key TEXT NOT NULL DEFAULT '';
