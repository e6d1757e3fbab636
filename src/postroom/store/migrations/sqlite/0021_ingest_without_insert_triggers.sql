-- The writer's INSERTs of new mail ran under two row triggers (issue 15). `thread_insert`
-- never did anything there: a new message has no conversation (thread_id is '' until the
-- indexer's UPDATE, which `thread_move` counts), and no other statement inserts a message.
-- `folder_count_insert` added 1 to its folder's counts per delivery row. Whether or not its
-- WHEN holds, an INSERT under a trigger opens a statement journal and copies every page it
-- changes there first (the message row, its raw bytes and ten index entries), and runs the
-- trigger's program per row: together 8-11 µs of the writer's ~45 µs of SQLite per message
-- (in-process, 10 messages to a transaction). The statements that add deliveries (new mail,
-- IMAP APPEND, COPY/MOVE, the rename of INBOX) now add their folder's counts themselves, once
-- per folder in the statement that advances its uidnext (sqlite_folders.advance_folder). The
-- triggers of deletions and \Seen changes stay: many paths take those.
DROP TRIGGER thread_insert;
DROP TRIGGER folder_count_insert;
