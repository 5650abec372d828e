-- Recommendations (issue 17, part 4) survive a restart: each node saves the neighbours it
-- counted per product (JSON: [{"p": product, "s": score, "t": ms of the score}]) and
-- reloads them at start. Keyed by node: on a cluster each node counts its share of the
-- stream, and the answer sums the shares.
CREATE TABLE co_occurrence (
    node       TEXT   NOT NULL,
    product_id BIGINT NOT NULL,
    neighbours TEXT   NOT NULL,
    PRIMARY KEY (node, product_id)
);
