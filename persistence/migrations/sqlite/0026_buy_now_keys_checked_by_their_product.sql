-- Buy Now's idempotency keys leave SQLite's unique index; checkout's stay in one.
--
-- Issue 14: the index on (user, scope, key) was the one B-tree a new order touches at a
-- random place (a user's keys sit wherever the user does), and SQLite's WAL logs whole
-- pages. While the index is small a group commit's orders share its leaves; as it grows,
-- each order dirties a leaf of its own: a 4 KiB WAL frame per order, and the checkpoint's
-- copy of it. Under Buy Now at 256 connections (`loadtests/timeline.sh embedded 20 256`)
-- the bytes written per order rose from 3.0 to 9.1 KB over 550K orders and orders/s fell
-- from 26-29K to 20-24K, p99 from 16-26 to 24-43 ms; with the index dropped, 2.6-2.8 KB
-- per order throughout, 27-32K orders/s, p99 13.5-22.7 ms. (PostgreSQL logs the index
-- tuple, not the page, and keeps its unique index.)
--
-- A Buy Now key is checked where it is answered: by its product's actor, the one writer
-- of its scope (`product:<id>`), which holds every key of the retention window in memory
-- and rebuilds them from these rows on a restart, refusing to start on two orders that
-- share one (`ProductStock::restore`). One engine per data directory is enforced by a
-- lock on the directory (`database.rs`). Checkout's keys are looked up in the store
-- before an order is placed, so they keep a unique index, partial and small.
DROP INDEX orders_by_idempotency_key;
CREATE UNIQUE INDEX orders_by_checkout_key
    ON orders (user_id, idempotency_key) WHERE idempotency_scope = 'checkout';
