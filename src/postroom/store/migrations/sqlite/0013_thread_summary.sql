-- The listing of conversations (GET /api/v2/threads) read every message's thread_id to group
-- them, per request (O(messages): ~13 ms at 20,000, growing with the store). This table keeps
-- each conversation's counts and last activity, maintained by triggers in the transaction of
-- every change to a message's conversation, read flag or existence (the indexer assigning and
-- merging conversations, read/unread, deletion): a page of conversations is an index seek.
CREATE TABLE thread (
    thread_id     TEXT PRIMARY KEY,
    messages      INTEGER NOT NULL,
    unread        INTEGER NOT NULL,
    last_id       INTEGER NOT NULL,   -- newest message (message.id)
    last_created  REAL NOT NULL       -- the latest arrival time among its messages
) WITHOUT ROWID;
CREATE INDEX thread_last ON thread(last_id);

CREATE TRIGGER thread_insert AFTER INSERT ON message WHEN new.thread_id <> '' BEGIN
    INSERT INTO thread(thread_id, messages, unread, last_id, last_created)
        VALUES (new.thread_id, 1, new.read = 0, new.id, new.created)
        ON CONFLICT(thread_id) DO UPDATE SET messages = messages + 1, unread = unread + (new.read = 0),
            last_created = max(last_created, new.created), last_id = max(last_id, new.id);
END;

CREATE TRIGGER thread_read AFTER UPDATE OF read ON message
WHEN new.thread_id <> '' AND new.thread_id = old.thread_id AND new.read <> old.read BEGIN
    UPDATE thread SET unread = unread + (new.read = 0) - (old.read = 0) WHERE thread_id = new.thread_id;
END;

CREATE TRIGGER thread_move AFTER UPDATE OF thread_id ON message WHEN new.thread_id <> old.thread_id BEGIN
    INSERT INTO thread(thread_id, messages, unread, last_id, last_created)
        SELECT new.thread_id, 1, new.read = 0, new.id, new.created WHERE new.thread_id <> ''
        ON CONFLICT(thread_id) DO UPDATE SET messages = messages + 1, unread = unread + (new.read = 0),
            last_created = max(last_created, new.created), last_id = max(last_id, new.id);
    UPDATE thread SET messages = messages - 1, unread = unread - (old.read = 0) WHERE thread_id = old.thread_id;
    UPDATE thread SET last_id = coalesce((SELECT max(id) FROM message WHERE thread_id = old.thread_id), 0)
        WHERE thread_id = old.thread_id AND last_id = old.id;
    UPDATE thread SET last_created = coalesce((SELECT max(created) FROM message WHERE thread_id = old.thread_id), 0)
        WHERE thread_id = old.thread_id AND last_created <= old.created;
    DELETE FROM thread WHERE thread_id = old.thread_id AND messages <= 0;
END;

CREATE TRIGGER thread_delete AFTER DELETE ON message WHEN old.thread_id <> '' BEGIN
    UPDATE thread SET messages = messages - 1, unread = unread - (old.read = 0) WHERE thread_id = old.thread_id;
    UPDATE thread SET last_id = coalesce((SELECT max(id) FROM message WHERE thread_id = old.thread_id), 0)
        WHERE thread_id = old.thread_id AND last_id = old.id;
    UPDATE thread SET last_created = coalesce((SELECT max(created) FROM message WHERE thread_id = old.thread_id), 0)
        WHERE thread_id = old.thread_id AND last_created <= old.created;
    DELETE FROM thread WHERE thread_id = old.thread_id AND messages <= 0;
END;

INSERT INTO thread(thread_id, messages, unread, last_id, last_created)
    SELECT thread_id, count(*), coalesce(sum(read = 0), 0), max(id), max(created) FROM message
    WHERE thread_id <> '' GROUP BY thread_id;
