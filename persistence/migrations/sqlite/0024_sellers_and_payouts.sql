-- Sellers and what they are paid (issue 17, part 5). A product may belong to a seller
-- (a user with role `seller`); a delivered order pays each seller of its lines one payout,
-- written in the delivery's transaction. The key (order, seller) makes a second payout of
-- the same order to the same seller impossible, whatever replays happen.
ALTER TABLE products ADD COLUMN seller_id INTEGER;
CREATE INDEX products_by_seller ON products (seller_id) WHERE seller_id IS NOT NULL;

CREATE TABLE payouts (
    order_id         TEXT    NOT NULL,
    seller_id        INTEGER NOT NULL,
    gross_minor      INTEGER NOT NULL CHECK (gross_minor >= 0),
    commission_minor INTEGER NOT NULL CHECK (commission_minor >= 0),
    net_minor        INTEGER NOT NULL CHECK (net_minor >= 0),
    status           TEXT    NOT NULL,
    released_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (order_id, seller_id)
);
-- A seller's statement, newest first.
CREATE INDEX payouts_by_seller ON payouts (seller_id, released_at_ms);
