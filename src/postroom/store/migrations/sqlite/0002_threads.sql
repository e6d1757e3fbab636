-- Conversations (docs/threads.md). The indexer assigns message.thread_id: the decimal row id
-- of the conversation's first message (the API's ThreadID). It keeps its own index in
-- memory, rebuilt from message_id/in_reply_to/refs/subject/date at its start, so no
-- lookup tables are needed here; the listing of conversations (GET /api/v2/threads) groups
-- by thread_id and reads counts, unread and last activity from this index alone.
DROP INDEX message_thread;
CREATE INDEX message_thread ON message(thread_id, read, created);
