-- postroom PostgreSQL schema, version 1 (the same model as SQLite's; docs/architecture.md).
-- A message is stored once (message + raw); deliveries place it in mailbox folders.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE message (
    id            bigserial PRIMARY KEY,        -- internal key, in commit order of the id draw
    pid           text      NOT NULL UNIQUE,    -- public ID (API, events)
    created       double precision NOT NULL,    -- received, epoch seconds
    date          double precision,             -- Date: header, when it parses
    message_id    text      NOT NULL DEFAULT '',
    subject       text      NOT NULL DEFAULT '',
    from_name     text      NOT NULL DEFAULT '',
    from_addr     text      NOT NULL DEFAULT '',
    to_json       text      NOT NULL DEFAULT '[]',
    cc_json       text      NOT NULL DEFAULT '[]',
    bcc_json      text      NOT NULL DEFAULT '[]',
    reply_to_json text      NOT NULL DEFAULT '[]',
    in_reply_to   text      NOT NULL DEFAULT '',
    refs          text      NOT NULL DEFAULT '',
    size          integer   NOT NULL,
    attachments   integer   NOT NULL DEFAULT 0,
    snippet       text      NOT NULL DEFAULT '',
    read          boolean   NOT NULL DEFAULT false,
    username      text      NOT NULL DEFAULT '',
    thread_id     text      NOT NULL DEFAULT '',
    envelope      text      NOT NULL DEFAULT '{}',
    headers       text      NOT NULL DEFAULT '',  -- "name: decoded value" lines, lower case (header:)
    indexed       smallint  NOT NULL DEFAULT 0,   -- 0 pending, 1 done
    tsv           tsvector                        -- full text ('simple' configuration), by the indexer
);
CREATE INDEX message_created ON message (created);
CREATE INDEX message_unread ON message (id) WHERE NOT read;
CREATE INDEX message_msgid ON message (message_id);
CREATE INDEX message_thread ON message (thread_id);
CREATE INDEX message_pending ON message (id) WHERE indexed = 0;
CREATE INDEX message_tsv ON message USING gin (tsv);
CREATE INDEX message_subject_trgm ON message USING gin (subject gin_trgm_ops);
CREATE INDEX message_from_trgm ON message USING gin ((from_name || ' ' || from_addr) gin_trgm_ops);
CREATE INDEX message_headers_trgm ON message USING gin (headers gin_trgm_ops);

CREATE TABLE raw (
    id    bigint PRIMARY KEY REFERENCES message (id) ON DELETE CASCADE,
    data  bytea  NOT NULL                     -- LZ4 frame of the whole message (store/rawcodec.py)
);
ALTER TABLE raw ALTER COLUMN data SET STORAGE EXTERNAL;  -- already compressed

CREATE TABLE mailbox (
    id       bigserial PRIMARY KEY,
    name     text NOT NULL UNIQUE,
    created  double precision NOT NULL
);

CREATE TABLE folder (
    id           bigserial PRIMARY KEY,
    mailbox_id   bigint  NOT NULL REFERENCES mailbox (id) ON DELETE CASCADE,
    name         text    NOT NULL,
    uidvalidity  bigint  NOT NULL,
    uidnext      bigint  NOT NULL DEFAULT 1,
    modseq       bigint  NOT NULL DEFAULT 1,
    subscribed   boolean NOT NULL DEFAULT true,
    special_use  text    NOT NULL DEFAULT '',
    UNIQUE (mailbox_id, name)
);

CREATE TABLE delivery (
    folder_id  bigint  NOT NULL REFERENCES folder (id) ON DELETE CASCADE,
    uid        bigint  NOT NULL,
    message    bigint  NOT NULL REFERENCES message (id) ON DELETE CASCADE,
    flags      text    NOT NULL DEFAULT '',
    seen       boolean NOT NULL DEFAULT false,
    modseq     bigint  NOT NULL DEFAULT 1,
    PRIMARY KEY (folder_id, uid)
);
CREATE INDEX delivery_message ON delivery (message);

CREATE TABLE tag (
    id    bigserial PRIMARY KEY,
    name  text NOT NULL
);
CREATE UNIQUE INDEX tag_name ON tag (lower(name));

CREATE TABLE message_tag (
    message  bigint NOT NULL REFERENCES message (id) ON DELETE CASCADE,
    tag      bigint NOT NULL REFERENCES tag (id) ON DELETE CASCADE,
    PRIMARY KEY (message, tag)
);
CREATE INDEX message_tag_tag ON message_tag (tag);

CREATE TABLE imap_cache (
    kind     text   NOT NULL,
    message  bigint NOT NULL REFERENCES message (id) ON DELETE CASCADE,
    data     bytea  NOT NULL,
    PRIMARY KEY (message, kind)
);

-- Counters shared by every node. 'uidvalidity': the last UIDVALIDITY handed out, so that a
-- folder created again under a used name always gets a greater one (RFC 3501 2.3.1.1).
CREATE TABLE counter (
    name   text PRIMARY KEY,
    value  bigint NOT NULL
);
INSERT INTO counter (name, value) VALUES ('uidvalidity', 0);
