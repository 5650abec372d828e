-- PostgreSQL's outbox packs are compressed with lz4 from this number; SQLite does not
-- compress values. This file keeps the two dialects' migrations in step
-- (migrations/README.md).
SELECT 1;
