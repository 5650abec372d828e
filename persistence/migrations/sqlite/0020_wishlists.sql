-- Wishlists: the products a customer wants to hear about. Three tables, so that no
-- answer has to count a long range:
-- - wishlist_items: one row per user and product; the primary key serves "my list",
--   wishlist_items_by_product serves a sale's campaign (every wisher of a product, in
--   user id order, one keyset page at a time).
-- - wishlist_sizes: a user's item count, checked against the bound in the same statement
--   that grows it (the update's row lock serialises two adds of one user).
-- - wishlist_counts: a product's wisher count, shown on its page.
CREATE TABLE wishlist_items (
    user_id     INTEGER NOT NULL,
    product_id  INTEGER NOT NULL,
    added_at_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, product_id)
) WITHOUT ROWID;
CREATE INDEX wishlist_items_by_product ON wishlist_items (product_id, user_id);

CREATE TABLE wishlist_sizes (
    user_id INTEGER PRIMARY KEY,
    items   INTEGER NOT NULL CHECK (items >= 0)
);

CREATE TABLE wishlist_counts (
    product_id INTEGER PRIMARY KEY,
    wishers    INTEGER NOT NULL CHECK (wishers >= 0)
);
