-- has:inline reads this count of a message's inline parts (disposition inline, or a Content-ID
-- and no disposition: the pictures an HTML body shows by cid:), written by the indexer with the
-- attachment count. NULL: not counted yet (mail stored before this migration, until the
-- background pass has parsed it; such a message does not match has:inline meanwhile).
ALTER TABLE message ADD COLUMN inline_parts INTEGER;
CREATE INDEX message_inline_pending ON message(id) WHERE inline_parts IS NULL;
