//! Lines of orders that span several products (`hold.rs` coordinates them): decided here
//! like a Buy Now, held until the order's one transaction has an outcome.

use engine::OrderId;
use engine::order::StockEffect;
use engine::stock::{ReserveOutcome, ReserveRequest};
use persistence::CommitOutcome;
use ractor::ActorRef;

use super::{PrepareKind, ProductActorState};
use crate::protocol::{Prepare, PrepareRefused, PrepareStep, ProductMsg};

impl ProductActorState {
    /// A line of a multi-product order: decided now like a Buy Now (or a confirm/release),
    /// held until [`Self::settle`] brings the outcome of the order's one transaction.
    pub(super) fn prepare(&mut self, prepare: Prepare) {
        let Prepare {
            order_id,
            step,
            reply,
        } = prepare;
        if self.recovering {
            let _ = reply.send(Err(PrepareRefused::Unavailable(
                "the product is recovering".into(),
            )));
            return;
        }
        if self.held.contains_key(&order_id) || self.uncommitted.contains_key(&order_id) {
            let _ = reply.send(Err(PrepareRefused::Unavailable(
                "the order is not settled yet".into(),
            )));
            return;
        }
        let result = match step {
            PrepareStep::Reserve {
                user_id,
                quantity,
                idempotency_key,
                now_ms,
                expires_at_ms,
            } => {
                let outcome = self.stock.reserve(ReserveRequest {
                    order_id,
                    user_id,
                    quantity,
                    idempotency_key,
                    now_ms,
                    expires_at_ms,
                });
                match outcome {
                    ReserveOutcome::Reserved(line) => {
                        self.held.insert(order_id, PrepareKind::Reserve);
                        Ok(line)
                    }
                    // The shop lets one checkout per user run at a time and looks its key
                    // up first, so this is an earlier attempt still settling.
                    ReserveOutcome::Duplicate(_) => Err(PrepareRefused::Unavailable(
                        "an earlier attempt with this key is still settling".into(),
                    )),
                    ReserveOutcome::Refused(refusal) => Err(PrepareRefused::Refused(refusal)),
                }
            }
            PrepareStep::Move(effect) => {
                let locked = match effect {
                    StockEffect::Confirm => self.stock.begin_confirm(order_id),
                    StockEffect::Release => self.stock.begin_release(order_id),
                    StockEffect::None => {
                        let _ = reply.send(Err(PrepareRefused::Unavailable(
                            "this transition moves no stock".into(),
                        )));
                        return;
                    }
                };
                match locked {
                    Ok(line) => {
                        let line = line.clone();
                        self.held.insert(order_id, PrepareKind::Move(effect));
                        Ok(line)
                    }
                    Err(error) => Err(PrepareRefused::Stock(error)),
                }
            }
        };
        if reply.send(result).is_err() && self.held.contains_key(&order_id) {
            // The coordinator is gone; it settles what it contacted (as not written) on
            // its way out, and that settlement is already queued behind this message.
            tracing::debug!(%order_id, "prepared a line nobody waits for");
        }
    }

    /// The outcome of a held line's transaction: finish it, undo it, or rebuild.
    pub(super) fn settle(
        &mut self,
        myself: &ActorRef<ProductMsg>,
        order_id: OrderId,
        outcome: CommitOutcome,
    ) {
        let Some(kind) = self.held.remove(&order_id) else {
            // Settlements of lines that were refused, or never reached us, change nothing.
            return;
        };
        if self.recovering {
            // The rebuild reads whatever the transaction did; start it once nothing is held.
            if self.reload_deferred && self.held.is_empty() {
                self.reload_deferred = false;
                self.spawn_reload(myself);
            }
            return;
        }
        match (&outcome, kind) {
            (CommitOutcome::Committed, PrepareKind::Reserve) => {
                let now = self.ctx.now_ms();
                let from_sale = self
                    .stock
                    .line(order_id)
                    .is_some_and(|line| line.sale_id.is_some());
                if from_sale {
                    self.note_stock_out(now);
                    if !self.open.ops.is_empty() {
                        self.schedule_flush(myself);
                    }
                }
                self.mirror();
            }
            (CommitOutcome::Committed, PrepareKind::Move(effect)) => {
                self.finish_transition_of(order_id, effect);
                self.mirror();
            }
            (CommitOutcome::NotWritten(_), PrepareKind::Reserve) => {
                self.stock.abort_reserve(order_id);
            }
            (CommitOutcome::NotWritten(_), PrepareKind::Move(effect)) => match effect {
                StockEffect::Confirm => self.stock.abort_confirm(order_id),
                StockEffect::Release => self.stock.abort_release(order_id),
                StockEffect::None => unreachable!("only stock moves are held"),
            },
            (CommitOutcome::Unknown(reason), _) => {
                tracing::warn!(product_id = %self.product.id, %order_id, %reason, "held line's commit outcome unknown; rebuilding from the store");
                self.start_recovery(myself);
            }
        }
        self.answer_drain_waiters();
    }
}
