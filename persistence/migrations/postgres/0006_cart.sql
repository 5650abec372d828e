-- Shopping carts: one row per user and product. Rows untouched for the retention period
-- (30 days by default) are ignored and purged.
CREATE TABLE cart_items (
    user_id       BIGINT  NOT NULL,
    product_id    BIGINT  NOT NULL,
    quantity      INTEGER NOT NULL CHECK (quantity > 0),
    added_at_ms   BIGINT  NOT NULL,
    updated_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (user_id, product_id)
);
