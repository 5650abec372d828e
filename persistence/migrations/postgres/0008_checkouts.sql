-- What a cart checkout adds to its order: where it goes and how it is paid. Buy Now orders
-- have no row here (the hot path writes nothing extra).
CREATE TABLE order_checkouts (
    order_id       UUID PRIMARY KEY REFERENCES orders (id),
    address_id     TEXT NOT NULL,
    payment_method TEXT NOT NULL
);
