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
use crate::jobs::{Job, JobQueue, Sender, backoff, count_job, local_queue};
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
    /// A job due now waits here for a free slot before it is handed to a task: the caller
    /// (the saga, fed by the outbox relay) slows down to the senders' pace, so a backlog
    /// stays in the outbox, on disk, instead of piling up as tasks in memory. Measured
    /// before this: a flash sale's payment requests outran the senders, and ~100,000 parked
    /// tasks held ~1.5 KB each (most of the engine's RSS growth per order under load).
    /// A delayed job (a review request a day after delivery) takes its slot when it is due.
    async fn enqueue(&self, job: Job, delay: Duration) -> Result<(), WorkflowError> {
        // Shared by the job's channels (most jobs have one): not a copy per channel.
        let job = Arc::new(job);
        for channel in job.channels.clone() {
            let first_slot = match delay.is_zero() {
                true => Some(
                    Arc::clone(&self.slots)
                        .acquire_owned()
                        .await
                        .map_err(|_| WorkflowError::Failed("the job queue is closed".into()))?,
                ),
                false => None,
            };
            let (job, sender, slots) = (
                Arc::clone(&job),
                Arc::clone(&self.sender),
                Arc::clone(&self.slots),
            );
            let (attempts, base) = (self.attempts, self.backoff);
            tokio::spawn(async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let queue = local_queue(&channel);
                let mut first_slot = first_slot;
                for attempt in 1..=attempts {
                    let outcome = {
                        let _slot = match first_slot.take() {
                            Some(slot) => slot,
                            None => match Arc::clone(&slots).acquire_owned().await {
                                Ok(slot) => slot,
                                Err(_) => return,
                            },
                        };
                        sender.send(&channel, &job).await
                    };
                    match outcome {
                        Ok(()) => {
                            count_job(queue, "done");
                            return;
                        }
                        Err(error) if attempt < attempts => {
                            count_job(queue.clone(), "retried");
                            tracing::info!(job = %job.id, %channel, attempt, %error, "job retried later");
                            tokio::time::sleep(backoff(base, attempt)).await;
                        }
                        Err(error) => {
                            count_job(queue.clone(), "failed");
                            tracing::warn!(job = %job.id, %channel, %error, "job failed for good");
                        }
                    }
                }
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use engine::UserId;

    use super::*;

    /// Holds every send until the test lets one through.
    struct GatedSender {
        gate: Semaphore,
        sent: AtomicUsize,
    }

    #[async_trait]
    impl Sender for GatedSender {
        async fn send(&self, _channel: &str, _job: &Job) -> Result<(), WorkflowError> {
            self.gate
                .acquire()
                .await
                .map_err(|_| WorkflowError::Failed("closed".into()))?
                .forget();
            self.sent.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn job(n: u32) -> Job {
        Job {
            id: format!("job-{n}"),
            kind: "payment_request".into(),
            user_id: UserId(u64::from(n)),
            order_id: None,
            channels: vec!["email".into()],
            data: serde_json::Value::Null,
        }
    }

    #[tokio::test]
    async fn a_job_due_now_waits_for_a_free_sender_instead_of_piling_up() {
        let sender = Arc::new(GatedSender {
            gate: Semaphore::new(0),
            sent: AtomicUsize::new(0),
        });
        let queue =
            LocalJobQueue::new(Arc::clone(&sender) as Arc<dyn Sender>, 2, 1, Duration::ZERO);
        queue.enqueue(job(1), Duration::ZERO).await.expect("first");
        queue.enqueue(job(2), Duration::ZERO).await.expect("second");
        let third = queue.enqueue(job(3), Duration::ZERO);
        tokio::pin!(third);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut third)
                .await
                .is_err(),
            "both senders are busy: the third job waits"
        );
        // A delayed job is not held back by busy senders.
        tokio::time::timeout(
            Duration::from_millis(50),
            queue.enqueue(job(4), Duration::from_secs(3_600)),
        )
        .await
        .expect("a delayed job is accepted at once")
        .expect("enqueued");
        sender.gate.add_permits(1);
        tokio::time::timeout(Duration::from_secs(5), &mut third)
            .await
            .expect("a sender freed up")
            .expect("enqueued");
        sender.gate.add_permits(2);
        for _ in 0..100 {
            if sender.sent.load(Ordering::SeqCst) == 3 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "three jobs sent, not {}",
            sender.sent.load(Ordering::SeqCst)
        );
    }
}
