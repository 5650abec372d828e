-- PostgreSQL indexes catalog changes by time from this number, for cluster nodes that
-- follow each other's; a cluster needs PostgreSQL. This file keeps the two dialects'
-- migrations in step (migrations/README.md).
SELECT 1;
