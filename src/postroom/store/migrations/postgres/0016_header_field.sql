-- header:Name=value reads this index (as SQLite's header_field, 0011) instead of a regular
-- expression over message.headers, whose trigram index found a candidate in nearly every
-- message for a value of a common header (header:X-Campaign=campaign-42: every message's
-- header lines hold those trigrams; 523 ms at 10,000 messages). One row per header field
-- (name and decoded value in lower case, sqlite_search.header_rows), written by the indexer
-- in the transaction that sets message.indexed = 1; a message not indexed yet is checked
-- against its message.headers lines. Rows of the messages stored before this migration are
-- taken from those lines here.
CREATE TABLE header_field (
    message  bigint  NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    seq      integer NOT NULL,
    name     text    NOT NULL,
    value    text    NOT NULL,
    PRIMARY KEY (message, seq)
);
INSERT INTO header_field (message, seq, name, value)
SELECT m.id, t.seq - 1, split_part(t.line, ': ', 1), substr(t.line, strpos(t.line, ': ') + 2)
FROM message m, regexp_split_to_table(m.headers, E'\n') WITH ORDINALITY AS t(line, seq)
WHERE m.headers <> '' AND strpos(t.line, ': ') > 0;
CREATE INDEX header_field_name ON header_field (name, message);
CREATE INDEX header_field_value_trgm ON header_field USING gin (value gin_trgm_ops);
-- only the messages waiting for the indexer are read through their header lines now
DROP INDEX message_headers_trgm;
