-- A sale can be cancelled (it ends then, whatever its window said) or moved to another
-- window before it starts. `cancelled_at_ms` records the first; `changed_at_ms` is when
-- the row last changed (as in PostgreSQL, where cluster nodes follow it).
ALTER TABLE flash_sales ADD COLUMN cancelled_at_ms INTEGER;
ALTER TABLE flash_sales ADD COLUMN changed_at_ms INTEGER;
UPDATE flash_sales SET changed_at_ms = created_at_ms;

-- A cancelled sale's campaigns stop: nothing more is queued, and messages queued already
-- are dropped instead of sent.
ALTER TABLE campaigns ADD COLUMN cancelled_at_ms INTEGER;
