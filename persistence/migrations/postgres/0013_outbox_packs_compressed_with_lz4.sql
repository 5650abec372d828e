-- An outbox pack (persistence/src/outbox.rs) holds a group commit's events, tens of KB,
-- which PostgreSQL compresses before storing it out of line. With its default, pglz, that
-- compression was the largest single cost of a batch write: 8.6% of PostgreSQL's CPU
-- under Buy Now (perf, wrk at 256 connections). lz4 does the same job several times
-- faster; a server built without lz4 stores packs uncompressed instead.
DO $$
BEGIN
    ALTER TABLE outbox ALTER COLUMN events SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    ALTER TABLE outbox ALTER COLUMN events SET STORAGE EXTERNAL;
END
$$;
