-- Counting the matches of a common word read the whole message table: a search answers with
-- exact counts (messages_count, messages_unread), and PostgreSQL has no index-only scan of a
-- GIN index (the bitmap heap scan visits every matching row for its visibility), so
-- `invoice` (85,000 matches of 100,000 messages) visited 25,000 pages of ~2 KB rows (200 ms;
-- a sequential scan of all 45,000 pages when the planner preferred it). The full text now
-- lives in a narrow table of its own, one row per indexed message with its read flag, which
-- is all a free-text count reads: 8,300 pages of 100,000 rows, small enough to stay in
-- shared buffers. The indexer inserts the row in the transaction that sets
-- message.indexed = 1; deleting a message deletes it; the trigger below keeps its read flag
-- equal to the message's (per row: only changes of read state fire it).
CREATE TABLE message_text (
    id    bigint   PRIMARY KEY REFERENCES message (id) ON DELETE CASCADE,
    read  boolean  NOT NULL,
    tsv   tsvector NOT NULL                   -- full text ('simple' configuration)
);
INSERT INTO message_text (id, read, tsv) SELECT id, read, tsv FROM message WHERE tsv IS NOT NULL;
CREATE INDEX message_text_tsv ON message_text USING gin (tsv);
DROP INDEX message_tsv;
ALTER TABLE message DROP COLUMN tsv;

CREATE FUNCTION message_text_read() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE message_text SET read = NEW.read WHERE id = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER message_text_read AFTER UPDATE OF read ON message
    FOR EACH ROW WHEN (OLD.read <> NEW.read) EXECUTE FUNCTION message_text_read();

-- has:attachment found no index and scanned every message (82 ms at 100,000 messages for no
-- match): this partial index holds only the messages with attachments.
CREATE INDEX message_attached ON message (id) WHERE attachments > 0;
-- to: searched the recipients by a scan of every message (a substring ILIKE): a trigram
-- index, as subject and sender have (0001).
CREATE INDEX message_to_trgm ON message USING gin (to_json gin_trgm_ops);

-- has:attachment alone (the attachment filter of a client's listing) counts its matches and
-- the unread among them from message_count (0018), as the store's counts: `attached` and
-- `attached_unread` kept by the same triggers (the indexer sets the attachment count after
-- ingest: only a change between none and some fires the row trigger).
ALTER TABLE message_count ADD COLUMN attached bigint NOT NULL DEFAULT 0;
ALTER TABLE message_count ADD COLUMN attached_unread bigint NOT NULL DEFAULT 0;

CREATE FUNCTION message_count_add(m bigint, u bigint, a bigint, au bigint) RETURNS void LANGUAGE sql AS $$
    INSERT INTO message_count AS c (slot, messages, unread, attached, attached_unread)
    VALUES (pg_backend_pid() % 16, m, u, a, au)
    ON CONFLICT (slot) DO UPDATE SET messages = c.messages + excluded.messages,
        unread = c.unread + excluded.unread, attached = c.attached + excluded.attached,
        attached_unread = c.attached_unread + excluded.attached_unread;
$$;

CREATE OR REPLACE FUNCTION message_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM message_count_add(count(*), count(*) FILTER (WHERE NOT read),
        count(*) FILTER (WHERE attachments > 0), count(*) FILTER (WHERE attachments > 0 AND NOT read))
    FROM new_rows HAVING count(*) > 0;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION message_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM message_count_add(-count(*), -count(*) FILTER (WHERE NOT read),
        -count(*) FILTER (WHERE attachments > 0), -count(*) FILTER (WHERE attachments > 0 AND NOT read))
    FROM old_rows HAVING count(*) > 0;
    RETURN NULL;
END
$$;

-- a change of read state or of having attachments, row by row (the old and new row give the
-- change of each count, also when one statement changes both)
DROP TRIGGER message_count_read ON message;
DROP FUNCTION message_count_read();
CREATE FUNCTION message_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM message_count_add(0, (NOT NEW.read)::int - (NOT OLD.read)::int,
        (NEW.attachments > 0)::int - (OLD.attachments > 0)::int,
        (NEW.attachments > 0 AND NOT NEW.read)::int - (OLD.attachments > 0 AND NOT OLD.read)::int);
    RETURN NULL;
END
$$;
CREATE TRIGGER message_count_change AFTER UPDATE OF read, attachments ON message
    FOR EACH ROW WHEN (OLD.read <> NEW.read OR (OLD.attachments > 0) <> (NEW.attachments > 0))
    EXECUTE FUNCTION message_count_change();

DROP FUNCTION message_count_add(bigint, bigint);
UPDATE message_count SET attached = 0, attached_unread = 0;
INSERT INTO message_count AS c (slot, messages, unread, attached, attached_unread)
SELECT 0, 0, 0, count(*), count(*) FILTER (WHERE NOT read) FROM message WHERE attachments > 0
ON CONFLICT (slot) DO UPDATE SET attached = excluded.attached, attached_unread = excluded.attached_unread;
