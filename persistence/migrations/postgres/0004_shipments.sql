-- An order on its way: who carries it and how it ended.
CREATE TABLE shipments (
    order_id           UUID        PRIMARY KEY REFERENCES orders (id),
    tracking_id        TEXT        NOT NULL,
    estimated_delivery TIMESTAMPTZ NOT NULL,
    shipped_at         TIMESTAMPTZ NOT NULL,
    delivered_at       TIMESTAMPTZ,
    signature          TEXT,
    photo_url          TEXT
);
