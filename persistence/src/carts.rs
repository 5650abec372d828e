//! Where shopping carts live: in Redis when it is configured (a cart is hot, small,
//! per-user data that other front ends read too), in the database otherwise.
//!
//! Either way a cart is a set of lines (product, quantity, when added, when last changed)
//! that is forgotten after `retention` without a change:
//! - in the store, each line untouched for that long is ignored and purged;
//! - in Redis, `{prefix}cart:{userId}` is a hash `productId -> "quantity:addedMs:updatedMs"`
//!   whose expiry is pushed back by every change, and stale lines are dropped on read.
//!
//! Beside the lines, when each cart last changed, for the abandoned-cart reminder: the
//! `cart_activity` table, or the sorted set `{prefix}carts:touched` (user by time). A
//! change moves the cart's time (re-arming its reminder), a checkout removes it, and the
//! scan reads the oldest first and claims each by removing it only if it has not moved:
//! one reminder per abandonment, whichever node scans, and a million carts cost the scan
//! only the ones that fell due.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use engine::{ProductId, UserId};
use redis::aio::ConnectionManager;
use sqlx::QueryBuilder;

use crate::database::{Database, Sql, dialects, execute};
use crate::error::StoreError;
use crate::redis_mirror::RedisSettings;
use crate::row::{StoredRow, int};

/// A line of a shopping cart. Carts hold no stock: checkout reserves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CartItem {
    pub product_id: ProductId,
    pub quantity: u32,
    pub added_at_ms: u64,
    pub updated_at_ms: u64,
}

/// Why lines leave a cart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CartChange {
    /// The customer changed the cart at this time: its reminder is re-armed from then.
    Edited { at_ms: u64 },
    /// The lines were ordered: the cart's reminder is called off until its next change.
    CheckedOut,
}

/// A cart that has not changed since `touched_at_ms` and was not reminded since.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UntouchedCart {
    pub user_id: UserId,
    pub touched_at_ms: u64,
}

/// Carts in the database (when Redis is not configured).
#[async_trait]
pub trait CartStore: Send + Sync + 'static {
    /// A user's cart lines touched at or after `since_ms`, oldest first; older lines are
    /// purged on the way.
    async fn cart(&self, user: UserId, since_ms: u64) -> Result<Vec<CartItem>, StoreError>;

    /// Sets a cart line (inserting it, or replacing its quantity); the cart changed at
    /// `item.updated_at_ms`.
    async fn put_cart_item(&self, user: UserId, item: CartItem) -> Result<(), StoreError>;

    /// Removes lines; returns how many existed.
    async fn remove_cart_items(
        &self,
        user: UserId,
        products: &[ProductId],
        change: CartChange,
    ) -> Result<u64, StoreError>;

    /// Carts unchanged since before `before_ms` and not reminded since, oldest first.
    async fn untouched_carts(
        &self,
        before_ms: u64,
        limit: u32,
    ) -> Result<Vec<UntouchedCart>, StoreError>;

    /// Takes an untouched cart's reminder: true once, and only while the cart has not
    /// changed since `cart.touched_at_ms`.
    async fn claim_untouched_cart(&self, cart: UntouchedCart) -> Result<bool, StoreError>;

    /// Gives a claim back (its reminder could not be written), unless the cart changed
    /// since: the next scan finds it again.
    async fn release_untouched_cart(&self, cart: UntouchedCart) -> Result<(), StoreError>;
}

#[derive(Clone)]
pub struct Carts {
    backend: Backend,
    retention: Duration,
}

#[derive(Clone)]
enum Backend {
    Database(Arc<dyn CartStore>),
    Redis {
        connection: ConnectionManager,
        key_prefix: Arc<str>,
    },
}

impl Carts {
    pub fn in_database(store: Arc<dyn CartStore>, retention: Duration) -> Self {
        Self {
            backend: Backend::Database(store),
            retention,
        }
    }

    /// Carts in Redis. Connecting is lazy: a Redis that is down fails cart requests (503),
    /// never the engine's start.
    pub fn in_redis(settings: &RedisSettings, retention: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(settings.url.as_str()).map_err(redis_error)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(1);
        let connection =
            ConnectionManager::new_lazy_with_config(client, config).map_err(redis_error)?;
        Ok(Self {
            backend: Backend::Redis {
                connection,
                key_prefix: settings.key_prefix.as_str().into(),
            },
            retention,
        })
    }

    pub fn is_in_redis(&self) -> bool {
        matches!(self.backend, Backend::Redis { .. })
    }

    fn since_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.retention.as_millis() as u64)
    }

    /// A user's live lines, oldest first.
    pub async fn lines(&self, user: UserId, now_ms: u64) -> Result<Vec<CartItem>, StoreError> {
        let since_ms = self.since_ms(now_ms);
        match &self.backend {
            Backend::Database(store) => store.cart(user, since_ms).await,
            Backend::Redis {
                connection,
                key_prefix,
            } => {
                let key = cart_key(key_prefix, user);
                let mut connection = connection.clone();
                let fields: Vec<(u64, String)> = redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(&mut connection)
                    .await
                    .map_err(redis_error)?;
                let mut items = Vec::with_capacity(fields.len());
                let mut stale = Vec::new();
                for (product, value) in fields {
                    let item = decode(ProductId(product), &value)?;
                    if item.updated_at_ms >= since_ms {
                        items.push(item);
                    } else {
                        stale.push(product);
                    }
                }
                if !stale.is_empty() {
                    let _: i64 = redis::cmd("HDEL")
                        .arg(&key)
                        .arg(&stale)
                        .query_async(&mut connection)
                        .await
                        .map_err(redis_error)?;
                }
                items.sort_by_key(|item| (item.added_at_ms, item.product_id));
                Ok(items)
            }
        }
    }

    /// Sets a line (inserting it, or replacing its quantity).
    pub async fn put(&self, user: UserId, item: CartItem) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Database(store) => store.put_cart_item(user, item).await,
            Backend::Redis {
                connection,
                key_prefix,
            } => {
                let key = cart_key(key_prefix, user);
                let value = format!(
                    "{}:{}:{}",
                    item.quantity, item.added_at_ms, item.updated_at_ms
                );
                let mut connection = connection.clone();
                redis::pipe()
                    .atomic()
                    .hset(&key, item.product_id.0, value)
                    .ignore()
                    .pexpire(&key, self.retention.as_millis() as i64)
                    .ignore()
                    .zadd(touched_key(key_prefix), user.0, item.updated_at_ms)
                    .ignore()
                    .query_async::<()>(&mut connection)
                    .await
                    .map_err(redis_error)
            }
        }
    }

    /// Removes lines; returns how many existed.
    pub async fn remove(
        &self,
        user: UserId,
        products: &[ProductId],
        change: CartChange,
    ) -> Result<u64, StoreError> {
        if products.is_empty() {
            return Ok(0);
        }
        match &self.backend {
            Backend::Database(store) => store.remove_cart_items(user, products, change).await,
            Backend::Redis {
                connection,
                key_prefix,
            } => {
                let fields: Vec<u64> = products.iter().map(|product| product.0).collect();
                let touched = touched_key(key_prefix);
                let mut pipe = redis::pipe();
                pipe.atomic().hdel(cart_key(key_prefix, user), fields);
                match change {
                    CartChange::Edited { at_ms } => pipe.zadd(touched, user.0, at_ms).ignore(),
                    CartChange::CheckedOut => pipe.zrem(touched, user.0).ignore(),
                };
                let mut connection = connection.clone();
                let (removed,): (u64,) = pipe
                    .query_async(&mut connection)
                    .await
                    .map_err(redis_error)?;
                Ok(removed)
            }
        }
    }

    /// Carts unchanged since before `before_ms` and not reminded since, oldest first.
    pub async fn untouched(
        &self,
        before_ms: u64,
        limit: u32,
    ) -> Result<Vec<UntouchedCart>, StoreError> {
        match &self.backend {
            Backend::Database(store) => store.untouched_carts(before_ms, limit).await,
            Backend::Redis {
                connection,
                key_prefix,
            } => {
                let mut connection = connection.clone();
                // Strictly before: `(` excludes the bound.
                let found: Vec<(u64, u64)> = redis::cmd("ZRANGEBYSCORE")
                    .arg(touched_key(key_prefix))
                    .arg("-inf")
                    .arg(format!("({before_ms}"))
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit)
                    .query_async(&mut connection)
                    .await
                    .map_err(redis_error)?;
                Ok(found
                    .into_iter()
                    .map(|(user, touched_at_ms)| UntouchedCart {
                        user_id: UserId(user),
                        touched_at_ms,
                    })
                    .collect())
            }
        }
    }

    /// Takes an untouched cart's reminder: true once, and only while the cart has not
    /// changed since `cart.touched_at_ms`.
    pub async fn claim_untouched(&self, cart: UntouchedCart) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Database(store) => store.claim_untouched_cart(cart).await,
            Backend::Redis {
                connection,
                key_prefix,
            } => {
                let mut connection = connection.clone();
                let claimed: i64 = CLAIM_IN_REDIS
                    .key(touched_key(key_prefix))
                    .arg(cart.user_id.0)
                    .arg(cart.touched_at_ms)
                    .invoke_async(&mut connection)
                    .await
                    .map_err(redis_error)?;
                Ok(claimed == 1)
            }
        }
    }

    /// Gives a claim back (its reminder could not be written), unless the cart changed
    /// since.
    pub async fn release_untouched(&self, cart: UntouchedCart) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Database(store) => store.release_untouched_cart(cart).await,
            Backend::Redis {
                connection,
                key_prefix,
            } => {
                let mut connection = connection.clone();
                redis::cmd("ZADD")
                    .arg(touched_key(key_prefix))
                    .arg("NX")
                    .arg(cart.touched_at_ms)
                    .arg(cart.user_id.0)
                    .query_async::<()>(&mut connection)
                    .await
                    .map_err(redis_error)
            }
        }
    }
}

/// Removes a user from the touched set only if their time is still the one the scan saw:
/// a change in between moved it, and the cart is not abandoned any more.
static CLAIM_IN_REDIS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local touched = redis.call('ZSCORE', KEYS[1], ARGV[1])
        if touched and tonumber(touched) == tonumber(ARGV[2]) then
            return redis.call('ZREM', KEYS[1], ARGV[1])
        end
        return 0
        ",
    )
});

const PURGE: Sql = Sql::both("DELETE FROM cart_items WHERE user_id = $1 AND updated_at_ms < $2");

const LINES: Sql = Sql::both(
    "SELECT product_id, quantity, added_at_ms, updated_at_ms FROM cart_items \
     WHERE user_id = $1 ORDER BY added_at_ms, product_id",
);

const PUT: Sql = Sql::both(
    "INSERT INTO cart_items (user_id, product_id, quantity, added_at_ms, updated_at_ms) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, product_id) \
     DO UPDATE SET quantity = excluded.quantity, updated_at_ms = excluded.updated_at_ms",
);

const TOUCH: Sql = Sql::both(
    "INSERT INTO cart_activity (user_id, touched_at_ms) VALUES ($1, $2) \
     ON CONFLICT (user_id) DO UPDATE SET touched_at_ms = excluded.touched_at_ms",
);

const FORGET: Sql = Sql::both("DELETE FROM cart_activity WHERE user_id = $1");

const UNTOUCHED: Sql = Sql::both(
    "SELECT user_id, touched_at_ms FROM cart_activity WHERE touched_at_ms < $1 \
     ORDER BY touched_at_ms, user_id LIMIT $2",
);

const CLAIM: Sql = Sql::both("DELETE FROM cart_activity WHERE user_id = $1 AND touched_at_ms = $2");

const RELEASE: Sql = Sql::both(
    "INSERT INTO cart_activity (user_id, touched_at_ms) VALUES ($1, $2) \
     ON CONFLICT (user_id) DO NOTHING",
);

#[async_trait]
impl CartStore for Database {
    async fn cart(&self, user: UserId, since_ms: u64) -> Result<Vec<CartItem>, StoreError> {
        dialects!(self.pool(), |pool, D| {
            sqlx::query(D::sql(&PURGE))
                .bind(int(user.0)?)
                .bind(int(since_ms)?)
                .execute(pool)
                .await?;
            sqlx::query(D::sql(&LINES))
                .bind(int(user.0)?)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(CartItem {
                        product_id: row.product_id("product_id")?,
                        quantity: row.units("quantity")?,
                        added_at_ms: row.uint("added_at_ms")?,
                        updated_at_ms: row.uint("updated_at_ms")?,
                    })
                })
                .collect()
        })
    }

    async fn put_cart_item(&self, user: UserId, item: CartItem) -> Result<(), StoreError> {
        let quantity = i64::from(
            i32::try_from(item.quantity)
                .map_err(|_| StoreError::Conflict("cart quantity too large".into()))?,
        );
        let (user, product) = (int(user.0)?, int(item.product_id.0)?);
        let (added, updated) = (int(item.added_at_ms)?, int(item.updated_at_ms)?);
        let mut tx = self.begin().await?;
        execute(&mut tx, &PUT, &[user, product, quantity, added, updated]).await?;
        execute(&mut tx, &TOUCH, &[user, updated]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_cart_items(
        &self,
        user: UserId,
        products: &[ProductId],
        change: CartChange,
    ) -> Result<u64, StoreError> {
        if products.is_empty() {
            return Ok(0);
        }
        let user = int(user.0)?;
        let ids = products
            .iter()
            .map(|product| int(product.0))
            .collect::<Result<Vec<i64>, _>>()?;
        let mut tx = self.begin().await?;
        let removed = dialects!(&mut tx, |tx, D| {
            let mut query = QueryBuilder::new("DELETE FROM cart_items WHERE user_id = ");
            query.push_bind(user).push(" AND product_id IN (");
            let mut list = query.separated(", ");
            for id in ids {
                list.push_bind(id);
            }
            query.push(")");
            query.build().execute(&mut **tx).await?.rows_affected()
        });
        match change {
            CartChange::Edited { at_ms } => execute(&mut tx, &TOUCH, &[user, int(at_ms)?]).await?,
            CartChange::CheckedOut => execute(&mut tx, &FORGET, &[user]).await?,
        };
        tx.commit().await?;
        Ok(removed)
    }

    async fn untouched_carts(
        &self,
        before_ms: u64,
        limit: u32,
    ) -> Result<Vec<UntouchedCart>, StoreError> {
        dialects!(self.pool(), |pool, D| {
            sqlx::query(D::sql(&UNTOUCHED))
                .bind(int(before_ms)?)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(UntouchedCart {
                        user_id: row.user_id("user_id")?,
                        touched_at_ms: row.uint("touched_at_ms")?,
                    })
                })
                .collect()
        })
    }

    async fn claim_untouched_cart(&self, cart: UntouchedCart) -> Result<bool, StoreError> {
        let params = [int(cart.user_id.0)?, int(cart.touched_at_ms)?];
        let mut tx = self.begin().await?;
        let claimed = execute(&mut tx, &CLAIM, &params).await? == 1;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn release_untouched_cart(&self, cart: UntouchedCart) -> Result<(), StoreError> {
        let params = [int(cart.user_id.0)?, int(cart.touched_at_ms)?];
        let mut tx = self.begin().await?;
        execute(&mut tx, &RELEASE, &params).await?;
        tx.commit().await?;
        Ok(())
    }
}

fn cart_key(prefix: &str, user: UserId) -> String {
    format!("{prefix}cart:{}", user.0)
}

fn touched_key(prefix: &str) -> String {
    format!("{prefix}carts:touched")
}

fn decode(product_id: ProductId, value: &str) -> Result<CartItem, StoreError> {
    let bad = || StoreError::Decode(format!("cart line of product {product_id}: {value:?}"));
    let mut parts = value.split(':');
    let mut next = || parts.next().ok_or_else(bad);
    let quantity = next()?.parse().map_err(|_| bad())?;
    let added_at_ms = next()?.parse().map_err(|_| bad())?;
    let updated_at_ms = next()?.parse().map_err(|_| bad())?;
    Ok(CartItem {
        product_id,
        quantity,
        added_at_ms,
        updated_at_ms,
    })
}

fn redis_error(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cart_lines_round_trip_through_their_redis_text() {
        let item = decode(ProductId(7), "3:100:250").expect("well formed");
        assert_eq!(
            item,
            CartItem {
                product_id: ProductId(7),
                quantity: 3,
                added_at_ms: 100,
                updated_at_ms: 250,
            }
        );
        assert!(decode(ProductId(7), "3:100").is_err());
        assert!(decode(ProductId(7), "x:1:2").is_err());
    }
}
