//! The record of messages sent to customers: what the notification jobs sent (with the
//! default sender, what they would have sent). A job delivered twice is recorded once, by
//! its dedup key.

use async_trait::async_trait;
use engine::{OrderId, UserId};
use sqlx::QueryBuilder;

use crate::database::{Backend, Database, Sql, dialects};
use crate::error::StoreError;
use crate::row::{StoredRow, int};

/// A message to a customer.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// The job and channel it came from: a job delivered twice is recorded once.
    pub dedup_key: String,
    pub user_id: UserId,
    pub order_id: Option<OrderId>,
    /// `order_confirmation`, `payment_success`, `review_request`, ...
    pub kind: String,
    /// `email`, `sms`, ...
    pub channel: String,
    /// JSON text: what the message says.
    pub body: String,
    pub sent_at_ms: u64,
}

#[async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    /// Records sent messages in one transaction; a `dedup_key` recorded before is skipped.
    /// Returns how many were new.
    async fn record_notifications(&self, notifications: &[Notification])
    -> Result<u64, StoreError>;

    /// A customer's messages, newest first.
    async fn notifications_for_user(
        &self,
        user: UserId,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError>;
}

const FOR_USER: Sql = Sql::each(
    "SELECT dedup_key, user_id, order_id, kind, channel, body, sent_at_ms \
     FROM notifications WHERE user_id = $1 ORDER BY id DESC LIMIT $2",
    "SELECT dedup_key, user_id, order_id, kind, channel, body::text AS body, sent_at_ms \
     FROM notifications WHERE user_id = $1 ORDER BY id DESC LIMIT $2",
);

/// Rows per statement: seven parameters each, under SQLite's cap of 32,766.
const ROWS_PER_STATEMENT: usize = 4_096;

#[async_trait]
impl NotificationStore for Database {
    async fn record_notifications(
        &self,
        notifications: &[Notification],
    ) -> Result<u64, StoreError> {
        let rows = notifications
            .iter()
            .map(|notification| {
                Ok((
                    notification,
                    int(notification.user_id.0)?,
                    int(notification.sent_at_ms)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // PostgreSQL stores the body as jsonb, which text does not turn into by itself.
        let body_cast = match self.pool() {
            Backend::Postgres(_) => "::jsonb",
            Backend::Sqlite(_) => "",
        };
        let mut tx = self.begin().await?;
        let mut inserted = 0;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            inserted += dialects!(&mut tx, |tx, D| {
                let mut query = QueryBuilder::new(
                    "INSERT INTO notifications (dedup_key, user_id, order_id, kind, channel, body, sent_at_ms) ",
                );
                query.push_values(chunk, |mut row, (notification, user, sent)| {
                    row.push_bind(notification.dedup_key.as_str())
                        .push_bind(*user)
                        .push_bind(notification.order_id.map(D::order_id))
                        .push_bind(notification.kind.as_str())
                        .push_bind(notification.channel.as_str())
                        .push_bind(notification.body.as_str())
                        .push_unseparated(body_cast)
                        .push_bind(*sent);
                });
                query.push(" ON CONFLICT (dedup_key) DO NOTHING");
                query.build().execute(&mut **tx).await?.rows_affected()
            });
        }
        tx.commit().await?;
        Ok(inserted)
    }

    async fn notifications_for_user(
        &self,
        user: UserId,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        dialects!(self.pool(), |pool, D| {
            sqlx::query(D::sql(&FOR_USER))
                .bind(int(user.0)?)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(Notification {
                        dedup_key: row.text("dedup_key")?,
                        user_id: row.user_id("user_id")?,
                        order_id: row.opt_order_id("order_id")?,
                        kind: row.text("kind")?,
                        channel: row.text("channel")?,
                        body: row.text("body")?,
                        sent_at_ms: row.uint("sent_at_ms")?,
                    })
                })
                .collect()
        })
    }
}
