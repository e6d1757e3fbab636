-- What the IMAP server derives from a message (ENVELOPE, BODYSTRUCTURE, header fields,
-- search text), kept across restarts so that a FETCH or SEARCH after a restart reads rows
-- instead of parsing every message again. Messages never change once stored, so rows
-- are only added (lazily, on first use) or replaced (when the IMAP layer's format
-- changes: the blob carries its own version). The store does not look inside a blob.
-- Rows go with their message: the trigger imap_cache_gc (AFTER DELETE ON message) is
-- created with the first row by store/sqlite_imapcache.py, because this migration runner
-- splits statements at every semicolon and a trigger body needs one.
CREATE TABLE imap_cache (
    message  INTEGER NOT NULL,   -- message.id (AUTOINCREMENT: never reused)
    kind     TEXT    NOT NULL,   -- what the blob holds, e.g. 'meta', 'text'
    data     BLOB    NOT NULL,
    PRIMARY KEY (message, kind)
) WITHOUT ROWID
