-- Every listing shows the store's message and unread counts; counting them read the whole
-- message table (a sequential scan: ~30 ms at 10,000 messages, growing with the store). This
-- table keeps them, changed by triggers in the transaction of every insert and deletion
-- (per statement) and change of read state (per row) of a message. A change is added to the
-- row of its backend's slot (pg_backend_pid() % 16), so that concurrent ingest on several
-- connections or nodes rarely waits on one row; the counts are the sums over the slots.
-- TRUNCATE fires none of these triggers: emptying the store truncates this table too.
CREATE TABLE message_count (
    slot      integer PRIMARY KEY,
    messages  bigint NOT NULL,
    unread    bigint NOT NULL
);

CREATE FUNCTION message_count_add(m bigint, u bigint) RETURNS void LANGUAGE sql AS $$
    INSERT INTO message_count AS c (slot, messages, unread) VALUES (pg_backend_pid() % 16, m, u)
    ON CONFLICT (slot) DO UPDATE SET messages = c.messages + excluded.messages, unread = c.unread + excluded.unread;
$$;

CREATE FUNCTION message_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM message_count_add(count(*), count(*) FILTER (WHERE NOT read)) FROM new_rows HAVING count(*) > 0;
    RETURN NULL;
END
$$;

CREATE FUNCTION message_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM message_count_add(-count(*), -count(*) FILTER (WHERE NOT read)) FROM old_rows HAVING count(*) > 0;
    RETURN NULL;
END
$$;

-- a change of read state, row by row: the indexer's updates (which do not set read) fire
-- nothing, and a statement trigger would have to copy every updated row (transition tables)
CREATE FUNCTION message_count_read() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM message_count_add(0, CASE WHEN NEW.read THEN -1 ELSE 1 END);
    RETURN NULL;
END
$$;

CREATE TRIGGER message_count_insert AFTER INSERT ON message REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION message_count_insert();
CREATE TRIGGER message_count_delete AFTER DELETE ON message REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION message_count_delete();
CREATE TRIGGER message_count_read AFTER UPDATE OF read ON message
    FOR EACH ROW WHEN (OLD.read <> NEW.read) EXECUTE FUNCTION message_count_read();

INSERT INTO message_count (slot, messages, unread)
SELECT 0, count(*), count(*) FILTER (WHERE NOT read) FROM message;
