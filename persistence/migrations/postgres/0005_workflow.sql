-- What the notification senders sent (or, with the default sender, would have sent).
-- `dedup_key` names the job and channel, so a redelivered job is recorded once.
CREATE TABLE notifications (
    id         BIGSERIAL PRIMARY KEY,
    dedup_key  TEXT      NOT NULL UNIQUE,
    user_id    BIGINT    NOT NULL,
    order_id   UUID,
    kind       TEXT      NOT NULL,
    channel    TEXT      NOT NULL,
    body       JSONB     NOT NULL,
    sent_at_ms BIGINT    NOT NULL
);
CREATE INDEX notifications_by_user ON notifications (user_id, id);

-- The delivery partner logistics assigned to a paid order; the first assignment stands.
CREATE TABLE delivery_assignments (
    order_id       UUID   PRIMARY KEY,
    partner_id     TEXT   NOT NULL,
    assigned_at_ms BIGINT NOT NULL
);
