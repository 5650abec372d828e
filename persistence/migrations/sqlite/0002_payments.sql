-- Payments as their provider's webhook reported them; a transaction is recorded once.
CREATE TABLE payments (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id       TEXT    NOT NULL REFERENCES orders (id),
    transaction_id TEXT    NOT NULL UNIQUE,
    status         TEXT    NOT NULL CHECK (status IN ('SUCCESS', 'FAILED')),
    amount_minor   INTEGER NOT NULL CHECK (amount_minor >= 0)
);
CREATE INDEX payments_by_order ON payments (order_id);
