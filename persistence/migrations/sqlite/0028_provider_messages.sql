-- What the notification jobs send to providers, not to people (the payment request every
-- new order sends): a log, one row per group commit, packed as the outbox packs events
-- (persistence/src/provider_messages.rs). PostgreSQL's 0028 says why they left
-- `notifications`; payment requests recorded before this migration stay there.
CREATE TABLE provider_messages (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    messages      TEXT    NOT NULL,
    message_count INTEGER NOT NULL CHECK (message_count > 0),
    logged_at_ms  INTEGER NOT NULL
);
