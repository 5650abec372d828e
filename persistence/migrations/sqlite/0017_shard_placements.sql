-- PostgreSQL keeps the cluster's shard placements from this number; a cluster needs
-- PostgreSQL, so the embedded store has none. This file keeps the two dialects'
-- migrations in step (migrations/README.md).
SELECT 1;
