-- Product reviews: one per user and product, by users who received the product.
CREATE TABLE reviews (
    id            BIGSERIAL PRIMARY KEY,
    product_id    BIGINT    NOT NULL,
    user_id       BIGINT    NOT NULL,
    rating        SMALLINT  NOT NULL CHECK (rating BETWEEN 1 AND 5),
    title         TEXT      NOT NULL,
    body          TEXT      NOT NULL,
    created_at_ms BIGINT    NOT NULL,
    UNIQUE (product_id, user_id)
);
CREATE INDEX reviews_by_product ON reviews (product_id, id);
-- "Did this user receive this product?" asks orders by user.
CREATE INDEX orders_by_user_status ON orders (user_id) WHERE status = 'DELIVERED';
