-- An order on its way: who carries it and how it ended.
CREATE TABLE shipments (
    order_id              TEXT    PRIMARY KEY REFERENCES orders (id),
    tracking_id           TEXT    NOT NULL,
    estimated_delivery_ms INTEGER NOT NULL,
    shipped_at_ms         INTEGER NOT NULL,
    delivered_at_ms       INTEGER,
    signature             TEXT,
    photo_url             TEXT
);
