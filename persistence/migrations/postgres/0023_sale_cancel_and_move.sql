-- A sale can be cancelled (it ends then, whatever its window said) or moved to another
-- window before it starts. `cancelled_at` records the first; `changed_at` is when the row
-- last changed, which cluster nodes follow (it was `created_at`, and a sale that moved
-- must reach the other nodes too).
ALTER TABLE flash_sales ADD COLUMN cancelled_at TIMESTAMPTZ;
ALTER TABLE flash_sales ADD COLUMN changed_at TIMESTAMPTZ;
UPDATE flash_sales SET changed_at = created_at;
ALTER TABLE flash_sales ALTER COLUMN changed_at SET NOT NULL;
DROP INDEX flash_sales_by_creation;
CREATE INDEX flash_sales_by_change ON flash_sales (changed_at);

-- A cancelled sale's campaigns stop: nothing more is queued, and messages queued already
-- are dropped instead of sent.
ALTER TABLE campaigns ADD COLUMN cancelled_at_ms BIGINT;
