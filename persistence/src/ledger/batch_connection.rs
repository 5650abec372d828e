//! The PostgreSQL connection the group committer's batches are written on, kept from one
//! batch to the next.
//!
//! Why not a connection from the pool for each batch: sqlx pings every connection given
//! back to its pool (`return_to_pool`, unconditionally), so each batch cost a second round
//! trip to the server, and the next batch went to whichever connection was idle by then:
//! the pool's backends took turns at the batch statement, none of them with its caches
//! warm. Measured (issue 14, `loadtests/cost.sh postgres 8 <connections>`, release builds
//! alternated in one sitting): at 64 connections 16.9K/16.1K orders/s before, 18.0K/16.8K
//! kept, the engine's CPU per order 36-39 against 33-36 µs and PostgreSQL's 31-32 against
//! 28-29; at 4 connections (two orders a batch) a commit took 702 µs before and 604 kept.
//!
//! The connection is given back, and a fresh one taken, when it has served
//! [`PostgresSettings::connection_lifetime`](crate::PostgresSettings) (a new connection
//! plans the batch statement again with today's table sizes) and after any error (its
//! state is then unknown; the pool's ping on return sorts a live one from a dead one).
//! A pool of one connection is shared by everything: nothing is kept out of it then.

use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};

use super::batch::Batch;
use crate::error::StoreError;

pub(crate) struct BatchConnection {
    pool: PgPool,
    lifetime: Duration,
    /// `None` between a failed batch and the next one. Taken out while a batch is written:
    /// a write whose future is dropped halfway drops the connection with it.
    kept: tokio::sync::Mutex<Option<Kept>>,
}

struct Kept {
    connection: PoolConnection<Postgres>,
    since: Instant,
}

impl BatchConnection {
    /// `None` for a pool of one connection, which must stay free for everyone else.
    pub(crate) fn new(pool: &PgPool, max_connections: u32, lifetime: Duration) -> Option<Self> {
        (max_connections > 1).then(|| Self {
            pool: pool.clone(),
            lifetime,
            kept: tokio::sync::Mutex::new(None),
        })
    }

    /// Writes `batch` as its own transaction (one statement) on the kept connection.
    pub(crate) async fn write(&self, batch: Batch) -> Result<(), StoreError> {
        let mut kept = self.kept.lock().await;
        let mut current = match kept.take() {
            Some(current) if current.since.elapsed() < self.lifetime => current,
            // An old one goes back to the pool here, which closes it (past its lifetime).
            _ => Kept {
                connection: self.pool.acquire().await?,
                since: Instant::now(),
            },
        };
        let written = batch.write_postgres(&mut *current.connection).await;
        // Not kept once the pool is closing: closing waits for it.
        if written.is_ok() && !self.pool.is_closed() {
            *kept = Some(current);
        }
        written
    }

    /// Gives the kept connection back to the pool: closing a pool waits for every
    /// connection out of it.
    pub(crate) async fn give_back(&self) {
        self.kept.lock().await.take();
    }
}
