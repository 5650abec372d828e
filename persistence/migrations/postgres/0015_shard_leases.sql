-- Which node owns each virtual shard, and since when (issue 15: the cluster). Taking a
-- shard bumps its epoch; every group commit of a clustered node carries the leases of the
-- shards its writes belong to, and PostgreSQL refuses the whole batch if one of them is no
-- longer current. So a node that was paused, or cut off, and still believes it owns a
-- shard cannot commit a single order for it once another node has taken it over.
CREATE TABLE shard_leases (
    shard      INTEGER     PRIMARY KEY CHECK (shard >= 0),
    owner_node TEXT        NOT NULL CHECK (owner_node <> ''),
    epoch      BIGINT      NOT NULL CHECK (epoch > 0),
    taken_at   TIMESTAMPTZ NOT NULL
);
