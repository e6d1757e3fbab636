-- has:attachment and to: searches count their matches (and the unread among them) by a scan;
-- these indexes make that scan small (measured at 20,000 messages in benchmarks/search_bench.py,
-- counting matches and unread: has:attachment 16.6 ms -> under 0.1 ms, `to:... is:unread`
-- 11.0 ms -> 2.6 ms). The partial index holds only messages with attachments (with their read
-- flag); the covering one the To: list with the read flag, as 0005 does for from: and subject:.
CREATE INDEX message_attached ON message(read) WHERE attachments > 0;
CREATE INDEX message_to_cover ON message(to_json, read);
