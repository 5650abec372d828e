//! Rebuilding from the store after a commit whose outcome is unknown.

use std::mem;
use std::sync::Arc;

use engine::OrderId;
use persistence::ProductState;
use ractor::ActorRef;

use super::{ProductActorState, restore};
use crate::protocol::{BuyNowReply, ProductMsg, TransitionError, Unavailable};

impl ProductActorState {
    /// Stops deciding and rebuilds from the store. Everything not yet submitted is failed
    /// (nothing of it was written); what is with the committer finishes first (barrier).
    pub(super) fn start_recovery(&mut self, myself: &ActorRef<ProductMsg>) {
        if !self.recovering {
            self.recovering = true;
            let open = mem::take(&mut self.open);
            self.open.id = open.id;
            for (waiter, _) in open.placed {
                waiter.answer(BuyNowReply::Unavailable(Unavailable::Recovering));
            }
            for (waiter, _) in open.followers.duplicates {
                waiter.answer(BuyNowReply::Unavailable(Unavailable::Recovering));
            }
            for (order_id, _) in &open.followers.reserved {
                self.uncommitted.remove(order_id);
            }
            for transition in open.followers.transitions {
                let _ = transition.reply.send(Err(TransitionError::Unavailable(
                    "the product is recovering".into(),
                )));
            }
        }
        if !self.held.is_empty() {
            self.reload_deferred = true;
            return;
        }
        self.spawn_reload(myself);
    }

    /// Reads the product back once every write submitted so far has finished. One reload
    /// at a time: a second unknown outcome while one runs is covered by it (the actor
    /// submits nothing while recovering, so the reload's barrier is behind every write).
    pub(super) fn spawn_reload(&mut self, myself: &ActorRef<ProductMsg>) {
        if self.reload_in_flight {
            return;
        }
        self.reload_in_flight = true;
        let ctx = Arc::clone(&self.ctx);
        let product_id = self.product.id;
        let myself = myself.clone();
        tokio::spawn(async move {
            let reloaded = async {
                ctx.committer().barrier().await.map_err(|_| {
                    persistence::StoreError::Conflict("the committer stopped".into())
                })?;
                ctx.ledger()
                    .load_product(product_id, ctx.idempotency_horizon_ms())
                    .await
            }
            .await;
            let _ = myself.cast(ProductMsg::Reloaded(Box::new(reloaded)));
        });
    }

    pub(super) fn reloaded(
        &mut self,
        myself: &ActorRef<ProductMsg>,
        result: Result<Option<ProductState>, persistence::StoreError>,
    ) {
        assert!(self.recovering);
        assert!(self.reload_in_flight);
        self.reload_in_flight = false;
        let restored = match result {
            Ok(Some(state)) => restore(state, self.ctx.now_ms()),
            Ok(None) => Err("the product disappeared from the store".into()),
            Err(error) => Err(error.into()),
        };
        match restored {
            Ok((product, stock)) => {
                // Every batch submitted before the barrier reported before the reload.
                assert!(self.committing.is_empty());
                assert!(self.uncommitted.is_empty());
                assert!(self.held.is_empty());
                self.product = product;
                self.stock = stock;
                self.recovering = false;
                self.ctx.note_sale(&self.stock);
                tracing::info!(product_id = %self.product.id, "rebuilt from the store");
                self.mirror();
                // Orders whose commit outcome was unknown may exist after all: make sure
                // each reservation has its order actor and expiry timer.
                let reserved: Vec<OrderId> = self
                    .stock
                    .reserved_lines()
                    .map(|line| line.order_id)
                    .collect();
                self.ctx.ensure_order_actors(reserved);
            }
            Err(error) => {
                tracing::warn!(product_id = %self.product.id, %error, "reload failed; retrying");
                myself.send_after(self.ctx.settings().recovery_retry, || ProductMsg::Recover);
            }
        }
    }
}
