-- When each cart last changed, for the abandoned-cart scan: one row per user whose cart
-- changed since it was last reminded or checked out. Every change moves the row's time
-- (re-arming the reminder); the scan reads the oldest rows through the index (cheap with
-- a million carts) and claims each by deleting it, so a cart is reminded once per
-- abandonment whichever node scans.
CREATE TABLE cart_activity (
    user_id       INTEGER PRIMARY KEY,
    touched_at_ms INTEGER NOT NULL
);
CREATE INDEX cart_activity_by_time ON cart_activity (touched_at_ms);
