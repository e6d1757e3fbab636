-- Each folder's message and unseen counts, kept by triggers on delivery in the transaction
-- of every change (insert, delete, a change of \Seen), so that SELECT, STATUS and LIST read
-- them with the folder's row instead of counting its deliveries (~10 ms at 100,000
-- messages, issue 19). Every path that adds, removes or re-flags a delivery goes through
-- these (a foreign key's ON DELETE CASCADE fires them too).
ALTER TABLE folder ADD COLUMN messages INTEGER NOT NULL DEFAULT 0;
ALTER TABLE folder ADD COLUMN unseen INTEGER NOT NULL DEFAULT 0;

UPDATE folder SET
    messages = (SELECT count(*) FROM delivery d WHERE d.folder_id = folder.id),
    unseen = (SELECT count(*) FROM delivery d WHERE d.folder_id = folder.id AND d.seen = 0);

CREATE TRIGGER folder_count_insert AFTER INSERT ON delivery BEGIN
    UPDATE folder SET messages = messages + 1, unseen = unseen + (NEW.seen = 0) WHERE id = NEW.folder_id;
END;

CREATE TRIGGER folder_count_delete AFTER DELETE ON delivery BEGIN
    UPDATE folder SET messages = messages - 1, unseen = unseen - (OLD.seen = 0) WHERE id = OLD.folder_id;
END;

CREATE TRIGGER folder_count_update AFTER UPDATE OF seen, folder_id ON delivery
WHEN OLD.seen <> NEW.seen OR OLD.folder_id <> NEW.folder_id BEGIN
    UPDATE folder SET messages = messages - 1, unseen = unseen - (OLD.seen = 0) WHERE id = OLD.folder_id;
    UPDATE folder SET messages = messages + 1, unseen = unseen + (NEW.seen = 0) WHERE id = NEW.folder_id;
END;
