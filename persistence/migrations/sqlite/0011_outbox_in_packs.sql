-- One outbox row per group commit (a pack of events, see persistence/src/outbox.rs)
-- instead of one per event: every Buy Now emits an event, and a row per event cost an
-- insert and, once relayed, a delete per order. Waiting events become packs of one, in
-- their order.
ALTER TABLE outbox ADD COLUMN events TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN event_count INTEGER NOT NULL DEFAULT 1 CHECK (event_count > 0);
UPDATE outbox SET events = topic || char(9) || event_type || char(9) || entity_key || char(9) || payload;
ALTER TABLE outbox DROP COLUMN topic;
ALTER TABLE outbox DROP COLUMN event_type;
ALTER TABLE outbox DROP COLUMN entity_key;
ALTER TABLE outbox DROP COLUMN payload;
