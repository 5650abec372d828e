-- SQLite's unique index on Buy Now's idempotency keys went (its 0026 says why: SQLite's
-- WAL logs whole pages, and the index took a random leaf per order). PostgreSQL logs the
-- index tuple, not the page, so its unique index on (user, scope, key) costs little and
-- stays: here the schema still re-checks every key. This file keeps the two dialects'
-- migrations in step (migrations/README.md).
SELECT 1;
