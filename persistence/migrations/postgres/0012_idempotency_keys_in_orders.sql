-- An order's idempotency key lives in the order: a unique index on (user, scope, key)
-- instead of a table of its own. The order row held the key already; the second table
-- cost every new order one more row (heap tuple and WAL record) beside its index entry.
-- An order without a key row (none is written that way) gets a scope of its own, so
-- the index holds. Keys and scopes compare byte by byte (COLLATE "C"): they are opaque
-- tokens, and a language collation would make every index comparison a strcoll call.
ALTER TABLE orders ALTER COLUMN idempotency_key TYPE TEXT COLLATE "C";
ALTER TABLE orders ADD COLUMN idempotency_scope TEXT COLLATE "C";
UPDATE orders SET idempotency_scope = k.scope
    FROM idempotency_keys k WHERE k.order_id = orders.id;
UPDATE orders SET idempotency_scope = 'unscoped:' || id WHERE idempotency_scope IS NULL;
ALTER TABLE orders ALTER COLUMN idempotency_scope SET NOT NULL;
CREATE UNIQUE INDEX orders_by_idempotency_key
    ON orders (user_id, idempotency_scope, idempotency_key);
DROP TABLE idempotency_keys;
