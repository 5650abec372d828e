//! Lines held on one node for an order coordinated on another (issue 15): a checkout whose
//! cart spans the shards of several nodes, and later that order's payment, cancellation
//! or expiry. The coordinator (`hold.rs`) asks each node serving some of the order's
//! shards to hold its lines; the one transaction that writes the order carries every such
//! node's lease and the earliest hold deadline, then each node is told the outcome.
//!
//! What makes it safe when a message is lost or the coordinator dies:
//! - A held line is out of everyone else's reach, as on one node; the transaction can only
//!   commit under the holder's lease (a node that took the shard since refuses it) and
//!   before the hold's deadline, by PostgreSQL's clock read with those leases locked.
//! - A hold nobody settles is resolved by its holder once the deadline passed: PostgreSQL
//!   confirms it passed, with the lease rows locked ([`OrderLedger::hold_expired`]), so no
//!   batch carrying the hold can commit any more and every one that did is visible. The
//!   actors then settle as "unknown" and rebuild their stock from the store, which is now
//!   the final word.
//! - "Unknown" from the coordinator (its commit timed out) is resolved the same way: only
//!   the store can tell, and only once the hold is over.
//!
//! The transport is the gateway's ([`NodeChannel`]), which serves [`Shop::hold_for_peer`]
//! and [`Shop::settle_for_peer`] to the other nodes.
//!
//! [`OrderLedger::hold_expired`]: persistence::OrderLedger::hold_expired

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use engine::stock::Line;
use engine::{OrderId, ProductId};
use persistence::{CommitOutcome, ShardLease};
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::hold::{self, HeldLines};
use crate::node_channel::NodeChannel;
use crate::ownership::Fence;
use crate::protocol::{PrepareRefused, PrepareStep};
use crate::shop::Shop;

/// A coordinator does not submit an order whose hold ends sooner than this: its batch
/// would likely reach PostgreSQL too late and be refused there.
pub(crate) const COMMIT_MARGIN_MS: u64 = 500;
/// How often a holder asks the store whether an unsettled hold is over.
const RESOLVE_PAUSE: Duration = Duration::from_millis(250);
/// How long a coordinator waits for the other nodes to take its outcome before it answers
/// its caller. Within it, a read through any node after the answer sees the order's lines
/// moved (a cancellation's units back on sale); past it (a node down or slow) the answer
/// goes out and the telling goes on, or the holder resolves at its deadline.
pub(crate) const PEERS_TOLD_WAIT: Duration = Duration::from_secs(1);

/// A node's answer to a [`HoldRequest`].
pub enum PeerAnswer {
    /// `peer` answered (held every line, or refused some and gave all of them back).
    Held { peer: String, reply: HoldReply },
    /// No node could be asked, or none answered: nothing is held.
    Unavailable(String),
}

/// "Hold these lines of one shard for this order."
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HoldRequest {
    pub order_id: OrderId,
    pub shard: u32,
    pub steps: Vec<(ProductId, PrepareStep)>,
}

/// The lines held (or why not), under which lease, and until when.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HoldReply {
    pub lines: Vec<(ProductId, Result<Line, PrepareRefused>)>,
    /// The lease the order's transaction must carry (none if a line was refused).
    pub leases: Vec<ShardLease>,
    /// The order's transaction must commit before this, by PostgreSQL's clock.
    pub until_ms: u64,
}

/// How the order's transaction ended, for the lines one node holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HoldSettlement {
    pub order_id: OrderId,
    pub shard: u32,
    pub outcome: Settlement,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Settlement {
    Committed,
    NotWritten(String),
    Unknown(String),
}

impl From<&CommitOutcome> for Settlement {
    fn from(outcome: &CommitOutcome) -> Self {
        match outcome {
            CommitOutcome::Committed => Settlement::Committed,
            CommitOutcome::NotWritten(why) => Settlement::NotWritten(why.to_string()),
            CommitOutcome::Unknown(why) => Settlement::Unknown(why.to_string()),
        }
    }
}

/// What the holder answers when it no longer serves the shard: the coordinator's channel
/// reads the routes again and asks the new owner.
#[derive(Debug)]
pub enum HoldAnswer {
    Held(HoldReply),
    Moved(u32),
    /// The hold could not be attempted (a bug: its task failed); nothing is held.
    Failed(String),
}

/// The coordinator's record of a node holding lines for its order.
pub(crate) struct PeerHold {
    pub peer: String,
    pub shard: u32,
    pub leases: Vec<ShardLease>,
    pub until_ms: u64,
}

/// Tells every peer the outcome, on a task of its own (a lost message is resolved by the
/// peer at its deadline). The task's handle, if there is one, ends once every peer was
/// told or given up on; dropping it leaves the task running.
pub(crate) fn tell_peers(
    node_channel: Option<Arc<dyn NodeChannel>>,
    peers: Vec<PeerHold>,
    order_id: OrderId,
    outcome: &CommitOutcome,
) -> Option<tokio::task::JoinHandle<()>> {
    let node_channel = node_channel?;
    if peers.is_empty() {
        return None;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(%order_id, "no runtime to settle other nodes' lines; they resolve them at their deadline");
        return None;
    };
    let outcome = Settlement::from(outcome);
    Some(runtime.spawn(async move {
        for peer in peers {
            let settlement = HoldSettlement {
                order_id,
                shard: peer.shard,
                outcome: outcome.clone(),
            };
            for attempt in 1..=3 {
                match node_channel.settle(&peer.peer, &settlement).await {
                    Ok(()) => break,
                    Err(error) => {
                        tracing::info!(%order_id, shard = peer.shard, attempt, %error, "settling a line held on another node");
                        tokio::time::sleep(RESOLVE_PAUSE).await;
                    }
                }
            }
        }
    }))
}

/// Lines this node holds for other nodes' orders, by order and shard.
#[derive(Default)]
pub(crate) struct HeldForPeers {
    holds: Mutex<HashMap<(OrderId, u32), HeldLines>>,
}

impl HeldForPeers {
    fn insert(&self, order_id: OrderId, shard: u32, held: HeldLines) {
        let mut holds = self.holds.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(earlier) = holds.insert((order_id, shard), held) {
            // A coordinator asks once per shard; a second ask replaces the first.
            earlier.settle_with(&CommitOutcome::NotWritten("asked again".into()));
        }
    }

    fn take(&self, order_id: OrderId, shard: u32) -> Option<HeldLines> {
        let mut holds = self.holds.lock().unwrap_or_else(PoisonError::into_inner);
        holds.remove(&(order_id, shard))
    }

    fn contains(&self, order_id: OrderId, shard: u32) -> bool {
        let holds = self.holds.lock().unwrap_or_else(PoisonError::into_inner);
        holds.contains_key(&(order_id, shard))
    }

    pub fn len(&self) -> usize {
        self.holds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Shop {
    /// Another node's order wants lines of `request.shard`: they are decided here, held
    /// until that node settles them (or the hold's deadline passes), and answered with
    /// this node's lease. On a task of its own: a caller that hangs up must not leave a
    /// line half-registered.
    pub async fn hold_for_peer(&self, request: HoldRequest) -> HoldAnswer {
        let ctx = Arc::clone(&self.ctx);
        let shard = request.shard;
        let running = tokio::spawn(async move { hold_here(ctx, request).await });
        running.await.unwrap_or_else(|error| {
            tracing::error!(%error, shard, "holding lines for another node failed");
            HoldAnswer::Failed(error.to_string())
        })
    }

    /// The coordinator's word on lines held here for its order. "Unknown" is left to the
    /// deadline: only the store can tell, once the hold is over.
    pub fn settle_for_peer(&self, settlement: HoldSettlement) {
        let outcome = match settlement.outcome {
            Settlement::Committed => CommitOutcome::Committed,
            Settlement::NotWritten(why) => CommitOutcome::NotWritten(why.into()),
            Settlement::Unknown(why) => {
                tracing::info!(order_id = %settlement.order_id, %why, "another node does not know whether an order held here committed; resolving at the deadline");
                return;
            }
        };
        if let Some(held) = self
            .ctx
            .held_for_peers()
            .take(settlement.order_id, settlement.shard)
        {
            held.settle_with(&outcome);
        }
    }

    /// Lines held here for orders of other nodes, not settled yet.
    pub fn lines_held_for_peers(&self) -> usize {
        self.ctx.held_for_peers().len()
    }
}

async fn hold_here(ctx: Arc<Context>, request: HoldRequest) -> HoldAnswer {
    let HoldRequest {
        order_id,
        shard,
        steps,
    } = request;
    let Fence::Lease(lease) = ctx.ownership().fence(shard) else {
        return HoldAnswer::Moved(shard);
    };
    if !ctx.ownership().admits(shard) {
        return HoldAnswer::Moved(shard);
    }
    let until_ms = ctx.now_ms() + hold_window(&ctx).as_millis() as u64;
    let mut refused = Vec::new();
    let mut here = Vec::with_capacity(steps.len());
    for (slot, (product_id, step)) in steps.into_iter().enumerate() {
        if ctx.shard_of(product_id) == shard {
            here.push((slot, product_id, step));
        } else {
            let why = format!("product {product_id} is not of shard {shard}");
            refused.push((product_id, Err(PrepareRefused::Unavailable(why))));
        }
    }
    let (mut held, lines, failures) = hold::prepare_here(&ctx, order_id, here).await;
    if !refused.is_empty() || !failures.is_empty() {
        // Dropping `held` gives back what was held.
        refused.extend(
            failures
                .into_iter()
                .map(|(_, product_id, why)| (product_id, Err(why))),
        );
        return HoldAnswer::Held(HoldReply {
            lines: refused,
            leases: Vec::new(),
            until_ms,
        });
    }
    let answered = lines
        .iter()
        .map(|(_, product_id, line)| (*product_id, Ok(line.clone())))
        .collect();
    held.lines = lines
        .into_iter()
        .map(|(_, product_id, line)| (product_id, line))
        .collect();
    ctx.held_for_peers().insert(order_id, shard, held);
    resolve_at_deadline(Arc::downgrade(&ctx), order_id, shard, until_ms);
    HoldAnswer::Held(HoldReply {
        lines: answered,
        leases: vec![lease],
        until_ms,
    })
}

/// How long lines stay held for another node's order: time for its other lines, its
/// commit, and a slow network, and not much more (held units are out of stock meanwhile).
fn hold_window(ctx: &Context) -> Duration {
    ctx.settings().request_timeout * 2
}

/// Once the hold's deadline passed, a hold still unsettled is settled by the store.
fn resolve_at_deadline(ctx: Weak<Context>, order_id: OrderId, shard: u32, until_ms: u64) {
    tokio::spawn(async move {
        let wait_ms = match ctx.upgrade() {
            Some(ctx) => until_ms.saturating_sub(ctx.now_ms()),
            None => return,
        };
        tokio::time::sleep(Duration::from_millis(wait_ms) + RESOLVE_PAUSE).await;
        loop {
            let Some(ctx) = ctx.upgrade() else {
                return;
            };
            if !ctx.held_for_peers().contains(order_id, shard) {
                return;
            }
            match ctx.ledger().hold_expired(&[shard], until_ms).await {
                Ok(true) => {
                    if let Some(held) = ctx.held_for_peers().take(order_id, shard) {
                        tracing::info!(%order_id, shard, "a line held for another node was never settled; rebuilding from the store");
                        held.settle_with(&CommitOutcome::Unknown(
                            "the coordinating node never said how the order ended".into(),
                        ));
                    }
                    return;
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%order_id, shard, %error, "cannot resolve a line held for another node yet");
                }
            }
            drop(ctx);
            tokio::time::sleep(RESOLVE_PAUSE).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use engine::stock::LineState;
    use engine::{IdempotencyKey, Money, UserId};

    use super::*;

    /// What crosses the node channel comes back whole, a checkout's key included (no
    /// client may send one like it, so it is not a client key).
    #[test]
    fn holds_cross_the_wire_whole() {
        let client_key = IdempotencyKey::parse("cart-1").expect("a valid key");
        let key = IdempotencyKey::for_checkout(&client_key);
        let order_id = crate::OrderIds::seeded(1).next(1_000);
        let request = HoldRequest {
            order_id,
            shard: 3,
            steps: vec![(
                ProductId(7),
                PrepareStep::Reserve {
                    user_id: UserId(1),
                    quantity: 2,
                    idempotency_key: key.clone(),
                    now_ms: 1_000,
                    expires_at_ms: 601_000,
                },
            )],
        };
        let text = serde_json::to_string(&request).expect("serializes");
        let back: HoldRequest = serde_json::from_str(&text).expect("deserializes");
        assert_eq!(serde_json::to_string(&back).expect("serializes"), text);

        let line = Line {
            order_id,
            user_id: UserId(1),
            idempotency_key: key,
            quantity: 2,
            unit_price: Money(1_000),
            sale_id: None,
            created_at_ms: 1_000,
            expires_at_ms: 601_000,
            state: LineState::Reserved,
        };
        let reply = HoldReply {
            lines: vec![
                (ProductId(7), Ok(line.clone())),
                (
                    ProductId(8),
                    Err(PrepareRefused::Refused(engine::Refusal::OutOfStock {
                        left: 0,
                    })),
                ),
            ],
            leases: vec![ShardLease {
                shard: 3,
                owner_node: "n2".into(),
                epoch: 4,
            }],
            until_ms: 7_000,
        };
        let text = serde_json::to_string(&reply).expect("serializes");
        let back: HoldReply = serde_json::from_str(&text).expect("deserializes");
        assert_eq!(back.lines[0].1, Ok(line));
        assert_eq!(back.lines[1], reply.lines[1]);
        assert_eq!(back.leases, reply.leases);
    }
}
