-- A change of \Seen alone (mark all read, STORE) updates its folder's row once, not twice:
-- 0021's row trigger took the message out of the folder and put it back, two new versions
-- of one folder row per delivery (200,000 for "mark all read" over 100,000 messages).
CREATE OR REPLACE FUNCTION folder_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.folder_id = NEW.folder_id THEN
        UPDATE folder SET unseen = unseen + (NOT NEW.seen)::int - (NOT OLD.seen)::int WHERE id = NEW.folder_id;
    ELSE
        UPDATE folder SET messages = messages - 1, unseen = unseen - (NOT OLD.seen)::int WHERE id = OLD.folder_id;
        UPDATE folder SET messages = messages + 1, unseen = unseen + (NOT NEW.seen)::int WHERE id = NEW.folder_id;
    END IF;
    RETURN NULL;
END
$$;
