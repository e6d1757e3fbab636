-- The outbound queue (same model as SQLite's 0010_outbound.sql; docs/relay.md). Rows are
-- claimed with FOR UPDATE SKIP LOCKED, so the nodes sharing this database never hold the
-- same row, and a node that dies mid-send frees its rows when their lease runs out.
CREATE TABLE outbound (
    id          bigserial PRIMARY KEY,
    message_id  text NOT NULL,
    kind        text NOT NULL,
    mail_from   text NOT NULL,
    rcpt        text NOT NULL,
    raw         bytea NOT NULL,
    state       text NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    created     double precision NOT NULL,
    next_at     double precision NOT NULL,
    give_up_at  double precision NOT NULL,
    last_reply  text NOT NULL DEFAULT '',
    claimed_by  text NOT NULL DEFAULT '',
    lease_until double precision NOT NULL DEFAULT 0
);
CREATE INDEX outbound_due ON outbound (state, next_at);
CREATE INDEX outbound_message ON outbound (message_id);
CREATE TABLE outbound_attempt (
    id          bigserial PRIMARY KEY,
    outbound_id bigint NOT NULL REFERENCES outbound (id) ON DELETE CASCADE,
    at          double precision NOT NULL,
    destination text NOT NULL,
    reply       text NOT NULL,
    outcome     text NOT NULL,
    next_at     double precision
);
CREATE INDEX outbound_attempt_row ON outbound_attempt (outbound_id);
CREATE TABLE suppression (
    address text PRIMARY KEY,
    reason  text NOT NULL,
    created double precision NOT NULL
);
