-- The stock ledger records movements per batch, product and kind. PostgreSQL has done so
-- since 0003_lean_order_path (its `order_count` column); this number keeps the two
-- dialects' migrations in step (migrations/README.md).
SELECT 1;
