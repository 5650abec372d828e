-- PostgreSQL's notifications lose their BIGSERIAL id at this number (its 0027 says why).
-- SQLite's rowid costs no index of its own; the table stays. This file keeps the two
-- dialects' migrations in step (migrations/README.md).
SELECT 1;
