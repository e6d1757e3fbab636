-- The covering indexes of from:, subject: and to: searches (0005, 0012) are read only by whole
-- scans: a substring match (LIKE '%...%') can seek nothing, so their column order does not
-- matter to a search, only that they hold the columns it reads. It matters to a bulk read
-- change: with the matched column first, each message's entry sits among those with the same
-- address or subject, so marking 100,000 messages read (row id order) moved entries in pages
-- all over each index. Mail to 1,000 recipients in turn made "mark all read" 2.2 times as
-- costly in the writer as before 0012 (issue 21's UI benchmark: 1.9 s -> 3.1 s). Led by the
-- row id, an entry sits where its message's row sits, so a bulk change walks each index in
-- order, as it walks the table. Same plans and the same scan times for the searches.
DROP INDEX message_from_cover;
CREATE INDEX message_from_cover ON message(id, from_addr, from_name, read);
DROP INDEX message_subject_cover;
CREATE INDEX message_subject_cover ON message(id, subject, read);
DROP INDEX message_to_cover;
CREATE INDEX message_to_cover ON message(id, to_json, read);
