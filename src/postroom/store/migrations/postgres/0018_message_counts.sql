-- Every listing shows the store's message and unread counts; counting them read the whole
-- message table (a sequential scan: ~30 ms at 10,000 messages, growing with the store). This
-- table keeps them, changed by statement triggers in the transaction of every insert,
-- deletion and update of message. A statement adds its change to the row of its backend's
-- slot (pg_backend_pid() % 16), so that concurrent ingest on several connections or nodes
-- rarely waits on one row; the counts are the sums over the slots. TRUNCATE fires no row or
-- statement trigger of these: emptying the store truncates this table with message.
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

CREATE FUNCTION message_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta bigint;
BEGIN
    SELECT (SELECT count(*) FILTER (WHERE NOT read) FROM new_rows)
         - (SELECT count(*) FILTER (WHERE NOT read) FROM old_rows) INTO delta;
    IF delta <> 0 THEN
        PERFORM message_count_add(0, delta);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER message_count_insert AFTER INSERT ON message REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION message_count_insert();
CREATE TRIGGER message_count_delete AFTER DELETE ON message REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION message_count_delete();
CREATE TRIGGER message_count_update AFTER UPDATE ON message REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION message_count_update();

INSERT INTO message_count (slot, messages, unread)
SELECT 0, count(*), count(*) FILTER (WHERE NOT read) FROM message;
