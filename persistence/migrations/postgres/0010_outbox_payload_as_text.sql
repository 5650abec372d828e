-- An event's body is JSON text the engine wrote itself (serde, once, where the event is
-- made), and the relay hands it on as text. As JSONB, PostgreSQL parsed and re-encoded
-- every body on insert and printed it back to text on every read: work per order on the
-- Buy Now path for nothing, since nothing queries inside an outbox body.
ALTER TABLE outbox ALTER COLUMN payload TYPE TEXT USING payload::text;
