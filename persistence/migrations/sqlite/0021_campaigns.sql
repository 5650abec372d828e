-- Sale campaigns: when a sale is scheduled, every user who wishlisted its product hears
-- of it (the announcement), and again shortly before it starts (the reminder).
-- - campaigns: one row per sale and kind. `cursor_user_id` is the last wisher whose
--   message was queued (the wishers are walked in user id order, one keyset page at a
--   time), so a restart continues from it; the counters say how far the campaign is,
--   in messages (one per wisher and channel). `message` is what it says (sale, product,
--   price, start), taken from the sale when it was scheduled.
-- - campaign_deliveries: one row per message sent (or given up on): the dedupe key that
--   makes a message that was queued twice (a page queued again after a crash) go out once.
CREATE TABLE campaigns (
    sale_id        INTEGER NOT NULL,
    kind           TEXT NOT NULL CHECK (kind = 'announcement' OR kind = 'reminder'),
    product_id     INTEGER NOT NULL,
    due_at_ms      INTEGER NOT NULL,
    message        TEXT NOT NULL,
    total          INTEGER,
    enqueued       INTEGER NOT NULL DEFAULT 0,
    sent           INTEGER NOT NULL DEFAULT 0,
    failed         INTEGER NOT NULL DEFAULT 0,
    cursor_user_id INTEGER,
    enqueued_all   INTEGER NOT NULL DEFAULT 0,
    started_at_ms  INTEGER,
    finished_at_ms INTEGER,
    PRIMARY KEY (sale_id, kind)
) WITHOUT ROWID;
-- The runner's poll: campaigns due and not queued to the end yet.
CREATE INDEX campaigns_pending ON campaigns (due_at_ms) WHERE NOT enqueued_all;

CREATE TABLE campaign_deliveries (
    sale_id INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    channel TEXT NOT NULL,
    sent    INTEGER NOT NULL,
    at_ms   INTEGER NOT NULL,
    PRIMARY KEY (sale_id, kind, user_id, channel)
) WITHOUT ROWID;
