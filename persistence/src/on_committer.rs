//! The workflow's stores with their writes on the group commit: the relay's deletes and the
//! default sender's records join the orders' batches instead of making transactions of
//! their own (`write.rs` says why). Reads go straight to the database.

use std::sync::Arc;

use async_trait::async_trait;
use engine::UserId;

use crate::error::StoreError;
use crate::event::OutboxRow;
use crate::group_commit::GroupCommitter;
use crate::notifications::{Notification, NotificationStore};
use crate::outbox::Outbox;
use crate::recommendations::{NeighbourList, RecommendationStore};
use crate::write::WriteOp;

pub struct OutboxOnCommitter {
    reads: Arc<dyn Outbox>,
    committer: GroupCommitter,
}

impl OutboxOnCommitter {
    pub fn new(reads: Arc<dyn Outbox>, committer: GroupCommitter) -> Self {
        Self { reads, committer }
    }
}

#[async_trait]
impl Outbox for OutboxOnCommitter {
    async fn oldest_events(&self, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        self.reads.oldest_events(limit).await
    }

    async fn delete_events(&self, seqs: &[i64]) -> Result<(), StoreError> {
        self.committer
            .write(vec![WriteOp::ForgetEvents(seqs.to_vec())])
            .await
    }

    async fn pending_events(&self) -> Result<u64, StoreError> {
        self.reads.pending_events().await
    }
}

pub struct NotificationsOnCommitter {
    reads: Arc<dyn NotificationStore>,
    committer: GroupCommitter,
}

impl NotificationsOnCommitter {
    pub fn new(reads: Arc<dyn NotificationStore>, committer: GroupCommitter) -> Self {
        Self { reads, committer }
    }
}

#[async_trait]
impl NotificationStore for NotificationsOnCommitter {
    async fn record_notifications(&self, notifications: &[Notification]) -> Result<(), StoreError> {
        self.committer
            .write(vec![WriteOp::RecordNotifications(notifications.to_vec())])
            .await
    }

    async fn notifications_for_user(
        &self,
        user: UserId,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        self.reads.notifications_for_user(user, limit).await
    }

    async fn log_provider_messages(&self, messages: &[Notification]) -> Result<(), StoreError> {
        self.committer
            .write(vec![WriteOp::LogProviderMessages(messages.to_vec())])
            .await
    }

    async fn provider_messages(&self, limit: u32) -> Result<Vec<Notification>, StoreError> {
        self.reads.provider_messages(limit).await
    }
}

pub struct RecommendationsOnCommitter {
    reads: Arc<dyn RecommendationStore>,
    committer: GroupCommitter,
}

impl RecommendationsOnCommitter {
    pub fn new(reads: Arc<dyn RecommendationStore>, committer: GroupCommitter) -> Self {
        Self { reads, committer }
    }
}

#[async_trait]
impl RecommendationStore for RecommendationsOnCommitter {
    async fn neighbour_lists(&self, node: &str) -> Result<Vec<NeighbourList>, StoreError> {
        self.reads.neighbour_lists(node).await
    }

    async fn save_neighbour_lists(
        &self,
        node: &str,
        lists: &[NeighbourList],
    ) -> Result<(), StoreError> {
        self.committer
            .write(vec![WriteOp::SaveNeighbours {
                node: node.to_owned(),
                lists: lists.to_vec(),
            }])
            .await
    }
}
