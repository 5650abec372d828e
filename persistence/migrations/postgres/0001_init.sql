-- PostgreSQL, the source of truth. Stock is enforced here too: the inventory row of a
-- product can never go negative or out of balance, and a user's units in a sale can never
-- pass the sale's limit, whatever the engine above does.

CREATE TABLE users (
    id         BIGINT      PRIMARY KEY CHECK (id >= 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE products (
    id          BIGINT      PRIMARY KEY CHECK (id > 0),
    title       TEXT        NOT NULL,
    brand       TEXT        NOT NULL,
    category    TEXT        NOT NULL,
    description TEXT        NOT NULL,
    price_minor BIGINT      NOT NULL CHECK (price_minor > 0),
    rating      REAL        NOT NULL CHECK (rating >= 0 AND rating <= 5),
    popularity  BIGINT      NOT NULL CHECK (popularity >= 0),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX products_by_category ON products (category, popularity DESC);

-- Counters kept in step with every batch, checked by the database. Recovery does not trust
-- them (it recounts from orders) but compares, and the checks stop an oversell cold.
CREATE TABLE inventory (
    product_id BIGINT PRIMARY KEY REFERENCES products (id),
    initial    BIGINT NOT NULL CHECK (initial >= 0),
    reserved   BIGINT NOT NULL CHECK (reserved >= 0),
    sold       BIGINT NOT NULL CHECK (sold >= 0),
    "left"     BIGINT NOT NULL CHECK ("left" >= 0),
    CHECK (reserved + sold + "left" = initial)
);

CREATE TABLE flash_sales (
    id                   BIGINT      PRIMARY KEY CHECK (id > 0),
    product_id           BIGINT      NOT NULL REFERENCES products (id),
    sale_price_minor     BIGINT      NOT NULL CHECK (sale_price_minor > 0),
    original_price_minor BIGINT      NOT NULL CHECK (original_price_minor >= sale_price_minor),
    start_at             TIMESTAMPTZ NOT NULL,
    end_at               TIMESTAMPTZ CHECK (end_at IS NULL OR end_at > start_at),
    stock                BIGINT      NOT NULL CHECK (stock > 0),
    per_user_limit       INTEGER     NOT NULL CHECK (per_user_limit > 0),
    created_at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX flash_sales_by_product ON flash_sales (product_id, id DESC);

-- One row per (sale, user) where a per-user limit applies: units held (reserved or paid).
CREATE TABLE sale_purchases (
    sale_id        BIGINT  NOT NULL REFERENCES flash_sales (id),
    user_id        BIGINT  NOT NULL REFERENCES users (id),
    quantity       INTEGER NOT NULL CHECK (quantity >= 0),
    per_user_limit INTEGER NOT NULL,
    PRIMARY KEY (sale_id, user_id),
    CHECK (quantity <= per_user_limit)
);

CREATE TYPE order_status AS ENUM
    ('PENDING_PAYMENT', 'PAID', 'SHIPPED', 'DELIVERED', 'CANCELLED', 'EXPIRED');

CREATE TABLE orders (
    id              UUID         PRIMARY KEY,
    user_id         BIGINT       NOT NULL REFERENCES users (id),
    status          order_status NOT NULL,
    total_minor     BIGINT       NOT NULL CHECK (total_minor >= 0),
    idempotency_key TEXT         NOT NULL,
    created_at      TIMESTAMPTZ  NOT NULL,
    expires_at      TIMESTAMPTZ  NOT NULL,
    updated_at      TIMESTAMPTZ  NOT NULL
);
CREATE INDEX orders_pending ON orders (id) WHERE status = 'PENDING_PAYMENT';
CREATE INDEX orders_by_user ON orders (user_id, created_at DESC);

CREATE TABLE order_items (
    order_id         UUID    NOT NULL REFERENCES orders (id),
    line_no          INTEGER NOT NULL CHECK (line_no >= 0),
    product_id       BIGINT  NOT NULL REFERENCES products (id),
    sale_id          BIGINT  REFERENCES flash_sales (id),
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_minor BIGINT  NOT NULL CHECK (unit_price_minor > 0),
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_items_by_product ON order_items (product_id);
CREATE INDEX order_items_by_sale ON order_items (sale_id) WHERE sale_id IS NOT NULL;

CREATE TABLE payments (
    id             BIGSERIAL   PRIMARY KEY,
    order_id       UUID        NOT NULL REFERENCES orders (id),
    transaction_id TEXT        NOT NULL UNIQUE,
    status         TEXT        NOT NULL CHECK (status IN ('SUCCESS', 'FAILED')),
    amount_minor   BIGINT      NOT NULL CHECK (amount_minor >= 0),
    received_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX payments_by_order ON payments (order_id);

-- A retry with the same key finds the first order. Scope: what the key was used for
-- (`product:<id>` for Buy Now).
CREATE TABLE idempotency_keys (
    user_id    BIGINT      NOT NULL REFERENCES users (id),
    scope      TEXT        NOT NULL,
    key        TEXT        NOT NULL,
    order_id   UUID        NOT NULL REFERENCES orders (id),
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, scope, key)
);

CREATE TABLE stock_ledger (
    seq        BIGSERIAL   PRIMARY KEY,
    product_id BIGINT      NOT NULL REFERENCES products (id),
    order_id   UUID,
    kind       TEXT        NOT NULL CHECK (kind IN ('stock_set', 'sale_carve', 'reserve', 'confirm', 'release')),
    quantity   BIGINT      NOT NULL,
    at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX stock_ledger_by_product ON stock_ledger (product_id, seq);

-- Events waiting to be published (Kafka, RabbitMQ). Written in the same transaction as the
-- change they describe; a relay deletes a row once the broker acknowledged it.
CREATE TABLE outbox (
    seq          BIGSERIAL   PRIMARY KEY,
    topic        TEXT        NOT NULL,
    event_type   TEXT        NOT NULL,
    entity_key   TEXT        NOT NULL,
    payload      JSONB       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
