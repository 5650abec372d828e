-- PostgreSQL's sales count their held units on the sale from this number (one update per
-- batch instead of a row per buyer); SQLite keeps no counters and counts them from the
-- orders. This file keeps the two dialects' migrations in step (migrations/README.md).
SELECT 1;
