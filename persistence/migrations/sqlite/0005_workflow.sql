-- What the notification senders sent (or, with the default sender, would have sent).
-- `dedup_key` names the job and channel, so a redelivered job is recorded once.
CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key  TEXT    NOT NULL UNIQUE,
    user_id    INTEGER NOT NULL,
    order_id   TEXT,
    kind       TEXT    NOT NULL,
    channel    TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    sent_at_ms INTEGER NOT NULL
);
CREATE INDEX notifications_by_user ON notifications (user_id, id);

-- The delivery partner logistics assigned to a paid order; the first assignment stands.
CREATE TABLE delivery_assignments (
    order_id       TEXT    PRIMARY KEY,
    partner_id     TEXT    NOT NULL,
    assigned_at_ms INTEGER NOT NULL
);
