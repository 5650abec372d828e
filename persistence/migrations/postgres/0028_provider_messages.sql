-- What the notification jobs send to providers, not to people: today the payment request
-- every new order sends to the payment provider. A log, one row per group commit, packed as
-- the outbox packs events (persistence/src/provider_messages.rs). In `notifications` each
-- was a row of its own, keyed by a 69-character dedup key and indexed by user, written in
-- the orders' batch statement: the costliest write of an order (issue 14, finding 9 of the
-- 2026-12-05 note: +14-40% orders/s without those rows). No shopper reads them: their list
-- of messages is theirs. Payment requests recorded before this migration stay where they are.
CREATE TABLE provider_messages (
    seq           BIGSERIAL PRIMARY KEY,
    messages      TEXT   NOT NULL,
    message_count INT    NOT NULL CHECK (message_count > 0),
    logged_at_ms  BIGINT NOT NULL
);
-- A pack holds a group commit's messages, KB of similar lines: compressed with lz4 as the
-- outbox's packs are (0013 says why not pglz), stored uncompressed where lz4 is missing.
DO $$
BEGIN
    ALTER TABLE provider_messages ALTER COLUMN messages SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    ALTER TABLE provider_messages ALTER COLUMN messages SET STORAGE EXTERNAL;
END
$$;
