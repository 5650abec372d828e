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

/// Whether this process relays the outbox now. The outbox is shared by every node of a
/// cluster and must be relayed by one, or each event would go out once per node: there,
/// the holder of shard 0's lease relays (a hand-off of shard 0 may repeat a batch, as a
/// failed delete does). A node alone always relays.
pub type RelayGate = Arc<dyn Fn() -> bool + Send + Sync>;

/// How often a node that does not relay looks again.
const GATE_POLL: Duration = Duration::from_millis(100);

pub fn start_relay(
    outbox: Arc<dyn Outbox>,
    sinks: Vec<Arc<dyn EventSink>>,
    gate: RelayGate,
) -> JoinHandle<()> {
    tokio::spawn(relay(outbox, sinks, gate))
}

async fn relay(outbox: Arc<dyn Outbox>, sinks: Vec<Arc<dyn EventSink>>, gate: RelayGate) {
    let mut retry_delay = IDLE;
    loop {
        if !gate() {
            tokio::time::sleep(GATE_POLL).await;
            continue;
        }
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
