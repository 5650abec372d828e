-- Shards an operator placed on a node (`flashcart cluster move`), overriding the consumer
-- group's assignment, as Akka's external shard allocation does (issue 15). The node that
-- holds such a shard hands it off and sets `released`; the chosen node takes its lease only
-- then (or at once if the holder is dead), so no batch of the old holder is fenced mid-move.
CREATE TABLE shard_placements (
    shard     INTEGER     PRIMARY KEY CHECK (shard >= 0),
    node_id   TEXT        NOT NULL CHECK (node_id <> ''),
    released  BOOLEAN     NOT NULL DEFAULT false,
    placed_at TIMESTAMPTZ NOT NULL
);
