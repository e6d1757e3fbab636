-- header:Name=value searches read this index instead of decompressing every message: one row
-- per header field of a message (name and value lower case, the value unfolded and RFC 2047
-- decoded), written by the indexer with the message's text. message.hdr = 1 once a message's
-- rows are written; until then (mail not indexed yet, and every message stored before this
-- migration until the background pass has reached it) a search reads that message's header
-- block as before. Clustered by name, so a search reads the values of one header name only.
CREATE TABLE header_field (
    name     TEXT NOT NULL,
    message  INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (name, message, seq)
) WITHOUT ROWID;
CREATE INDEX header_field_message ON header_field(message);
ALTER TABLE message ADD COLUMN hdr INTEGER NOT NULL DEFAULT 0;
CREATE INDEX message_hdr_pending ON message(id) WHERE hdr = 0;
