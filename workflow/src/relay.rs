//! The outbox relay. It reads the oldest events, hands the batch to every sink in turn and
//! deletes it only when all of them took it. A sink that fails (Kafka down, RabbitMQ
//! unreachable) makes the relay wait and hand the same batch over again: consumers may see
//! an event twice, never miss one, and one entity's events keep their order.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use persistence::{Outbox, OutboxRow};
use tokio::task::JoinHandle;

use crate::WorkflowError;

/// Somewhere events go. `publish` returns once the destination holds the whole batch.
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    async fn publish(&self, rows: &[OutboxRow]) -> Result<(), WorkflowError>;
}

/// Events per round: one outbox read and one delete for up to this many.
const BATCH_MAX: u32 = 1_000;
/// Pause when the outbox is empty.
const IDLE: Duration = Duration::from_millis(20);
/// Pause after a partial batch: under a steady stream of orders, reading again at once
/// would make rounds of a handful of events, each paying a read and a delete. A few
/// milliseconds let the next batch fill (events are late by at most this much).
const GATHER: Duration = Duration::from_millis(5);
const RETRY_DELAY_MAX: Duration = Duration::from_secs(2);

pub fn start_relay(outbox: Arc<dyn Outbox>, sinks: Vec<Arc<dyn EventSink>>) -> JoinHandle<()> {
    tokio::spawn(relay(outbox, sinks))
}

async fn relay(outbox: Arc<dyn Outbox>, sinks: Vec<Arc<dyn EventSink>>) {
    let mut retry_delay = IDLE;
    loop {
        let rows = match outbox.oldest_events(BATCH_MAX).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "cannot read the outbox");
                tokio::time::sleep(RETRY_DELAY_MAX).await;
                continue;
            }
        };
        if rows.is_empty() {
            tokio::time::sleep(IDLE).await;
            continue;
        }
        match hand_over(&sinks, &rows).await {
            Ok(()) => {
                retry_delay = IDLE;
                let seqs: Vec<i64> = rows.iter().map(|row| row.seq).collect();
                if let Err(error) = outbox.delete_events(&seqs).await {
                    // They go out again: a duplicate, never a gap.
                    tracing::warn!(%error, "cannot delete relayed events");
                }
                if rows.len() < BATCH_MAX as usize {
                    tokio::time::sleep(GATHER).await;
                }
            }
            Err((sink, error)) => {
                tracing::warn!(sink, %error, waiting = rows.len(), "events not taken; retrying");
                tokio::time::sleep(retry_delay).await;
                retry_delay = (retry_delay * 2).min(RETRY_DELAY_MAX);
            }
        }
    }
}

async fn hand_over(
    sinks: &[Arc<dyn EventSink>],
    rows: &[OutboxRow],
) -> Result<(), (&'static str, WorkflowError)> {
    for sink in sinks {
        sink.publish(rows)
            .await
            .map_err(|error| (sink.name(), error))?;
    }
    Ok(())
}
