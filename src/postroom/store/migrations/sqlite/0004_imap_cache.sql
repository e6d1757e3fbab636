-- What the IMAP server derives from a message, kept across restarts so that a FETCH or
-- SEARCH after a restart reads rows instead of parsing every message again: imap_meta
-- holds ENVELOPE and BODYSTRUCTURE, imap_head the header fields, imap_text the search
-- text. Messages never change once stored, so rows are only added (lazily, on first
-- use) or replaced (when the IMAP layer's format changes: each blob carries its own
-- version). The store does not look inside a blob. One table per kind, keyed by
-- message.id (never reused: AUTOINCREMENT), so a FETCH reads only the blobs it needs.
-- Rows go with their message: the trigger imap_cache_gc (AFTER DELETE ON message) is
-- created with the first row by store/sqlite_imapcache.py (a trigger body holds a
-- semicolon, which this migration runner would split at).
CREATE TABLE imap_meta (
    id    INTEGER PRIMARY KEY,   -- message.id
    data  BLOB NOT NULL
);
CREATE TABLE imap_head (
    id    INTEGER PRIMARY KEY,
    data  BLOB NOT NULL
);
CREATE TABLE imap_text (
    id    INTEGER PRIMARY KEY,
    data  BLOB NOT NULL
)
