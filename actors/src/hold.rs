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

use engine::stock::Line;
use engine::{OrderId, ProductId};
use persistence::{CommitOutcome, WriteOp};
use ractor::ActorRef;
use tokio::sync::oneshot;

use crate::context::Context;
use crate::ownership::Fence;
use crate::protocol::{HandleError, Prepare, PrepareRefused, PrepareStep, ProductMsg};

/// Lines prepared for one order, in the order they were asked for.
pub(crate) struct HeldLines {
    order_id: OrderId,
    /// Every actor a `Prepare` reached, refused or not: all of them hear the outcome.
    contacted: Vec<ActorRef<ProductMsg>>,
    pub lines: Vec<(ProductId, Line)>,
    settled: bool,
}

/// Asks each product to prepare its step for `order_id`. All lines held, or none (and the
/// refusals, by product, in the order asked).
pub(crate) async fn prepare(
    ctx: &Context,
    order_id: OrderId,
    steps: Vec<(ProductId, PrepareStep)>,
) -> Result<HeldLines, Vec<(ProductId, PrepareRefused)>> {
    let mut held = HeldLines {
        order_id,
        contacted: Vec::with_capacity(steps.len()),
        lines: Vec::with_capacity(steps.len()),
        settled: false,
    };
    let mut failures = Vec::new();
    let mut waiting = Vec::with_capacity(steps.len());
    // Every Prepare goes out before any answer is awaited: the actors decide in parallel.
    for (product_id, step) in steps {
        let handle = match ctx.product_handle(product_id).await {
            Ok(handle) => handle,
            Err(HandleError::UnknownProduct(_)) => {
                failures.push((product_id, PrepareRefused::UnknownProduct));
                continue;
            }
            Err(HandleError::Unavailable(reason)) => {
                failures.push((product_id, PrepareRefused::Unavailable(reason)));
                continue;
            }
            Err(elsewhere @ HandleError::Elsewhere(_)) => {
                failures.push((
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
                product_id,
                PrepareRefused::Unavailable("the product was restarting".into()),
            ));
            continue;
        }
        held.contacted.push(handle.actor.clone());
        waiting.push((product_id, answer));
    }
    let deadline = tokio::time::Instant::now() + ctx.settings().request_timeout;
    for (product_id, answer) in waiting {
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(Ok(line))) => held.lines.push((product_id, line)),
            Ok(Ok(Err(refused))) => failures.push((product_id, refused)),
            Ok(Err(_)) => failures.push((
                product_id,
                PrepareRefused::Unavailable("the product stopped".into()),
            )),
            Err(_) => failures.push((
                product_id,
                PrepareRefused::Unavailable("the product did not answer in time".into()),
            )),
        }
    }
    if failures.is_empty() {
        Ok(held)
    } else {
        // Dropping `held` settles every contacted actor as not written.
        Err(failures)
    }
}

impl HeldLines {
    /// Commits `ops` as one submission and settles every held line with the outcome. The
    /// settlement happens on the committer's task, so cancelling the caller cannot skip it.
    pub(crate) async fn commit(mut self, ctx: &Context, mut ops: Vec<WriteOp>) -> CommitOutcome {
        self.settled = true;
        let contacted = std::mem::take(&mut self.contacted);
        let order_id = self.order_id;
        // Every line's shard lease rides along: the transaction moves all of their stock.
        for (product_id, _) in &self.lines {
            match ctx.fence_for(*product_id) {
                Fence::Unneeded => {}
                Fence::Lease(lease) => ops.push(WriteOp::Fence(lease)),
                Fence::NotOwned => {
                    let moved = CommitOutcome::NotWritten(
                        format!("product {product_id}'s shard moved to another node").into(),
                    );
                    settle(&contacted, order_id, &moved);
                    return moved;
                }
            }
        }
        let (done, outcome) = oneshot::channel();
        ctx.committer().submit(ops, move |outcome| {
            settle(&contacted, order_id, &outcome);
            let _ = done.send(outcome);
        });
        outcome
            .await
            .unwrap_or_else(|_| CommitOutcome::Unknown("the committer stopped".into()))
    }
}

impl Drop for HeldLines {
    fn drop(&mut self) {
        if !self.settled {
            let not_written = CommitOutcome::NotWritten("the order was not placed".into());
            settle(&self.contacted, self.order_id, &not_written);
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
