-- has:inline reads this count of a message's inline parts (as SQLite's 0015_inline_parts.sql):
-- written by the indexer; NULL until counted (mail stored before this migration, until the
-- indexer's idle pass has parsed it).
ALTER TABLE message ADD COLUMN inline_parts integer;
CREATE INDEX message_inline_pending ON message(id) WHERE inline_parts IS NULL;
