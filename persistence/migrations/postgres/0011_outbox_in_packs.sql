-- One outbox row per group commit (a pack of events, see persistence/src/outbox.rs)
-- instead of one per event: every Buy Now emits an event, and a row per event cost an
-- insert, a primary-key entry and, once relayed, a delete (and the vacuum behind it) per
-- order. Waiting events become packs of one, in their order.
ALTER TABLE outbox
    ADD COLUMN events TEXT NOT NULL DEFAULT '',
    ADD COLUMN event_count INTEGER NOT NULL DEFAULT 1 CHECK (event_count > 0);
UPDATE outbox SET events = topic || E'\t' || event_type || E'\t' || entity_key || E'\t' || payload;
ALTER TABLE outbox
    DROP COLUMN topic,
    DROP COLUMN event_type,
    DROP COLUMN entity_key,
    DROP COLUMN payload,
    ALTER COLUMN events DROP DEFAULT,
    ALTER COLUMN event_count DROP DEFAULT;
