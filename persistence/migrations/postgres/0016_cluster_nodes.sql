-- The nodes of a cluster and where the others reach them (issue 15). A node writes its row
-- when it joins and refreshes `seen_at` while it runs; a request for a product owned
-- elsewhere is forwarded to the address of its shard's lease holder (`shard_leases`).
CREATE TABLE cluster_nodes (
    node_id          TEXT        PRIMARY KEY CHECK (node_id <> ''),
    internal_address TEXT        NOT NULL CHECK (internal_address <> ''),
    started_at       TIMESTAMPTZ NOT NULL,
    seen_at          TIMESTAMPTZ NOT NULL
);
