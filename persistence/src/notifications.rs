//! The record of messages sent to customers: what the notification jobs sent (with the
//! default sender, what they would have sent). A job delivered twice is recorded once, by
//! its dedup key. Records ride on the ledger's batches (`WriteOp::RecordNotifications`);
//! the reads are here. What the jobs send to providers (the payment requests) is logged
//! apart, packed per group commit (`provider_messages.rs`, `WriteOp::LogProviderMessages`).

use async_trait::async_trait;
use engine::{OrderId, UserId};

use crate::database::{Database, Sql, dialects};
use crate::error::StoreError;
use crate::ledger::OrderLedger;
use crate::row::{StoredRow, int};
use crate::write::WriteOp;

/// A message a notification job sent: to a customer (recorded in `notifications`), or to
/// a provider (logged in `provider_messages`).
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// The job and channel it came from: a job delivered twice is recorded once.
    pub dedup_key: String,
    pub user_id: UserId,
    pub order_id: Option<OrderId>,
    /// `order_confirmation`, `payment_success`, `review_request`, ...
    pub kind: String,
    /// `email`, `sms`, `payment_provider`...
    pub channel: String,
    /// JSON text: what the message says.
    pub body: String,
    pub sent_at_ms: u64,
}

#[async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    /// Records sent messages in one transaction; a `dedup_key` recorded before is skipped.
    async fn record_notifications(&self, notifications: &[Notification]) -> Result<(), StoreError>;

    /// A customer's messages, newest first.
    async fn notifications_for_user(
        &self,
        user: UserId,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError>;

    /// Logs messages sent to providers in one transaction, as one pack; not deduplicated
    /// (a job delivered twice was sent twice).
    async fn log_provider_messages(&self, messages: &[Notification]) -> Result<(), StoreError>;

    /// The newest `limit` messages sent to providers, newest first.
    async fn provider_messages(&self, limit: u32) -> Result<Vec<Notification>, StoreError>;
}

const FOR_USER: Sql = Sql::each(
    "SELECT dedup_key, user_id, order_id, kind, channel, body, sent_at_ms \
     FROM notifications WHERE user_id = $1 ORDER BY sent_at_ms DESC, dedup_key DESC LIMIT $2",
    "SELECT dedup_key, user_id, order_id, kind, channel, body, sent_at_ms \
     FROM notifications WHERE user_id = $1 ORDER BY sent_at_ms DESC, dedup_key DESC LIMIT $2",
);

#[async_trait]
impl NotificationStore for Database {
    async fn record_notifications(&self, notifications: &[Notification]) -> Result<(), StoreError> {
        // Through the ledger: the statement is part of its batch (`ledger/batch_statements.rs`).
        self.commit(&[WriteOp::RecordNotifications(notifications.to_vec())])
            .await
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

    async fn log_provider_messages(&self, messages: &[Notification]) -> Result<(), StoreError> {
        // Through the ledger too: the pack is part of its batch.
        self.commit(&[WriteOp::LogProviderMessages(messages.to_vec())])
            .await
    }

    async fn provider_messages(&self, limit: u32) -> Result<Vec<Notification>, StoreError> {
        self.newest_provider_messages(limit).await
    }
}
