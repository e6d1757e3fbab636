-- The outbound queue (release, relay, forward, postroom send --queue): one row per
-- recipient, so each recipient has its own attempts, backoff and bounce. The message is
-- kept with the row (zstd, like message bodies) so that pruning the store never loses
-- mail waiting to go out. Claims carry a lease: a node that dies mid-send leaves rows
-- that another claim picks up once the lease has run out.
CREATE TABLE outbound (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    mail_from TEXT NOT NULL,
    rcpt TEXT NOT NULL,
    raw BLOB NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    next_at REAL NOT NULL,
    give_up_at REAL NOT NULL,
    last_reply TEXT NOT NULL DEFAULT '',
    claimed_by TEXT NOT NULL DEFAULT '',
    lease_until REAL NOT NULL DEFAULT 0
);
CREATE INDEX outbound_due ON outbound(state, next_at);
CREATE INDEX outbound_message ON outbound(message_id);
CREATE TABLE outbound_attempt (
    id INTEGER PRIMARY KEY,
    outbound_id INTEGER NOT NULL REFERENCES outbound(id) ON DELETE CASCADE,
    at REAL NOT NULL,
    destination TEXT NOT NULL,
    reply TEXT NOT NULL,
    outcome TEXT NOT NULL,
    next_at REAL
);
CREATE INDEX outbound_attempt_row ON outbound_attempt(outbound_id);
CREATE TABLE suppression (
    address TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    created REAL NOT NULL
);
