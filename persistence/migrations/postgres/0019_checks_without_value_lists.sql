-- SQLite's order status and ledger kind checks became comparisons (its 0019 says why).
-- PostgreSQL holds an order's status as an enum type and checks a list of values against
-- an array, with no table built per statement: nothing to change here. This file keeps
-- the two dialects' migrations in step (migrations/README.md).
SELECT 1;
