//! How a [`Batch`] is written, with a fixed number of statements whatever its size:
//! - PostgreSQL: one statement for everything, data-modifying CTEs over `UNNEST($arrays)`,
//!   so 1,000 orders cost one round trip. The last SELECT is a guard that fails the whole
//!   statement if a lease it carries is no longer current (`shard_leases.rs`), if a status
//!   change met an order in another status, or if a product or a sale had no row to count
//!   on. The schema re-checks what the engine promises (non-negative, balanced inventory; a
//!   sale's pool; unique keys): a bug above can fail a batch, never oversell.
//! - SQLite: one multi-row statement per table, all in one query (sqlx hands each query to
//!   SQLite's worker thread, so a statement per row would cost a channel round trip per
//!   row); a batch of orders alone also carries its `BEGIN IMMEDIATE` and `COMMIT`. The
//!   tables that take a row per order get statements padded to a few sizes, which SQLite's
//!   statement cache keeps prepared.

use sqlx::{QueryBuilder, Sqlite};

use super::batch::Batch;
use crate::database::ms_to_ts;
use crate::error::StoreError;
use crate::row::int;
use crate::shard_leases::{leases_need_postgres, shard_number};

/// The whole batch in one statement, so one round trip: data-modifying CTEs run in one
/// implicit transaction. The last SELECT is the guard: a cast error naming the counts
/// fails the statement, and with it every write above. A cast is used, not `1/0`, because
/// PostgreSQL may fold a constant division at plan time.
///
/// Every part is in every batch's statement, the ones a batch has no rows for too: a
/// statement shaped to each batch (only the CTEs it needs, a few texts each prepared once)
/// was measured and bought nothing (issue 14, `loadtests/cost.sh postgres 10 64`, two
/// alternated pairs: 16.1-16.7K orders/s against 17.2-18.0K, PostgreSQL's CPU per order
/// 29-30 µs against 28-29): a part over empty arrays costs it next to nothing.
const POSTGRES_BATCH: &str = concat!(
    // The shard leases the batch commits under, locked until it ends: a node taking one
    // of these shards over waits for this batch (`shard_leases.rs`).
    "WITH fences AS (",
    "SELECT 1 FROM shard_leases l JOIN UNNEST($47::int4[], $48::text[], $49::int8[]) AS f(shard, node, epoch) ",
    "ON l.shard = f.shard AND l.owner_node = f.node AND l.epoch = f.epoch FOR SHARE OF l), ",
    "new_orders AS (",
    "INSERT INTO orders (id, user_id, status, total_minor, idempotency_scope, idempotency_key, created_at, expires_at, updated_at) ",
    "SELECT o.id, o.user_id, o.status::order_status, o.total, o.scope, o.key, ",
    ms_to_ts!("o.created"),
    ", ",
    ms_to_ts!("o.expires"),
    ", ",
    ms_to_ts!("o.created"),
    " FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::int8[], $14::text[], $5::text[], $6::int8[], $7::int8[]) ",
    "AS o(id, user_id, status, total, scope, key, created, expires)), ",
    "new_items AS (",
    "INSERT INTO order_items (order_id, line_no, product_id, sale_id, quantity, unit_price_minor) ",
    "SELECT * FROM UNNEST($8::uuid[], $9::int4[], $10::int8[], $11::int8[], $12::int4[], $13::int8[])), ",
    // One row per sale that moved, checked against its pool (`held <= stock`).
    "pools AS (",
    "UPDATE flash_sales SET held = flash_sales.held + p.delta ",
    "FROM UNNEST($15::int8[], $16::int8[]) AS p(sale_id, delta) ",
    "WHERE flash_sales.id = p.sale_id RETURNING 1), ",
    // A replayed webhook carries a transaction already recorded: nothing to add.
    "new_payments AS (",
    "INSERT INTO payments (order_id, transaction_id, status, amount_minor) ",
    "SELECT * FROM UNNEST($33::uuid[], $34::text[], $35::text[], $36::int8[]) ",
    "ON CONFLICT (transaction_id) DO NOTHING), ",
    // The batch's events, as one pack (`outbox.rs`), if it has any.
    "new_events AS (",
    "INSERT INTO outbox (events, event_count) SELECT $37::text, $38::int4 WHERE $38::int4 > 0), ",
    // Relayed events leave the outbox; the default sender's messages are recorded once.
    "forgotten AS (DELETE FROM outbox WHERE seq = ANY($39::int8[])), ",
    "noted AS (",
    "INSERT INTO notifications (dedup_key, user_id, order_id, kind, channel, body, sent_at_ms) ",
    "SELECT n.d, n.u, n.o, n.k, n.c, n.b, n.s ",
    "FROM UNNEST($40::text[], $41::int8[], $42::uuid[], $43::text[], $44::text[], $45::text[], $46::int8[]) ",
    "AS n(d, u, o, k, c, b, s) ON CONFLICT (dedup_key) DO NOTHING), ",
    // Messages to providers, as one pack (`provider_messages.rs`), if the batch has any.
    "logged AS (",
    "INSERT INTO provider_messages (messages, message_count, logged_at_ms) ",
    "SELECT $52::text, $53::int4, $54::int8 WHERE $53::int4 > 0), ",
    "changed AS (",
    "UPDATE orders SET status = c.to_status::order_status, updated_at = ",
    ms_to_ts!("c.at"),
    " FROM UNNEST($18::uuid[], $19::text[], $20::text[], $21::int8[]) AS c(id, from_status, to_status, at)",
    " WHERE orders.id = c.id AND orders.status = c.from_status::order_status RETURNING 1), ",
    "stock AS (",
    r#"UPDATE inventory SET reserved = inventory.reserved + d.reserved, sold = inventory.sold + d.sold, "left" = inventory."left" + d.shelf "#,
    "FROM UNNEST($22::int8[], $23::int8[], $24::int8[], $25::int8[]) AS d(product_id, reserved, sold, shelf) ",
    "WHERE inventory.product_id = d.product_id RETURNING 1), ",
    "ledger AS (",
    "INSERT INTO stock_ledger (product_id, order_count, kind, quantity, at) ",
    "SELECT l.product_id, l.order_count, l.kind, l.quantity, ",
    ms_to_ts!("l.at"),
    " FROM UNNEST($26::int8[], $27::int4[], $28::text[], $29::int8[], $30::int8[]) AS l(product_id, order_count, kind, quantity, at)) ",
    "SELECT CASE WHEN (SELECT count(*) FROM fences) <> $50 THEN ",
    "('shard lease lost: ' || (SELECT count(*) FROM fences) || ' of ' || $50 || ' leases are current')::int ",
    // Read after the leases are locked (a CASE tries its branches in order), so a node
    // that saw the deadline pass while holding those leases never sees this batch commit.
    "WHEN $51::int8 IS NOT NULL AND clock_timestamp() >= to_timestamp($51::int8 / 1000.0) THEN ",
    "('hold deadline passed at ' || $51::int8)::int ",
    "WHEN (SELECT count(*) FROM changed) = $31 AND (SELECT count(*) FROM stock) = $32 ",
    "AND (SELECT count(*) FROM pools) = $17 THEN 0 ",
    "ELSE ('batch guard failed: ' || (SELECT count(*) FROM changed) || ' of ' || $31 || ' status changes, ' ",
    "|| (SELECT count(*) FROM stock) || ' of ' || $32 || ' inventory rows, ' ",
    "|| (SELECT count(*) FROM pools) || ' of ' || $17 || ' sales')::int END"
);

impl Batch {
    pub(super) async fn write_postgres<'c, E>(self, executor: E) -> Result<(), StoreError>
    where
        E: sqlx::Executor<'c, Database = sqlx::Postgres>,
    {
        let (mut sales, mut sale_deltas) = (Vec::new(), Vec::new());
        for (sale, delta) in self.sale_held {
            if delta != 0 {
                sales.push(sale);
                sale_deltas.push(delta);
            }
        }
        let expected_sales = sales.len() as i64;
        let mut products = Vec::with_capacity(self.inventory.len());
        let (mut reserved, mut sold, mut shelf) = (Vec::new(), Vec::new(), Vec::new());
        for (product, delta) in &self.inventory {
            products.push(*product);
            reserved.push(delta.0);
            sold.push(delta.1);
            shelf.push(delta.2);
        }
        let (mut ledger_products, mut ledger_orders, mut ledger_kinds) =
            (Vec::new(), Vec::new(), Vec::new());
        let (mut ledger_quantities, mut ledger_at) = (Vec::new(), Vec::new());
        for ((product, kind), (quantity, orders, at)) in &self.ledger {
            ledger_products.push(*product);
            ledger_kinds.push(*kind);
            ledger_quantities.push(*quantity);
            ledger_orders.push(*orders);
            ledger_at.push(*at);
        }
        let (mut fence_shards, mut fence_nodes, mut fence_epochs) =
            (Vec::new(), Vec::new(), Vec::new());
        for lease in &self.fences {
            fence_shards.push(shard_number(lease.shard)?);
            fence_nodes.push(lease.owner_node.as_str());
            fence_epochs.push(int(lease.epoch)?);
        }
        let expected_fences = fence_shards.len() as i64;
        let hold_until = self.hold_until.map(int).transpose()?;
        let expected_changes = self.change_ids.len() as i64;
        let expected_products = products.len() as i64;
        sqlx::query(POSTGRES_BATCH)
            .bind(&self.order_ids)
            .bind(&self.order_users)
            .bind(&self.order_statuses)
            .bind(&self.order_totals)
            .bind(&self.order_keys)
            .bind(&self.order_created)
            .bind(&self.order_expires)
            .bind(&self.item_orders)
            .bind(&self.item_lines)
            .bind(&self.item_products)
            .bind(&self.item_sales)
            .bind(&self.item_quantities)
            .bind(&self.item_prices)
            .bind(&self.key_scopes)
            .bind(&sales)
            .bind(&sale_deltas)
            .bind(expected_sales)
            .bind(&self.change_ids)
            .bind(&self.change_from)
            .bind(&self.change_to)
            .bind(&self.change_at)
            .bind(&products)
            .bind(&reserved)
            .bind(&sold)
            .bind(&shelf)
            .bind(&ledger_products)
            .bind(&ledger_orders)
            .bind(&ledger_kinds)
            .bind(&ledger_quantities)
            .bind(&ledger_at)
            .bind(expected_changes)
            .bind(expected_products)
            .bind(&self.payment_orders)
            .bind(&self.payment_transactions)
            .bind(&self.payment_statuses)
            .bind(&self.payment_amounts)
            .bind(&self.events)
            .bind(self.event_count)
            .bind(&self.forgotten_events)
            .bind(&self.notification_keys)
            .bind(&self.notification_users)
            .bind(&self.notification_orders)
            .bind(&self.notification_kinds)
            .bind(&self.notification_channels)
            .bind(&self.notification_bodies)
            .bind(&self.notification_sent)
            .bind(&fence_shards)
            .bind(&fence_nodes)
            .bind(&fence_epochs)
            .bind(expected_fences)
            .bind(hold_until)
            .bind(&self.provider_messages)
            .bind(self.provider_message_count)
            .bind(self.provider_messages_at)
            .execute(executor)
            .await
            .map_err(guard_error)?;
        Ok(())
    }

    pub(super) async fn write_sqlite(
        self,
        tx: &mut sqlx::Transaction<'_, Sqlite>,
    ) -> Result<(), StoreError> {
        if !self.fences.is_empty() || self.hold_until.is_some() {
            return Err(leases_need_postgres());
        }
        // First, alone: its guard needs the count of the rows it changed.
        self.set_statuses_sqlite(tx).await?;
        let mut statements = Statements::default();
        self.push_sqlite(&mut statements);
        statements.execute(tx).await
    }

    /// The batch as its own transaction, `BEGIN IMMEDIATE` to `COMMIT` in one query: one
    /// round trip to SQLite's worker thread instead of three (begin, writes, commit), each
    /// a wake-up of a thread that shares the cores with the requests. A statement that
    /// fails leaves the transaction open: it is rolled back before the error is returned.
    pub(super) async fn write_sqlite_alone(
        self,
        pool: &sqlx::SqlitePool,
    ) -> Result<(), StoreError> {
        assert!(
            self.change_ids.is_empty(),
            "status changes are checked on their own"
        );
        if !self.fences.is_empty() || self.hold_until.is_some() {
            return Err(leases_need_postgres());
        }
        let mut statements = Statements::default();
        statements.next().push("BEGIN IMMEDIATE");
        self.push_sqlite(&mut statements);
        statements.next().push("COMMIT");
        let mut connection = pool.acquire().await?;
        let written = statements.execute(&mut connection).await;
        if written.is_err() {
            // Nothing to roll back if the failure was BEGIN's or a lost connection's:
            // SQLite then says so, and the batch's own error is the one to report.
            if let Err(error) = sqlx::query("ROLLBACK").execute(&mut *connection).await {
                tracing::debug!(%error, "rollback after a failed batch");
            }
        }
        written
    }

    /// Every statement of the batch but the status changes, in `statements`.
    fn push_sqlite(&self, statements: &mut Statements) {
        let orders = self.order_ids.len();
        statements.insert_padded(
            "INSERT INTO orders (id, user_id, status, total_minor, idempotency_scope, \
             idempotency_key, created_at_ms, expires_at_ms, updated_at_ms) ",
            orders,
            9,
            |mut row, i| {
                row.push_bind(self.order_ids[i].to_string())
                    .push_bind(self.order_users[i])
                    .push_bind(self.order_statuses[i])
                    .push_bind(self.order_totals[i])
                    .push_bind(self.key_scopes[i].clone())
                    .push_bind(self.order_keys[i].clone())
                    .push_bind(self.order_created[i])
                    .push_bind(self.order_expires[i])
                    .push_bind(self.order_created[i]);
            },
        );
        statements.insert_padded(
            "INSERT INTO order_items (order_id, line_no, product_id, sale_id, quantity, \
             unit_price_minor) ",
            self.item_orders.len(),
            6,
            |mut row, i| {
                row.push_bind(self.item_orders[i].to_string())
                    .push_bind(self.item_lines[i])
                    .push_bind(self.item_products[i])
                    .push_bind(self.item_sales[i])
                    .push_bind(self.item_quantities[i])
                    .push_bind(self.item_prices[i]);
            },
        );
        // A replayed webhook carries a transaction already recorded: nothing to add.
        statements.insert(
            "INSERT INTO payments (order_id, transaction_id, status, amount_minor) ",
            self.payment_orders.len(),
            4,
            |mut row, i| {
                row.push_bind(self.payment_orders[i].to_string())
                    .push_bind(self.payment_transactions[i].clone())
                    .push_bind(self.payment_statuses[i])
                    .push_bind(self.payment_amounts[i]);
            },
            " ON CONFLICT (transaction_id) DO NOTHING",
        );
        statements.insert(
            "INSERT INTO outbox (events, event_count) ",
            usize::from(self.event_count > 0),
            2,
            |mut row, _| {
                row.push_bind(self.events.clone())
                    .push_bind(self.event_count);
            },
            "",
        );
        statements.delete_outbox(&self.forgotten_events);
        statements.insert(
            "INSERT INTO notifications (dedup_key, user_id, order_id, kind, channel, body, sent_at_ms) ",
            self.notification_keys.len(),
            7,
            |mut row, i| {
                row.push_bind(self.notification_keys[i].clone())
                    .push_bind(self.notification_users[i])
                    .push_bind(self.notification_orders[i].map(|id| id.to_string()))
                    .push_bind(self.notification_kinds[i].clone())
                    .push_bind(self.notification_channels[i].clone())
                    .push_bind(self.notification_bodies[i].clone())
                    .push_bind(self.notification_sent[i]);
            },
            " ON CONFLICT (dedup_key) DO NOTHING",
        );
        statements.insert(
            "INSERT INTO provider_messages (messages, message_count, logged_at_ms) ",
            usize::from(self.provider_message_count > 0),
            3,
            |mut row, _| {
                row.push_bind(self.provider_messages.clone())
                    .push_bind(self.provider_message_count)
                    .push_bind(self.provider_messages_at);
            },
            "",
        );
        let ledger: Vec<_> = self.ledger.iter().collect();
        statements.insert(
            "INSERT INTO stock_ledger (product_id, order_count, kind, quantity, at_ms) ",
            ledger.len(),
            5,
            |mut row, i| {
                let ((product, kind), (quantity, orders, at)) = ledger[i];
                row.push_bind(*product)
                    .push_bind(*orders)
                    .push_bind(*kind)
                    .push_bind(*quantity)
                    .push_bind(*at);
            },
            "",
        );
    }

    /// Every status change in one statement; refused as a whole if any order was not in
    /// the status the change came from (someone else moved it: a bug upstream).
    async fn set_statuses_sqlite(
        &self,
        tx: &mut sqlx::Transaction<'_, Sqlite>,
    ) -> Result<(), StoreError> {
        let changes = self.change_ids.len();
        if changes == 0 {
            return Ok(());
        }
        let mut updated = 0;
        for chunk in chunks(changes, 4) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "UPDATE orders SET status = c.column3, updated_at_ms = c.column4 FROM (",
            );
            query.push_values(chunk, |mut row, i| {
                row.push_bind(self.change_ids[i].to_string())
                    .push_bind(self.change_from[i])
                    .push_bind(self.change_to[i])
                    .push_bind(self.change_at[i]);
            });
            query.push(") AS c WHERE orders.id = c.column1 AND orders.status = c.column2");
            updated += query.build().execute(&mut **tx).await?.rows_affected();
        }
        if updated != changes as u64 {
            return Err(StoreError::Conflict(format!(
                "batch guard failed: {updated} of {changes} status changes"
            )));
        }
        Ok(())
    }
}

/// SQLite's default cap on bound parameters in one statement.
pub(crate) const SQLITE_PARAMETERS_MAX: usize = 32_766;

/// Row indices `0..rows` in chunks that keep a statement under SQLite's parameter cap.
pub(crate) fn chunks(rows: usize, columns: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let size = SQLITE_PARAMETERS_MAX / columns;
    (0..rows)
        .step_by(size)
        .map(move |start| start..(start + size).min(rows))
}

/// A batch's statements in one query: SQLite runs them one after another, and sqlx hands
/// the whole text to SQLite's worker thread at once, one round trip instead of one per
/// table (each a wake-up of that thread, which shares the cores with everything else).
#[derive(Default)]
struct Statements {
    query: Option<QueryBuilder<Sqlite>>,
}

impl Statements {
    fn next(&mut self) -> &mut QueryBuilder<Sqlite> {
        let separate = self.query.is_some();
        let query = self.query.get_or_insert_with(|| QueryBuilder::new(""));
        if separate {
            query.push("; ");
        }
        query
    }

    /// `insert` then `rows` rows of `columns` values each, then `tail`: a statement per
    /// chunk of rows that fits SQLite's parameter cap.
    fn insert(
        &mut self,
        insert: &'static str,
        rows: usize,
        columns: usize,
        mut push: impl FnMut(sqlx::query_builder::Separated<'_, Sqlite, &'static str>, usize),
        tail: &'static str,
    ) {
        for chunk in chunks(rows, columns) {
            let query = self.next();
            query.push(insert);
            query.push_values(chunk, &mut push);
            query.push(tail);
        }
    }

    /// As [`Statements::insert`], for the tables that take a row per order: the rows go
    /// through `VALUES` padded with rows of NULLs (skipped by a `WHERE`) up to the next
    /// power of two, so a statement's text depends on a handful of sizes, not on each
    /// batch's size. The whole query's text (the cache's key) also holds the batch's other
    /// statements, but under Buy Now those take one row or a few, so it repeats from batch
    /// to batch and SQLite's statement cache keeps it prepared. Parsing a fresh multi-row
    /// insert for every batch was 4.4% of the engine's CPU under Buy Now at 256
    /// connections; with the padding the parser left the profile
    /// (`loadtests/profile.sh embedded 12 256`, DWARF stacks).
    fn insert_padded(
        &mut self,
        insert: &'static str,
        rows: usize,
        columns: usize,
        mut push: impl FnMut(sqlx::query_builder::Separated<'_, Sqlite, &'static str>, usize),
    ) {
        let chunk_size = SQLITE_PARAMETERS_MAX / columns;
        for chunk in chunks(rows, columns) {
            let padded = chunk.len().next_power_of_two().min(chunk_size);
            let query = self.next();
            query.push(insert);
            query.push("SELECT * FROM (");
            query.push_values(0..padded, |mut row, n| {
                if n < chunk.len() {
                    push(row, chunk.start + n);
                } else {
                    for _ in 0..columns {
                        row.push_bind(None::<i64>);
                    }
                }
            });
            query.push(") WHERE column1 IS NOT NULL");
        }
    }

    /// Relayed events leave the outbox.
    fn delete_outbox(&mut self, seqs: &[i64]) {
        for chunk in seqs.chunks(SQLITE_PARAMETERS_MAX) {
            let query = self.next();
            query.push("DELETE FROM outbox WHERE seq IN (");
            let mut list = query.separated(", ");
            for seq in chunk {
                list.push_bind(*seq);
            }
            query.push(")");
        }
    }

    async fn execute(self, connection: &mut sqlx::SqliteConnection) -> Result<(), StoreError> {
        if let Some(mut query) = self.query {
            query.build().execute(connection).await?;
        }
        Ok(())
    }
}

/// The guard's cast error is a conflict (a bug upstream), not a database failure.
fn guard_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(database) if database.message().contains("shard lease lost") => {
            StoreError::Fenced(database.message().to_owned())
        }
        sqlx::Error::Database(database) if database.message().contains("hold deadline passed") => {
            StoreError::HoldExpired(database.message().to_owned())
        }
        sqlx::Error::Database(database) if database.message().contains("batch guard failed") => {
            StoreError::Conflict(database.message().to_owned())
        }
        _ => StoreError::Database(error),
    }
}
