//! Where the runner hands a page of campaign messages.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lapin::types::FieldTable;

use crate::WorkflowError;
use crate::campaigns::messages::CampaignMessages;
use crate::jobs::{Job, backoff, count_job};
use crate::rabbit::Rabbit;

#[async_trait]
pub trait CampaignQueue: Send + Sync + 'static {
    /// Takes a page of jobs; returns once they can no longer be lost (the runner then
    /// moves its cursor past them).
    async fn queue_page(&self, jobs: Vec<Job>) -> Result<(), WorkflowError>;
}

/// RabbitMQ: the page is published to the `campaigns` exchange, every message
/// persistent; it counts as queued once the broker confirmed all of it. Retries and the
/// dead-letter queue are the workers' (`rabbit.rs`).
pub struct RabbitCampaignQueue {
    rabbit: Rabbit,
}

impl RabbitCampaignQueue {
    pub fn new(rabbit: Rabbit) -> Self {
        Self { rabbit }
    }
}

#[async_trait]
impl CampaignQueue for RabbitCampaignQueue {
    async fn queue_page(&self, jobs: Vec<Job>) -> Result<(), WorkflowError> {
        let exchange = self.rabbit.names().campaigns.clone();
        // Published back to back, confirmed together: a page costs one round trip, not
        // one per message.
        let mut confirms = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let payload = serde_json::to_vec(job)
                .map_err(|error| WorkflowError::Failed(error.to_string()))?;
            confirms.push(
                self.rabbit
                    .send(&exchange, "", &payload, FieldTable::default())
                    .await?,
            );
        }
        for confirm in confirms {
            confirm.await?;
        }
        Ok(())
    }
}

/// In process: the page is sent before it counts, `concurrency` messages at a time, each
/// with `attempts` tries and backoff; a restart sends the page again and the delivery
/// record skips what went out.
pub struct LocalCampaignQueue {
    messages: Arc<CampaignMessages>,
    concurrency: usize,
    attempts: u32,
    backoff: Duration,
}

impl LocalCampaignQueue {
    pub fn new(
        messages: Arc<CampaignMessages>,
        concurrency: usize,
        attempts: u32,
        backoff: Duration,
    ) -> Self {
        Self {
            messages,
            concurrency: concurrency.max(1),
            attempts: attempts.max(1),
            backoff,
        }
    }

    async fn send(&self, channel: &str, job: &Job) -> Result<(), WorkflowError> {
        let queue = format!("campaigns.{channel}");
        for attempt in 1..=self.attempts {
            match self.messages.deliver(channel, job).await {
                Ok(()) => {
                    count_job(queue.clone(), "done");
                    return Ok(());
                }
                Err(error) if attempt < self.attempts => {
                    count_job(queue.clone(), "retried");
                    tracing::info!(job = %job.id, %channel, attempt, %error, "campaign message retried later");
                    tokio::time::sleep(backoff(self.backoff, attempt)).await;
                }
                Err(error) => {
                    count_job(queue.clone(), "failed");
                    tracing::warn!(job = %job.id, %channel, %error, "campaign message given up");
                }
            }
        }
        self.messages.give_up(channel, job).await
    }
}

#[async_trait]
impl CampaignQueue for LocalCampaignQueue {
    async fn queue_page(&self, jobs: Vec<Job>) -> Result<(), WorkflowError> {
        // Every message is tried even if one could not be recorded; the page then fails
        // and runs again (what was recorded is skipped).
        let mut outcome = Ok(());
        let mut sending = FuturesUnordered::new();
        for job in &jobs {
            for channel in &job.channels {
                if sending.len() >= self.concurrency
                    && let Some(Err(error)) = sending.next().await
                {
                    outcome = Err(error);
                }
                sending.push(self.send(channel, job));
            }
        }
        while let Some(sent) = sending.next().await {
            if let Err(error) = sent {
                outcome = Err(error);
            }
        }
        outcome
    }
}
