//! Notification jobs: what the workflow asks to be sent, and the senders that send it.
//!
//! A job names its channels (`email`, `sms`, ...); each channel's worker delivers it with
//! its own attempts, so a failing SMS gateway does not resend the email. Delivery is at
//! least once; the job id makes the record of it exactly once.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use engine::{OrderId, UserId};
use persistence::{Notification, NotificationStore, StoreError};
use serde::{Deserialize, Serialize};

use crate::WorkflowError;
use crate::batcher::BatchWriter;

/// Work items a worker finished, by queue (a RabbitMQ queue, or `jobs.<channel>` in
/// process) and outcome: `done`, `retried`, `dead_lettered`, `failed` (given up in process)
/// or `requeued` (could not be rescheduled). A Prometheus counter; the gateway exports it.
pub const JOBS_METRIC: &str = "flashcart_jobs_total";

/// Counts one work item's outcome on `queue`.
pub fn count_job(queue: impl Into<metrics::SharedString>, outcome: &'static str) {
    metrics::counter!(JOBS_METRIC, "queue" => queue.into(), "outcome" => outcome).increment(1);
}

/// The `queue` label of a job run in this process on `channel`: the known channels' names
/// are static, so counting one of the jobs every order brings formats nothing.
pub fn local_queue(channel: &str) -> metrics::SharedString {
    match channel {
        "email" => "jobs.email".into(),
        "sms" => "jobs.sms".into(),
        "payment_provider" => "jobs.payment_provider".into(),
        other => format!("jobs.{other}").into(),
    }
}

/// Every channel a notification worker serves.
pub const CHANNELS: [&str; 3] = ["email", "sms", PAYMENT_PROVIDER];

/// The channel of the payment requests: a call to the payment provider, not a message
/// to the shopper.
pub const PAYMENT_PROVIDER: &str = "payment_provider";

/// Whether `channel` reaches a provider (a service) rather than a person.
pub fn is_provider_channel(channel: &str) -> bool {
    channel == PAYMENT_PROVIDER
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// Stable for one purpose (`<orderId>:order_confirmation`), so a job enqueued twice
    /// is sent once.
    pub id: String,
    /// `order_confirmation`, `payment_success`, `review_request`, ...
    pub kind: String,
    pub user_id: UserId,
    pub order_id: Option<OrderId>,
    pub channels: Vec<String>,
    /// What the message says.
    pub data: serde_json::Value,
}

impl Job {
    pub fn dedup_key(&self, channel: &str) -> String {
        format!("{}:{channel}", self.id)
    }
}

/// Where jobs are queued: RabbitMQ when configured, in process otherwise.
#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Queues `job` to run after `delay`. Returns once the queue holds it.
    async fn enqueue(&self, job: Job, delay: Duration) -> Result<(), WorkflowError>;
}

/// Sends one job on one channel. Implementations talk to an email or SMS provider; an
/// error makes the worker try again later.
#[async_trait]
pub trait Sender: Send + Sync + 'static {
    async fn send(&self, channel: &str, job: &Job) -> Result<(), WorkflowError>;
}

/// The default sender: records each message instead of sending it, so users, operators
/// and tests can see what would have gone out. A message to a person is recorded once in
/// the store's `notifications`, where its recipient reads it; a message to a provider (the
/// payment request every order sends) is logged in `provider_messages`, one pack per
/// batch, because a row each was the costliest write of an order (`persistence`'s
/// `provider_messages.rs`). Both are group-committed ([`BatchWriter`]).
#[derive(Clone)]
pub struct RecordingSender {
    records: BatchWriter<Notification>,
    provider_log: BatchWriter<Notification>,
}

/// Records waiting for the writer at most; senders wait for room beyond it.
const RECORD_QUEUE: usize = 4_096;
/// Records written by one statement at most.
const RECORD_BATCH_MAX: usize = 1_024;

impl RecordingSender {
    /// Starts the writer task (it ends when the last sender is dropped).
    pub fn new(store: Arc<dyn NotificationStore>) -> Self {
        let records = writer(
            "notification",
            Arc::clone(&store),
            |store, records| async move { store.record_notifications(&records).await },
        );
        let provider_log = writer("provider message", store, |store, messages| async move {
            store.log_provider_messages(&messages).await
        });
        Self {
            records,
            provider_log,
        }
    }
}

/// A group-committing writer of messages: `write` stores each batch of them.
fn writer<W, F>(
    what: &'static str,
    store: Arc<dyn NotificationStore>,
    write: W,
) -> BatchWriter<Notification>
where
    W: Fn(Arc<dyn NotificationStore>, Vec<Notification>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), StoreError>> + Send + 'static,
{
    BatchWriter::start(what, RECORD_QUEUE, RECORD_BATCH_MAX, move |messages| {
        let written = write(Arc::clone(&store), messages);
        async move { written.await.map_err(|error| error.to_string()) }
    })
}

#[async_trait]
impl Sender for RecordingSender {
    async fn send(&self, channel: &str, job: &Job) -> Result<(), WorkflowError> {
        let message = Notification {
            dedup_key: job.dedup_key(channel),
            user_id: job.user_id,
            order_id: job.order_id,
            kind: job.kind.clone(),
            channel: channel.to_owned(),
            body: job.data.to_string(),
            sent_at_ms: now_ms(),
        };
        if is_provider_channel(channel) {
            // A second delivery of this job is a second call, and logged as one.
            self.provider_log.write(message).await
        } else {
            // A record of this job from an earlier delivery is skipped: done either way.
            self.records.write(message).await
        }
    }
}

/// A channel's RabbitMQ worker: sends the jobs that name its channel, skips the rest
/// (the `notifications` exchange is a fanout: every channel sees every job).
pub struct ChannelWorker {
    pub channel: String,
    pub sender: Arc<dyn Sender>,
}

#[async_trait]
impl crate::rabbit::Handler for ChannelWorker {
    async fn handle(&self, payload: &[u8], _redelivered: bool) -> Result<(), WorkflowError> {
        let job: Job = serde_json::from_slice(payload)
            .map_err(|error| WorkflowError::Malformed(format!("job: {error}")))?;
        if job.channels.contains(&self.channel) {
            self.sender.send(&self.channel, &job).await?;
        }
        Ok(())
    }
}

/// Retry delays: `base`, `2 base`, `4 base`, ... for attempt 1, 2, 3, ...
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1 << attempt.saturating_sub(1).min(16))
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The static names stand for exactly what `jobs.<channel>` formats, for every channel
    /// a notification worker serves and for one it does not.
    #[test]
    fn a_local_jobs_queue_label_is_jobs_dot_its_channel() {
        for channel in CHANNELS.into_iter().chain(["push"]) {
            assert_eq!(
                local_queue(channel),
                metrics::SharedString::from(format!("jobs.{channel}")),
                "{channel}"
            );
        }
    }

    #[test]
    fn backoff_doubles_from_the_base() {
        let base = Duration::from_millis(100);
        let delays: Vec<u128> = (1..=4)
            .map(|attempt| backoff(base, attempt).as_millis())
            .collect();
        assert_eq!(delays, [100, 200, 400, 800]);
        assert_eq!(backoff(base, 0), base);
        assert_eq!(backoff(base, 40), base * (1 << 16));
    }
}
