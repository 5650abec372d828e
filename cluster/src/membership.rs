//! Shard ownership from a Kafka consumer group, the way Akka co-locates cluster-sharding
//! shards with Kafka partitions: one topic, `<prefix>shards`, with one partition per
//! virtual shard, and one consumer group, `<prefix>shards`, that every node joins. The
//! group coordinator spreads the partitions over the members; a member's partitions are
//! its shards. Nothing is ever produced to the topic: the group is only the membership
//! protocol, run by the broker instead of one of our own.
//!
//! The rebalance callbacks are the hand-off points, reported as [`OwnershipChange`]s:
//! - a revocation waits (up to `handoff_timeout`) until the node says it let the shards
//!   go (stopped admitting, flushed its commits, passivated the actors), so the next owner
//!   never loads a shard whose last batch is still in flight;
//! - an assignment is reported after the rebalance; the node then takes each shard's
//!   lease (bumping its epoch) before it loads and sells.
//!
//! librdkafka serves the callbacks from `poll`, so a thread of its own polls the consumer
//! for as long as the [`Membership`] lives; heartbeats run on librdkafka's own threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::mpsc;

use crate::ClusterError;

#[derive(Clone, Debug)]
pub struct MembershipSettings {
    /// `host:port[,host:port]`.
    pub brokers: String,
    /// Prepended to the topic and group names (tests, shared brokers); empty in production.
    pub prefix: String,
    /// This node's id, as other nodes and the ops CLI name it.
    pub node_id: String,
    /// Virtual shards: partitions of the shards topic. Fixed for a deployment.
    pub shard_count: u32,
    /// How long the group waits for a silent member before giving its shards to others.
    pub session_timeout: Duration,
    /// How long a revocation waits for the node to let its shards go.
    pub handoff_timeout: Duration,
}

impl MembershipSettings {
    pub fn topic(&self) -> String {
        format!("{}shards", self.prefix)
    }

    pub fn group(&self) -> String {
        format!("{}shards", self.prefix)
    }
}

/// A change of the shards this node owns.
#[derive(Debug)]
pub enum OwnershipChange {
    /// These shards are this node's now: take their leases, load them, sell.
    Assigned(Vec<u32>),
    /// These shards are leaving: stop admitting for them, finish what is in flight, then
    /// answer `released` (the rebalance waits for it, up to the hand-off timeout).
    Revoked {
        shards: Vec<u32>,
        released: std::sync::mpsc::SyncSender<()>,
    },
}

/// Creates the shards topic (one partition per shard) when it is missing. A topic that
/// exists with another partition count is refused: shards would map to the wrong nodes.
pub async fn ensure_shard_topic(settings: &MembershipSettings) -> Result<(), ClusterError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .create()?;
    let partitions = i32::try_from(settings.shard_count)
        .map_err(|_| ClusterError::Failed("too many shards".into()))?;
    let topic = settings.topic();
    let new_topic = NewTopic::new(&topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
    for result in admin.create_topics([&new_topic], &options).await? {
        if let Err((name, code)) = result
            && code != RDKafkaErrorCode::TopicAlreadyExists
        {
            return Err(ClusterError::Failed(format!(
                "creating topic {name}: {code:?}"
            )));
        }
    }
    let metadata = admin
        .inner()
        .fetch_metadata(Some(&topic), Duration::from_secs(5))?;
    let found = metadata
        .topics()
        .iter()
        .find(|found| found.name() == topic)
        .map_or(0, |found| found.partitions().len());
    if found != settings.shard_count as usize {
        return Err(ClusterError::Failed(format!(
            "topic {topic} has {found} partitions, the cluster has {} shards",
            settings.shard_count
        )));
    }
    Ok(())
}

/// This node's membership of the shards group. Dropping it leaves the group (the other
/// nodes get its shards at once, without waiting for the session timeout).
pub struct Membership {
    stop: Arc<AtomicBool>,
    rejoin: Rejoin,
    leave_group: LeaveGroup,
    poller: Option<JoinHandle<()>>,
}

/// Asks the membership to leave the group for good while the node keeps running (a
/// drain: the node forwards requests, the group gives its shards to the others).
#[derive(Clone, Default)]
pub struct LeaveGroup(Arc<AtomicBool>);

impl LeaveGroup {
    pub fn request(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }
}

/// Asks the membership to leave the group and join it again: a fresh join makes the
/// coordinator rebalance over the members that are really there.
///
/// Why it exists: with a 6 s session, tansu 0.6 (the broker the tests run) rebalances
/// after a member is killed but hands the survivors their old shards again, so the dead
/// node's are never served (`cluster/tests/membership.rs`; measured: the survivor got
/// `[0, 1, 2, 3]` of 8 again 9 s after the kill). A node that sees a lease held by a node
/// whose heartbeat in the directory stopped asks for a rejoin (`node.rs`): a fresh
/// member's join makes the coordinator assign every shard over the live members. Against
/// a broker that rebalances right, this costs one extra rebalance, nothing more.
#[derive(Clone, Default)]
pub struct Rejoin(Arc<AtomicBool>);

impl Rejoin {
    pub fn request(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }
}

impl Membership {
    /// Joins the group; ownership changes arrive on the returned channel, the first one
    /// once the group has assigned this node its shards.
    pub fn join(
        settings: &MembershipSettings,
    ) -> Result<(Self, mpsc::UnboundedReceiver<OwnershipChange>), ClusterError> {
        let (changes, received) = mpsc::unbounded_channel();
        let context = GroupContext {
            changes,
            handoff_timeout: settings.handoff_timeout,
            node_id: settings.node_id.clone(),
        };
        let session_ms = settings.session_timeout.as_millis().to_string();
        // Heartbeats a few times per session, as Kafka recommends (a third at most).
        let heartbeat_ms = (settings.session_timeout.as_millis() / 4)
            .max(100)
            .to_string();
        let consumer: BaseConsumer<GroupContext> = ClientConfig::new()
            .set("bootstrap.servers", &settings.brokers)
            .set("group.id", settings.group())
            .set("client.id", &settings.node_id)
            .set("session.timeout.ms", &session_ms)
            .set("heartbeat.interval.ms", &heartbeat_ms)
            // The shards topic carries no messages and no offsets worth keeping.
            .set("enable.auto.commit", "false")
            .set("partition.assignment.strategy", "range")
            .create_with_context(context)?;
        let topic = settings.topic();
        consumer.subscribe(&[&topic])?;
        let stop = Arc::new(AtomicBool::new(false));
        let rejoin = Rejoin::default();
        let leave_group = LeaveGroup::default();
        let poller = {
            let stop = Arc::clone(&stop);
            let rejoin = rejoin.clone();
            let leave_group = leave_group.clone();
            std::thread::Builder::new()
                .name("shard-membership".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        // Serves the rebalance callbacks; the topic has no messages.
                        if let Some(Err(error)) = consumer.poll(Duration::from_millis(100)) {
                            tracing::warn!(%error, "shard membership");
                        }
                        if leave_group.take() {
                            tracing::info!("leaving the shards group (draining)");
                            consumer.unsubscribe();
                            continue;
                        }
                        if rejoin.take() {
                            tracing::info!("leaving and joining the shards group again");
                            consumer.unsubscribe();
                            let _ = consumer.poll(Duration::from_millis(100));
                            if let Err(error) = consumer.subscribe(&[&topic]) {
                                tracing::error!(%error, "could not join the shards group again");
                            }
                        }
                    }
                    // Leaving the group: its shards are revoked (the callback runs here)
                    // and reassigned to the others without a session timeout.
                    consumer.unsubscribe();
                    let _ = consumer.poll(Duration::from_millis(100));
                })
                .map_err(|error| ClusterError::Failed(format!("membership thread: {error}")))?
        };
        Ok((
            Self {
                stop,
                rejoin,
                leave_group,
                poller: Some(poller),
            },
            received,
        ))
    }
}

impl Membership {
    /// A handle that asks for a rejoin (see [`Rejoin`]).
    pub fn rejoin(&self) -> Rejoin {
        self.rejoin.clone()
    }

    /// A handle that makes this node leave the group and stay out (a drain).
    pub fn leave_group(&self) -> LeaveGroup {
        self.leave_group.clone()
    }

    /// Leaves the group and waits (off the async workers) until the revocation of this
    /// node's shards has run, so that the hand-off completed before the node stops.
    pub async fn leave(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(poller) = self.poller.take() {
            let _ = tokio::task::spawn_blocking(move || poller.join()).await;
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Not joined: closing the consumer waits for the coordinator, and a drop must
        // not block an async worker. The thread ends on its own.
        drop(self.poller.take());
    }
}

struct GroupContext {
    changes: mpsc::UnboundedSender<OwnershipChange>,
    handoff_timeout: Duration,
    node_id: String,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(partitions) = rebalance else {
            return;
        };
        let shards = shards_of(partitions);
        if shards.is_empty() {
            return;
        }
        let (released, wait) = std::sync::mpsc::sync_channel(1);
        tracing::info!(node = %self.node_id, ?shards, "shards revoked; handing them off");
        if self
            .changes
            .send(OwnershipChange::Revoked {
                shards: shards.clone(),
                released,
            })
            .is_err()
        {
            return;
        }
        if wait.recv_timeout(self.handoff_timeout).is_err() {
            // The fencing epochs still hold: the next owner's take makes this node's
            // late batches fail rather than land.
            tracing::warn!(node = %self.node_id, ?shards, "hand-off not confirmed in time");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                let shards = shards_of(partitions);
                tracing::info!(node = %self.node_id, ?shards, "shards assigned");
                let _ = self.changes.send(OwnershipChange::Assigned(shards));
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => {
                tracing::warn!(node = %self.node_id, %error, "shard rebalance failed");
            }
        }
    }
}

fn shards_of(partitions: &TopicPartitionList) -> Vec<u32> {
    let mut shards: Vec<u32> = partitions
        .elements()
        .iter()
        .filter_map(|element| u32::try_from(element.partition()).ok())
        .collect();
    shards.sort_unstable();
    shards
}
