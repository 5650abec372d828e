-- The outbox body is TEXT here since 0004_outbox; PostgreSQL's was JSONB until this
-- number. This file keeps the two dialects' migrations in step (migrations/README.md).
SELECT 1;
