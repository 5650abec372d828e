//! Admin changes of a product (its record, its stock, a sale): rare, so each waits for
//! its own commit while the actor waits too.

use engine::stock::SaleRefused;
use engine::{FlashSale, Product};
use persistence::{CommitOutcome, WriteOp};
use ractor::ActorRef;

use super::ProductActorState;
use crate::error::AdminError;
use crate::ownership::Fence;
use crate::protocol::{ProductMsg, ProductUpdate, SaleChange};

impl ProductActorState {
    /// Commits `ops` through the committer and waits, blocking this actor meanwhile: admin
    /// changes are rare, and nothing else may change the stock between the check that
    /// allowed them and their application.
    pub(super) async fn commit_now(
        &mut self,
        myself: &ActorRef<ProductMsg>,
        mut ops: Vec<WriteOp>,
    ) -> Result<(), AdminError> {
        match self.ctx.fence_for(self.product.id) {
            Fence::Unneeded => {}
            Fence::Lease(lease) => ops.push(WriteOp::Fence(lease)),
            Fence::NotOwned => {
                return Err(AdminError::Unavailable(
                    "the product's shard moved to another node".into(),
                ));
            }
        }
        let (done, outcome) = tokio::sync::oneshot::channel();
        self.ctx.committer().submit(ops, move |outcome| {
            let _ = done.send(outcome);
        });
        let outcome = outcome
            .await
            .unwrap_or_else(|_| CommitOutcome::Unknown("the committer stopped".into()));
        match outcome {
            CommitOutcome::Committed => Ok(()),
            CommitOutcome::NotWritten(reason) => Err(AdminError::Unavailable(reason.to_string())),
            CommitOutcome::Unknown(reason) => {
                self.start_recovery(myself);
                Err(AdminError::Unavailable(reason.to_string()))
            }
        }
    }

    pub(super) async fn update(
        &mut self,
        myself: &ActorRef<ProductMsg>,
        update: ProductUpdate,
    ) -> Result<Product, AdminError> {
        if self.recovering {
            return Err(AdminError::Unavailable("the product is recovering".into()));
        }
        let now = self.ctx.now_ms();
        let product = update
            .edit
            .applied_to(&self.product)
            .validate(self.product.id)?;
        let plan = match update.stock {
            Some(left) => {
                engine::product::check_stock("stock", left)?;
                Some((left, self.stock.plan_set_left(left, now)?))
            }
            None => None,
        };
        let counters = self.stock.counters();
        self.commit_now(
            myself,
            vec![WriteOp::PutProduct {
                product: product.clone(),
                stock_initial: plan.map_or(counters.initial, |(_, plan)| plan.initial),
                shelf_change: plan.map_or(0, |(_, plan)| plan.shelf_change),
                at_ms: now,
            }],
        )
        .await?;
        if let Some((left, _)) = plan {
            self.stock
                .set_left(left, self.ctx.now_ms())
                .expect("planned while this actor was blocked");
        }
        self.stock.set_price(product.price);
        self.product = product.clone();
        self.ctx.catalog().put(product.clone());
        self.mirror();
        Ok(product)
    }

    pub(super) async fn schedule_sale(
        &mut self,
        myself: &ActorRef<ProductMsg>,
        sale: FlashSale,
    ) -> Result<FlashSale, AdminError> {
        if self.recovering {
            return Err(AdminError::Unavailable("the product is recovering".into()));
        }
        let now = self.ctx.now_ms();
        self.stock.check_schedule_sale(&sale, now)?;
        self.commit_now(
            myself,
            vec![
                WriteOp::PutSale {
                    sale: sale.clone(),
                    at_ms: now,
                },
                WriteOp::Emit(crate::events::flash_sale_scheduled(
                    &sale,
                    &self.product.title,
                    now,
                )),
            ],
        )
        .await?;
        self.stock_out_announced = None;
        self.stock
            .schedule_sale(sale.clone(), self.ctx.now_ms())
            .expect("checked while this actor was blocked");
        self.ctx.note_sale(&self.stock);
        self.mirror();
        Ok(sale)
    }

    /// Cancels the current sale or moves it, as the stock allows
    /// ([`engine::ProductStock::check_cancel_sale`], [`engine::ProductStock::check_move_sale`]),
    /// with its event (`flash_sale_cancelled`, `flash_sale_rescheduled`: the sale's
    /// campaign stops or follows) in the same commit.
    pub(super) async fn change_sale(
        &mut self,
        myself: &ActorRef<ProductMsg>,
        change: SaleChange,
    ) -> Result<FlashSale, AdminError> {
        if self.recovering {
            return Err(AdminError::Unavailable("the product is recovering".into()));
        }
        let now = self.ctx.now_ms();
        let (changed, event) = match change {
            SaleChange::Cancel(sale_id) => {
                let cancelled = self.stock.check_cancel_sale(sale_id, now)?;
                let event = crate::events::flash_sale_cancelled(&cancelled, now);
                (cancelled, event)
            }
            SaleChange::Move {
                sale_id,
                start_ms,
                end_ms,
            } => {
                let current = self
                    .stock
                    .current_sale()
                    .filter(|sale| sale.id == sale_id)
                    .ok_or(SaleRefused::NotCurrent(sale_id))?;
                let previous_start_ms = current.start_ms;
                let moved = current.moved_to(start_ms, end_ms, now)?;
                self.stock.check_move_sale(&moved, now)?;
                let event = crate::events::flash_sale_rescheduled(
                    &moved,
                    &self.product.title,
                    previous_start_ms,
                    now,
                );
                (moved, event)
            }
        };
        self.commit_now(
            myself,
            vec![
                WriteOp::ChangeSale {
                    sale: changed.clone(),
                    at_ms: now,
                },
                WriteOp::Emit(event),
            ],
        )
        .await?;
        self.stock.change_sale(changed.clone(), self.ctx.now_ms());
        self.ctx.note_sale(&self.stock);
        self.mirror();
        Ok(changed)
    }
}
