-- The embedded store. Counters are not stored: stock is derived from products.stock_initial
-- and the orders, so there is one source of truth and nothing to keep in sync.

CREATE TABLE products (
    id              INTEGER PRIMARY KEY,
    title           TEXT    NOT NULL,
    brand           TEXT    NOT NULL,
    category        TEXT    NOT NULL,
    description     TEXT    NOT NULL,
    price_minor     INTEGER NOT NULL CHECK (price_minor > 0),
    rating          REAL    NOT NULL CHECK (rating >= 0 AND rating <= 5),
    popularity      INTEGER NOT NULL CHECK (popularity >= 0),
    -- Every unit ever stocked: creation plus restocks (see stock_ledger).
    stock_initial   INTEGER NOT NULL CHECK (stock_initial >= 0),
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL
);
CREATE INDEX products_by_category ON products (category, popularity DESC);

CREATE TABLE flash_sales (
    id                   INTEGER PRIMARY KEY,
    product_id           INTEGER NOT NULL REFERENCES products (id),
    sale_price_minor     INTEGER NOT NULL CHECK (sale_price_minor > 0),
    original_price_minor INTEGER NOT NULL CHECK (original_price_minor >= sale_price_minor),
    start_ms             INTEGER NOT NULL,
    end_ms               INTEGER CHECK (end_ms IS NULL OR end_ms > start_ms),
    stock                INTEGER NOT NULL CHECK (stock > 0),
    per_user_limit       INTEGER NOT NULL CHECK (per_user_limit > 0),
    created_at_ms        INTEGER NOT NULL
);
CREATE INDEX flash_sales_by_product ON flash_sales (product_id, id DESC);

CREATE TABLE orders (
    id              TEXT    PRIMARY KEY,
    user_id         INTEGER NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN
                        ('PENDING_PAYMENT', 'PAID', 'SHIPPED', 'DELIVERED', 'CANCELLED', 'EXPIRED')),
    total_minor     INTEGER NOT NULL CHECK (total_minor >= 0),
    idempotency_key TEXT    NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    expires_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL
);
-- Restart only needs the orders still holding stock.
CREATE INDEX orders_pending ON orders (status) WHERE status = 'PENDING_PAYMENT';

CREATE TABLE order_items (
    order_id         TEXT    NOT NULL REFERENCES orders (id),
    line_no          INTEGER NOT NULL CHECK (line_no >= 0),
    product_id       INTEGER NOT NULL REFERENCES products (id),
    sale_id          INTEGER REFERENCES flash_sales (id),
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_minor INTEGER NOT NULL CHECK (unit_price_minor > 0),
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_items_by_product ON order_items (product_id);

-- A retry with the same key finds the first order instead of making a second one. The
-- scope is what the key was used for (`product:<id>` for Buy Now).
CREATE TABLE idempotency_keys (
    user_id       INTEGER NOT NULL,
    scope         TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    order_id      TEXT    NOT NULL REFERENCES orders (id),
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, scope, key)
);

-- Append-only audit of every stock movement.
CREATE TABLE stock_ledger (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id INTEGER NOT NULL REFERENCES products (id),
    order_id   TEXT,
    kind       TEXT    NOT NULL CHECK (kind IN ('stock_set', 'sale_carve', 'reserve', 'confirm', 'release')),
    -- Units moved; for stock_set, the signed change of units on the shelf.
    quantity   INTEGER NOT NULL,
    at_ms      INTEGER NOT NULL
);
CREATE INDEX stock_ledger_by_product ON stock_ledger (product_id, seq);
