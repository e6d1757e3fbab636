-- The listing of conversations (GET /api/v2/threads) grouped every message by thread_id per
-- request (O(messages)). As SQLite's 0013_thread_summary.sql: this table keeps each
-- conversation's counts and last activity, maintained by a trigger in the transaction of
-- every change to a message's conversation, read flag or existence (the indexer assigning
-- and merging conversations, read/unread, deletion), so a page is an index scan. TRUNCATE
-- fires no row trigger: emptying the store truncates this table with message.
CREATE TABLE thread (
    thread_id     text PRIMARY KEY,
    messages      integer NOT NULL,
    unread        integer NOT NULL,
    last_id       bigint NOT NULL,            -- newest message (message.id)
    last_created  double precision NOT NULL   -- the latest arrival time among its messages
);
CREATE INDEX thread_last ON thread (last_id);

CREATE FUNCTION thread_put(t text, is_unread boolean, i bigint, c double precision) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO thread (thread_id, messages, unread, last_id, last_created)
    VALUES (t, 1, is_unread::int, i, c)
    ON CONFLICT (thread_id) DO UPDATE SET
        messages = thread.messages + 1,
        unread = thread.unread + excluded.unread,
        last_id = greatest(thread.last_id, excluded.last_id),
        last_created = greatest(thread.last_created, excluded.last_created);
$$;

-- after the message left conversation t (deleted, or moved to another): its row is gone
-- from t's messages, so the newest of the others is read back when it was the newest
CREATE FUNCTION thread_take(t text, was_unread boolean, i bigint, c double precision) RETURNS void
LANGUAGE sql AS $$
    UPDATE thread SET messages = messages - 1, unread = unread - was_unread::int WHERE thread_id = t;
    UPDATE thread SET last_id = coalesce((SELECT max(id) FROM message WHERE thread_id = t), 0)
        WHERE thread_id = t AND last_id = i;
    UPDATE thread SET last_created = coalesce((SELECT max(created) FROM message WHERE thread_id = t), 0)
        WHERE thread_id = t AND last_created <= c;
    DELETE FROM thread WHERE thread_id = t AND messages <= 0;
$$;

CREATE FUNCTION thread_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.thread_id <> '' THEN
            PERFORM thread_put(NEW.thread_id, NOT NEW.read, NEW.id, NEW.created);
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        IF OLD.thread_id <> '' THEN
            PERFORM thread_take(OLD.thread_id, NOT OLD.read, OLD.id, OLD.created);
        END IF;
    ELSIF NEW.thread_id <> OLD.thread_id THEN
        IF NEW.thread_id <> '' THEN
            PERFORM thread_put(NEW.thread_id, NOT NEW.read, NEW.id, NEW.created);
        END IF;
        IF OLD.thread_id <> '' THEN
            PERFORM thread_take(OLD.thread_id, NOT OLD.read, OLD.id, OLD.created);
        END IF;
    ELSIF NEW.thread_id <> '' AND NEW.read <> OLD.read THEN
        UPDATE thread SET unread = unread + (NOT NEW.read)::int - (NOT OLD.read)::int
            WHERE thread_id = NEW.thread_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER thread_keep AFTER INSERT OR DELETE OR UPDATE OF thread_id, read ON message
    FOR EACH ROW EXECUTE FUNCTION thread_keep();

INSERT INTO thread (thread_id, messages, unread, last_id, last_created)
SELECT thread_id, count(*), count(*) FILTER (WHERE NOT read), max(id), max(created) FROM message
WHERE thread_id <> '' GROUP BY thread_id;
