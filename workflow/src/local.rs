//! The embedded default: no RabbitMQ, no Kafka. The relay hands events straight to the
//! saga and to analytics, and jobs run in this process with the same attempts, backoff,
//! delays and concurrency limit. A delayed job waits in memory: a restart forgets it
//! (RabbitMQ keeps it; configure it where that matters).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use persistence::OutboxRow;
use tokio::sync::Semaphore;

use crate::WorkflowError;
use crate::analytics::Analytics;
use crate::event::EventBody;
use crate::jobs::{Job, JobQueue, Sender, backoff};
use crate::relay::EventSink;
use crate::saga::OrderSaga;

/// Feeds analytics from the relay when no Kafka consumer group does.
pub struct AnalyticsSink {
    pub analytics: Arc<Analytics>,
}

#[async_trait]
impl EventSink for AnalyticsSink {
    fn name(&self) -> &'static str {
        "analytics"
    }

    async fn publish(&self, rows: &[OutboxRow]) -> Result<(), WorkflowError> {
        for row in rows {
            self.analytics.record_payload(row.payload.as_bytes());
        }
        Ok(())
    }
}

/// Runs the saga on each order event, in outbox order.
pub struct SagaSink {
    pub saga: Arc<OrderSaga>,
}

#[async_trait]
impl EventSink for SagaSink {
    fn name(&self) -> &'static str {
        "saga"
    }

    async fn publish(&self, rows: &[OutboxRow]) -> Result<(), WorkflowError> {
        for row in rows {
            match EventBody::of_row(row) {
                Ok(body) => self.saga.handle(&body).await?,
                // Retrying cannot fix a body; skipping keeps the rest flowing.
                Err(error) => tracing::warn!(seq = row.seq, %error, "saga skipped an event"),
            }
        }
        Ok(())
    }
}

/// Jobs as tasks of this process.
pub struct LocalJobQueue {
    sender: Arc<dyn Sender>,
    slots: Arc<Semaphore>,
    attempts: u32,
    backoff: Duration,
}

impl LocalJobQueue {
    pub fn new(
        sender: Arc<dyn Sender>,
        concurrency: usize,
        attempts: u32,
        backoff: Duration,
    ) -> Self {
        Self {
            sender,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            attempts: attempts.max(1),
            backoff,
        }
    }
}

#[async_trait]
impl JobQueue for LocalJobQueue {
    async fn enqueue(&self, job: Job, delay: Duration) -> Result<(), WorkflowError> {
        for channel in job.channels.clone() {
            let (job, sender, slots) = (
                job.clone(),
                Arc::clone(&self.sender),
                Arc::clone(&self.slots),
            );
            let (attempts, base) = (self.attempts, self.backoff);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                for attempt in 1..=attempts {
                    let outcome = {
                        let Ok(_slot) = slots.acquire().await else {
                            return;
                        };
                        sender.send(&channel, &job).await
                    };
                    match outcome {
                        Ok(()) => return,
                        Err(error) if attempt < attempts => {
                            tracing::info!(job = %job.id, %channel, attempt, %error, "job retried later");
                            tokio::time::sleep(backoff(base, attempt)).await;
                        }
                        Err(error) => {
                            tracing::warn!(job = %job.id, %channel, %error, "job failed for good");
                        }
                    }
                }
            });
        }
        Ok(())
    }
}
