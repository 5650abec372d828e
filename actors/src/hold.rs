//! Holding stock across several product actors for one transaction: how an order that
//! spans products (a cart checkout, then its payment, cancellation or expiry) moves all of
//! its lines or none.
//!
//! 1. [`prepare`]: every product actor decides its line at once, in memory, exactly as it
//!    would a Buy Now (or a confirm, or a release), and holds it. No actor ever waits for
//!    another, so there is no lock order to respect and no deadlock to fear.
//! 2. If any line is refused, every actor that was asked settles as "not written": held
//!    lines are undone, and the caller learns which lines failed and why.
//! 3. Otherwise [`HeldLines::commit`] hands the caller's writes (the order with all its
//!    items, or its status change with every stock move) to the group committer as one
//!    submission, hence one transaction; each actor then finishes, undoes or rebuilds, as
//!    for its own batches.
//!
//! While a line is held its units are out of everyone else's reach, the same as a Buy Now
//! waiting for its commit: the rule that nothing is sold twice holds by construction.
//! A [`HeldLines`] dropped before its commit (a cancelled caller) settles as not written
//! on the way out, so held stock never leaks.
//!
//! On a cluster, a product whose shard another node serves is prepared there, over the
//! node channel (`remote_hold.rs`): that node holds the line under its lease until this
//! one tells it the outcome, and the transaction carries that lease and the hold's
//! deadline, so it commits only while the line is still held for it.

use std::collections::BTreeMap;
use std::sync::Arc;

use engine::stock::Line;
use engine::{OrderId, ProductId};
use persistence::{CommitOutcome, WriteOp};
use ractor::ActorRef;
use tokio::sync::oneshot;

use crate::context::Context;
use crate::node_channel::NodeChannel;
use crate::ownership::Fence;
use crate::protocol::{HandleError, Prepare, PrepareRefused, PrepareStep, ProductMsg};
use crate::remote_hold::{
    COMMIT_MARGIN_MS, HoldRequest, PEERS_TOLD_WAIT, PeerAnswer, PeerHold, tell_peers,
};

/// Lines prepared for one order, in the order they were asked for.
pub(crate) struct HeldLines {
    order_id: OrderId,
    /// Every actor a `Prepare` reached, refused or not: all of them hear the outcome.
    contacted: Vec<ActorRef<ProductMsg>>,
    pub lines: Vec<(ProductId, Line)>,
    /// Other nodes holding lines of this order (`remote_hold.rs`): they hear it too.
    peers: Vec<PeerHold>,
    /// How they are told (a cluster node's channel to the others).
    node_channel: Option<Arc<dyn NodeChannel>>,
    settled: bool,
}

/// A line's place in the order, so lines answered by different nodes keep it.
type Slot = usize;

/// Asks each product to prepare its step for `order_id`: on this node, or (on a cluster)
/// on the node serving its shard. All lines held, or none (and the refusals, by product,
/// in the order asked).
pub(crate) async fn prepare(
    ctx: &Context,
    order_id: OrderId,
    steps: Vec<(ProductId, PrepareStep)>,
) -> Result<HeldLines, Vec<(ProductId, PrepareRefused)>> {
    let mut here = Vec::with_capacity(steps.len());
    let mut elsewhere: BTreeMap<u32, Vec<(Slot, ProductId, PrepareStep)>> = BTreeMap::new();
    for (slot, (product_id, step)) in steps.into_iter().enumerate() {
        if ctx.node_channel().is_some() && !ctx.admits(product_id) {
            let shard = ctx.shard_of(product_id);
            elsewhere
                .entry(shard)
                .or_default()
                .push((slot, product_id, step));
        } else {
            here.push((slot, product_id, step));
        }
    }
    // The other nodes are asked first, so they decide while this node's actors do.
    let mut asked = Vec::with_capacity(elsewhere.len());
    if let Some(peers) = ctx.node_channel() {
        for (shard, steps) in elsewhere {
            let slots: Vec<(Slot, ProductId)> = steps
                .iter()
                .map(|(slot, product_id, _)| (*slot, *product_id))
                .collect();
            let request = HoldRequest {
                order_id,
                shard,
                steps: steps
                    .into_iter()
                    .map(|(_, product_id, step)| (product_id, step))
                    .collect(),
            };
            let peers = Arc::clone(peers);
            let answer = tokio::spawn(async move { peers.hold(request).await });
            asked.push((shard, slots, answer));
        }
    }
    let (mut held, mut lines, mut failures) = prepare_here(ctx, order_id, here).await;
    for (shard, slots, answer) in asked {
        let slot_of = |product_id: ProductId| {
            slots
                .iter()
                .find(|(_, asked)| *asked == product_id)
                .map(|(slot, _)| *slot)
        };
        let reply = match answer.await {
            Ok(PeerAnswer::Held { peer, reply }) => (peer, reply),
            Ok(PeerAnswer::Unavailable(why)) => {
                failures.extend(slots.iter().map(|(slot, product_id)| {
                    (*slot, *product_id, PrepareRefused::Unavailable(why.clone()))
                }));
                continue;
            }
            Err(_) => {
                failures.extend(slots.iter().map(|(slot, product_id)| {
                    let why = format!("shard {shard}'s node was not asked");
                    (*slot, *product_id, PrepareRefused::Unavailable(why))
                }));
                continue;
            }
        };
        let (peer, reply) = reply;
        let mut all_held = true;
        for (product_id, answer) in reply.lines {
            // A node answers for the products it was asked about, nothing else.
            let Some(slot) = slot_of(product_id) else {
                continue;
            };
            match answer {
                Ok(line) => lines.push((slot, product_id, line)),
                Err(refused) => {
                    all_held = false;
                    failures.push((slot, product_id, refused));
                }
            }
        }
        // A node that refused a line gave all of its lines back already.
        if all_held {
            held.peers.push(PeerHold {
                peer,
                shard,
                leases: reply.leases,
                until_ms: reply.until_ms,
            });
        }
    }
    lines.sort_by_key(|(slot, _, _)| *slot);
    held.lines = lines
        .into_iter()
        .map(|(_, product_id, line)| (product_id, line))
        .collect();
    if failures.is_empty() {
        Ok(held)
    } else {
        failures.sort_by_key(|(slot, _, _)| *slot);
        // Dropping `held` settles every contacted actor and peer as not written.
        Err(failures
            .into_iter()
            .map(|(_, product_id, refused)| (product_id, refused))
            .collect())
    }
}

type Prepared = (
    HeldLines,
    Vec<(Slot, ProductId, Line)>,
    Vec<(Slot, ProductId, PrepareRefused)>,
);

/// Asks this node's product actors to prepare their steps: the lines held, and the
/// refusals. The returned [`HeldLines`] has every actor contacted (not its lines yet).
pub(crate) async fn prepare_here(
    ctx: &Context,
    order_id: OrderId,
    steps: Vec<(Slot, ProductId, PrepareStep)>,
) -> Prepared {
    let mut held = HeldLines {
        order_id,
        contacted: Vec::with_capacity(steps.len()),
        lines: Vec::new(),
        peers: Vec::new(),
        node_channel: ctx.node_channel().cloned(),
        settled: false,
    };
    let mut lines = Vec::with_capacity(steps.len());
    let mut failures = Vec::new();
    let mut waiting = Vec::with_capacity(steps.len());
    // Every Prepare goes out before any answer is awaited: the actors decide in parallel.
    for (slot, product_id, step) in steps {
        let handle = match ctx.product_handle(product_id).await {
            Ok(handle) => handle,
            Err(HandleError::UnknownProduct(_)) => {
                failures.push((slot, product_id, PrepareRefused::UnknownProduct));
                continue;
            }
            Err(HandleError::Unavailable(reason)) => {
                failures.push((slot, product_id, PrepareRefused::Unavailable(reason)));
                continue;
            }
            Err(elsewhere @ HandleError::Elsewhere(_)) => {
                failures.push((
                    slot,
                    product_id,
                    PrepareRefused::Unavailable(elsewhere.to_string()),
                ));
                continue;
            }
        };
        handle.touch(ctx.now_ms());
        let (reply, answer) = oneshot::channel();
        let message = ProductMsg::Prepare(Box::new(Prepare {
            order_id,
            step,
            reply,
        }));
        if handle.actor.cast(message).is_err() {
            ctx.forget_product(product_id, handle.actor.get_id());
            failures.push((
                slot,
                product_id,
                PrepareRefused::Unavailable("the product was restarting".into()),
            ));
            continue;
        }
        held.contacted.push(handle.actor.clone());
        waiting.push((slot, product_id, answer));
    }
    let deadline = tokio::time::Instant::now() + ctx.settings().request_timeout;
    for (slot, product_id, answer) in waiting {
        let refused = |why: &str| (slot, product_id, PrepareRefused::Unavailable(why.into()));
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(Ok(line))) => lines.push((slot, product_id, line)),
            Ok(Ok(Err(refusal))) => failures.push((slot, product_id, refusal)),
            Ok(Err(_)) => failures.push(refused("the product stopped")),
            Err(_) => failures.push(refused("the product did not answer in time")),
        }
    }
    (held, lines, failures)
}

impl HeldLines {
    /// Commits `ops` as one submission and settles every held line with the outcome. The
    /// settlement happens on the committer's task, so cancelling the caller cannot skip it.
    pub(crate) async fn commit(mut self, ctx: &Context, mut ops: Vec<WriteOp>) -> CommitOutcome {
        // Every line's shard lease rides along: the transaction moves all of their stock.
        for (product_id, _) in &self.lines {
            match ctx.fence_for(*product_id) {
                Fence::Unneeded => {}
                Fence::Lease(lease) => ops.push(WriteOp::Fence(lease)),
                // Held on another node, whose lease comes with its answer.
                Fence::NotOwned if self.held_by_peer(ctx.shard_of(*product_id)) => {}
                Fence::NotOwned => {
                    let moved = CommitOutcome::NotWritten(
                        format!("product {product_id}'s shard moved to another node").into(),
                    );
                    self.settle_with(&moved);
                    return moved;
                }
            }
        }
        for peer in &self.peers {
            ops.extend(peer.leases.iter().cloned().map(WriteOp::Fence));
        }
        if let Some(until_ms) = self.peers.iter().map(|peer| peer.until_ms).min() {
            // Too late to be worth trying: the batch would likely reach PostgreSQL after
            // the other node stopped waiting, and be refused there.
            if ctx.now_ms() + COMMIT_MARGIN_MS >= until_ms {
                let late = CommitOutcome::NotWritten(
                    "another node's hold on a line ended before the order was written".into(),
                );
                self.settle_with(&late);
                return late;
            }
            ops.push(WriteOp::HoldUntil(until_ms));
        }
        self.settled = true;
        let contacted = std::mem::take(&mut self.contacted);
        let peers = std::mem::take(&mut self.peers);
        let order_id = self.order_id;
        let node_channel = self.node_channel.clone();
        let (done, outcome) = oneshot::channel();
        ctx.committer().submit(ops, move |outcome| {
            settle(&contacted, order_id, &outcome);
            let told = tell_peers(node_channel, peers, order_id, &outcome);
            let _ = done.send((outcome, told));
        });
        let Ok((outcome, told)) = outcome.await else {
            return CommitOutcome::Unknown("the committer stopped".into());
        };
        // Lines held on other nodes move when those nodes hear the outcome: waiting for
        // them (bounded) lets the caller's next read, through any node, see them moved.
        if let Some(told) = told {
            let _ = tokio::time::timeout(PEERS_TOLD_WAIT, told).await;
        }
        outcome
    }

    /// Settles every line (here and on other nodes) with `outcome`, now.
    pub(crate) fn settle_with(mut self, outcome: &CommitOutcome) {
        self.settled = true;
        settle(&self.contacted, self.order_id, outcome);
        let peers = std::mem::take(&mut self.peers);
        tell_peers(self.node_channel.clone(), peers, self.order_id, outcome);
    }

    fn held_by_peer(&self, shard: u32) -> bool {
        self.peers.iter().any(|peer| peer.shard == shard)
    }
}

impl Drop for HeldLines {
    fn drop(&mut self) {
        if !self.settled {
            let not_written = CommitOutcome::NotWritten("the order was not placed".into());
            settle(&self.contacted, self.order_id, &not_written);
            let peers = std::mem::take(&mut self.peers);
            tell_peers(
                self.node_channel.clone(),
                peers,
                self.order_id,
                &not_written,
            );
        }
    }
}

fn settle(actors: &[ActorRef<ProductMsg>], order_id: OrderId, outcome: &CommitOutcome) {
    for actor in actors {
        // An actor that stopped lost its held line with its memory; its next incarnation
        // reads the store, which has the truth.
        let _ = actor.cast(ProductMsg::Settle(Box::new((order_id, outcome.clone()))));
    }
}
