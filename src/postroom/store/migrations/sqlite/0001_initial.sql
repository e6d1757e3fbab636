-- postroom SQLite schema, version 1.
-- A message is stored once (message + raw); deliveries place it in mailbox folders.

CREATE TABLE message (
    id          INTEGER PRIMARY KEY AUTOINCREMENT, -- internal key; never reused (see fts)
    pid         TEXT    NOT NULL UNIQUE,        -- public ID (API, events)
    created     REAL    NOT NULL,               -- received, epoch seconds
    date        REAL,                           -- Date: header, when it parses
    message_id  TEXT    NOT NULL DEFAULT '',    -- Message-ID without <>
    subject     TEXT    NOT NULL DEFAULT '',
    from_name   TEXT    NOT NULL DEFAULT '',
    from_addr   TEXT    NOT NULL DEFAULT '',
    to_json     TEXT    NOT NULL DEFAULT '[]',  -- [[name, address], ...]
    cc_json     TEXT    NOT NULL DEFAULT '[]',
    bcc_json    TEXT    NOT NULL DEFAULT '[]',  -- envelope recipients not in To/Cc
    reply_to_json TEXT  NOT NULL DEFAULT '[]',
    in_reply_to TEXT    NOT NULL DEFAULT '',
    refs        TEXT    NOT NULL DEFAULT '',    -- References, space separated, without <>
    size        INTEGER NOT NULL,
    attachments INTEGER NOT NULL DEFAULT 0,     -- filled by the indexer
    snippet     TEXT    NOT NULL DEFAULT '',    -- filled by the indexer
    read        INTEGER NOT NULL DEFAULT 0,
    username    TEXT    NOT NULL DEFAULT '',
    thread_id   TEXT    NOT NULL DEFAULT '',
    envelope    TEXT    NOT NULL DEFAULT '{}',  -- Envelope.to_json()
    indexed     INTEGER NOT NULL DEFAULT 0      -- 0 pending, 1 done
);
CREATE INDEX message_created ON message(created);
CREATE INDEX message_unread ON message(read) WHERE read = 0;
CREATE INDEX message_msgid ON message(message_id);
CREATE INDEX message_pending ON message(indexed) WHERE indexed = 0;
CREATE INDEX message_thread ON message(thread_id);

CREATE TABLE raw (
    id    INTEGER PRIMARY KEY REFERENCES message(id) ON DELETE CASCADE,
    data  BLOB NOT NULL                          -- zstd frame of the whole message
);

CREATE TABLE mailbox (
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    created  REAL NOT NULL
);

CREATE TABLE folder (
    id           INTEGER PRIMARY KEY,
    mailbox_id   INTEGER NOT NULL REFERENCES mailbox(id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    uidvalidity  INTEGER NOT NULL,
    uidnext      INTEGER NOT NULL DEFAULT 1,
    modseq       INTEGER NOT NULL DEFAULT 1,
    subscribed   INTEGER NOT NULL DEFAULT 1,
    special_use  TEXT    NOT NULL DEFAULT '',
    UNIQUE (mailbox_id, name)
);

CREATE TABLE delivery (
    folder_id  INTEGER NOT NULL REFERENCES folder(id) ON DELETE CASCADE,
    uid        INTEGER NOT NULL,
    message    INTEGER NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    flags      TEXT    NOT NULL DEFAULT '',     -- space separated, e.g. "\Seen \Flagged"
    seen       INTEGER NOT NULL DEFAULT 0,      -- mirror of \Seen for counting
    modseq     INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (folder_id, uid)
) WITHOUT ROWID;
CREATE INDEX delivery_message ON delivery(message);

CREATE TABLE tag (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE COLLATE NOCASE
);

CREATE TABLE message_tag (
    message  INTEGER NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    tag      INTEGER NOT NULL REFERENCES tag(id) ON DELETE CASCADE,
    PRIMARY KEY (message, tag)
) WITHOUT ROWID;
CREATE INDEX message_tag_tag ON message_tag(tag);

-- Full-text index, filled by the indexer off the ingest path. rowid = message.id.
-- Contentless (no second copy of the text). SQLite < 3.43 cannot delete single rows of a
-- contentless table, so rows of deleted messages stay until the next 'delete-all' or
-- rebuild; queries always join message, and AUTOINCREMENT ids are never reused.
CREATE VIRTUAL TABLE fts USING fts5(
    subject, addresses, body, attachments,
    content = '',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
