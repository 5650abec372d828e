//! The stock of one product, and its flash-sale pool: the state machine every Buy Now goes
//! through.
//!
//! Counters always balance: `sold + reserved + left == initial` for the product, and
//! `sold + reserved + left + returned == initial` for its sale pool. Every mutating method
//! asserts them on the way out.
//!
//! Rules, in the order [`ProductStock::reserve`] applies them:
//! 1. A key this user already used for this product answers with the first order
//!    (`Duplicate`), or `KeyReused` if the quantity differs. Only accepted reservations are
//!    remembered: a refusal changed nothing, so deciding it again is harmless and lets a
//!    client that pressed too early retry with the same key once the sale starts.
//! 2. While the sale is live, only the sale pool sells, at the sale price, within the
//!    per-user limit. Regular stock waits: flash buyers never pay full price unknowingly.
//! 3. Otherwise regular stock (product stock minus the open pool) sells at the regular
//!    price. With none: `SaleNotStarted` before a sale, `SaleEnded` after one, else
//!    `OutOfStock`.
//! 4. When a sale ends, what is left of its pool goes back to regular stock.
//!
//! Durability is the caller's job, so the state machine is split in two directions:
//! - Handing stock out (reserve) takes effect at once and is undone with
//!   [`ProductStock::abort_reserve`] if it could not be made durable.
//! - Taking stock back or selling it (release, confirm) is two-phase: `begin_*` marks the
//!   line so nothing else can move it, `finish_*` applies the counters once durable. Stock
//!   is never offered again before the release that freed it is durable, so a crash can
//!   never leave more units promised than exist.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::flash_sale::{FlashSale, SalePhase};
use crate::ids::{IdempotencyKey, OrderId, ProductId, SaleId, UserId};
use crate::key_index::KeyIndex;
use crate::money::Money;
use crate::product::{Invalid, STOCK_MAX};
use crate::refusal::Refusal;
use crate::split_map::SplitMap;

/// Units of one product. `sold + reserved + left == initial`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StockCounters {
    /// Every unit ever stocked (creation plus restocks).
    pub initial: u64,
    /// Held by orders waiting for payment.
    pub reserved: u64,
    /// Paid for.
    pub sold: u64,
    /// On the shelf.
    pub left: u64,
}

impl StockCounters {
    fn assert_balanced(&self) {
        assert_eq!(
            self.sold + self.reserved + self.left,
            self.initial,
            "stock counters out of balance: {self:?}"
        );
    }
}

/// Units of a sale pool. `sold + reserved + left + returned == initial`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SaleCounters {
    pub initial: u64,
    pub reserved: u64,
    pub sold: u64,
    pub left: u64,
    /// Units that went back to regular stock when the sale ended.
    pub returned: u64,
}

impl SaleCounters {
    fn assert_balanced(&self) {
        assert_eq!(
            self.sold + self.reserved + self.left + self.returned,
            self.initial,
            "sale counters out of balance: {self:?}"
        );
    }
}

#[derive(Clone, Debug)]
struct SalePool {
    sale: FlashSale,
    counters: SaleCounters,
    /// The sale ended and its leftover went back to regular stock.
    closed: bool,
    /// Units each user holds from this sale (reserved or sold), for the per-user limit.
    held_by_user: SplitMap<UserId, u32>,
}

impl SalePool {
    fn open_left(&self) -> u64 {
        if self.closed { 0 } else { self.counters.left }
    }
}

/// Where one order's units are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineState {
    Reserved,
    /// Payment accepted; waiting for the confirmation to be durable.
    Confirming,
    Sold,
    /// Cancelled or expired; waiting for the release to be durable.
    Releasing,
    Released,
}

/// One order's claim on this product's stock, as remembered by the state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub order_id: OrderId,
    pub user_id: UserId,
    #[serde(deserialize_with = "IdempotencyKey::deserialize_stored")]
    pub idempotency_key: IdempotencyKey,
    pub quantity: u32,
    pub unit_price: Money,
    pub sale_id: Option<SaleId>,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub state: LineState,
}

/// A Buy Now as the state machine sees it.
#[derive(Clone, Debug)]
pub struct ReserveRequest {
    /// The id the order gets if it is reserved; made by the caller.
    pub order_id: OrderId,
    pub user_id: UserId,
    pub quantity: u32,
    pub idempotency_key: IdempotencyKey,
    pub now_ms: u64,
    pub expires_at_ms: u64,
}

/// The answer to a Buy Now. Every expected business outcome is a value, not an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReserveOutcome {
    Reserved(Line),
    /// The key was used before; this is the first order, in its current state.
    Duplicate(Line),
    Refused(Refusal),
}

/// Why a confirm or release cannot start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum LineError {
    #[error("no order {0} holds stock of this product")]
    UnknownOrder(OrderId),
    #[error("order {order_id} is {state:?}, not reserved")]
    NotReserved { order_id: OrderId, state: LineState },
}

/// Why a sale cannot be scheduled, cancelled or moved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SaleRefused {
    #[error("sale {0} of this product is not over yet")]
    AnotherSaleActive(SaleId),
    #[error("the sale wants {wanted} units but only {available} are on the shelf")]
    NotEnoughStock { wanted: u64, available: u64 },
    #[error("sale {0} is not this product's current sale")]
    NotCurrent(SaleId),
    #[error("sale {0} is over")]
    Over(SaleId),
    #[error("sale {0} has started: only a sale that has not started can be moved")]
    Started(SaleId),
}

/// What a product's inventory looks like from outside.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Inventory {
    pub product_id: ProductId,
    pub counters: StockCounters,
    /// Units anyone can buy right now at the regular price.
    pub regular_available: u64,
    pub sale: Option<SaleInventory>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SaleInventory {
    pub sale: FlashSale,
    pub phase: SalePhase,
    pub counters: SaleCounters,
}

/// The effect of setting the shelf to a number of units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StockPlan {
    pub initial: u64,
    pub shelf_change: i64,
}

/// What a restart reads back from the store to rebuild a product's stock.
#[derive(Clone, Debug, Default)]
pub struct StockSnapshot {
    pub initial: u64,
    /// Units of orders that were paid (or went further), whether or not listed in `lines`.
    pub sold: u64,
    pub sale: Option<SaleSnapshot>,
    /// Every order still holding a reservation, plus recent settled ones (so their
    /// idempotency keys keep answering). Only `Reserved`, `Sold` and `Released` appear.
    pub lines: Vec<Line>,
}

#[derive(Clone, Debug)]
pub struct SaleSnapshot {
    pub sale: FlashSale,
    /// Units of this sale that were paid for.
    pub sold: u64,
    /// Units each user holds from this sale, reserved or sold.
    pub held_by_user: HashMap<UserId, u32>,
}

/// The snapshot contradicts itself: more units promised than exist.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("inconsistent stock snapshot of product {product_id}: {problem}")]
pub struct CorruptSnapshot {
    pub product_id: ProductId,
    pub problem: String,
}

#[derive(Clone, Debug)]
pub struct ProductStock {
    product_id: ProductId,
    price: Money,
    counters: StockCounters,
    sale: Option<SalePool>,
    /// Every line of the product, by order. Split in parts once it is large, so that
    /// growing it never stalls the actor (see `split_map`).
    lines: SplitMap<OrderId, Line>,
    keys: KeyIndex,
}

impl ProductStock {
    pub fn new(product_id: ProductId, price: Money, initial: u64) -> Self {
        assert!(initial <= STOCK_MAX);
        Self {
            product_id,
            price,
            counters: StockCounters {
                initial,
                left: initial,
                ..StockCounters::default()
            },
            sale: None,
            lines: SplitMap::new(),
            keys: KeyIndex::default(),
        }
    }

    pub fn product_id(&self) -> ProductId {
        self.product_id
    }

    pub fn price(&self) -> Money {
        self.price
    }

    pub fn counters(&self) -> StockCounters {
        self.counters
    }

    pub fn line(&self, order_id: OrderId) -> Option<&Line> {
        self.lines.get(&order_id)
    }

    /// The lines still holding a reservation, for restarting their expiry timers.
    pub fn reserved_lines(&self) -> impl Iterator<Item = &Line> {
        self.lines
            .values()
            .filter(|line| line.state == LineState::Reserved)
    }

    pub fn current_sale(&self) -> Option<&FlashSale> {
        self.sale.as_ref().map(|pool| &pool.sale)
    }

    /// Units sellable at the regular price: everything on the shelf but the open pool.
    pub fn regular_available(&self) -> u64 {
        let pool_left = self.sale.as_ref().map_or(0, SalePool::open_left);
        assert!(pool_left <= self.counters.left);
        self.counters.left - pool_left
    }

    pub fn inventory(&self, now_ms: u64) -> Inventory {
        Inventory {
            product_id: self.product_id,
            counters: self.counters,
            regular_available: self.regular_available(),
            sale: self.sale.as_ref().map(|pool| SaleInventory {
                sale: pool.sale.clone(),
                phase: pool.sale.phase(now_ms),
                counters: pool.counters,
            }),
        }
    }

    /// Applies the passage of time: a sale that has ended gives its leftover back.
    /// Every decision calls this first, so callers never need a timer for it.
    pub fn settle(&mut self, now_ms: u64) {
        let Some(pool) = self.sale.as_mut() else {
            return;
        };
        if pool.closed || pool.sale.phase(now_ms) != SalePhase::Ended {
            return;
        }
        pool.counters.returned += pool.counters.left;
        pool.counters.left = 0;
        pool.closed = true;
        pool.counters.assert_balanced();
    }

    /// Decides one Buy Now. A `Reserved` outcome has already moved the counters; undo it
    /// with [`Self::abort_reserve`] if the order could not be stored.
    pub fn reserve(&mut self, request: ReserveRequest) -> ReserveOutcome {
        assert!(request.quantity > 0, "the gateway refuses zero quantities");
        assert!(request.quantity <= crate::order::QUANTITY_MAX);
        assert!(
            !self.lines.contains_key(&request.order_id),
            "order ids are fresh"
        );
        self.settle(request.now_ms);

        if let Some(order_id) =
            self.keys
                .get(request.user_id, &request.idempotency_key, &self.lines)
        {
            let line = &self.lines[&order_id];
            if line.quantity != request.quantity {
                return ReserveOutcome::Refused(Refusal::KeyReused);
            }
            return ReserveOutcome::Duplicate(line.clone());
        }

        let (unit_price, sale_id) = match self.decide_source(&request) {
            Ok(source) => source,
            Err(refusal) => return ReserveOutcome::Refused(refusal),
        };
        let quantity = u64::from(request.quantity);
        if let Some(sale_id) = sale_id {
            let pool = self
                .sale
                .as_mut()
                .expect("decide_source chose the open pool");
            assert_eq!(pool.sale.id, sale_id);
            pool.counters.left -= quantity;
            pool.counters.reserved += quantity;
            *pool.held_by_user.entry(request.user_id).or_insert(0) += request.quantity;
        }
        self.counters.left -= quantity;
        self.counters.reserved += quantity;

        let line = Line {
            order_id: request.order_id,
            user_id: request.user_id,
            idempotency_key: request.idempotency_key,
            quantity: request.quantity,
            unit_price,
            sale_id,
            created_at_ms: request.now_ms,
            expires_at_ms: request.expires_at_ms,
            state: LineState::Reserved,
        };
        self.lines.insert(line.order_id, line.clone());
        let indexed = self.keys.insert(
            line.user_id,
            &line.idempotency_key,
            line.order_id,
            &self.lines,
        );
        assert!(indexed, "a fresh key was looked up just before");
        self.assert_invariants();
        ReserveOutcome::Reserved(line)
    }

    /// Where the units of a request come from, and at what price; or the refusal.
    fn decide_source(&self, request: &ReserveRequest) -> Result<(Money, Option<SaleId>), Refusal> {
        let quantity = u64::from(request.quantity);
        if let Some(pool) = &self.sale
            && pool.sale.phase(request.now_ms) == SalePhase::Live
        {
            let held = pool
                .held_by_user
                .get(&request.user_id)
                .copied()
                .unwrap_or(0);
            if u64::from(held) + quantity > u64::from(pool.sale.per_user_limit) {
                return Err(Refusal::LimitExceeded {
                    limit: pool.sale.per_user_limit,
                    held,
                });
            }
            if pool.counters.left < quantity {
                return Err(Refusal::OutOfStock {
                    left: pool.counters.left,
                });
            }
            return Ok((pool.sale.sale_price, Some(pool.sale.id)));
        }
        let available = self.regular_available();
        if available >= quantity {
            return Ok((self.price, None));
        }
        if available == 0
            && let Some(pool) = &self.sale
        {
            match pool.sale.phase(request.now_ms) {
                SalePhase::Scheduled => {
                    return Err(Refusal::SaleNotStarted {
                        starts_at_ms: pool.sale.start_ms,
                    });
                }
                SalePhase::Ended => {
                    let ended_at_ms = pool.sale.ended_at_ms().expect("an ended sale has an end");
                    return Err(Refusal::SaleEnded { ended_at_ms });
                }
                SalePhase::Live => unreachable!("a live sale was handled above"),
            }
        }
        Err(Refusal::OutOfStock { left: available })
    }

    /// Undoes a reservation that could not be made durable: the units go back and the key
    /// is forgotten, as if the request had never come.
    pub fn abort_reserve(&mut self, order_id: OrderId) {
        let line = self.lines.remove(&order_id).expect("abort of a known line");
        assert_eq!(
            line.state,
            LineState::Reserved,
            "only fresh reservations abort"
        );
        self.keys
            .remove(line.user_id, &line.idempotency_key, line.order_id);
        self.return_units(&line);
        self.assert_invariants();
    }

    /// Payment accepted: the line is locked until [`Self::finish_confirm`].
    pub fn begin_confirm(&mut self, order_id: OrderId) -> Result<&Line, LineError> {
        self.lock_line(order_id, LineState::Confirming)
    }

    pub fn finish_confirm(&mut self, order_id: OrderId) {
        let line = self.unlock_line(order_id, LineState::Confirming, LineState::Sold);
        let quantity = u64::from(line.quantity);
        let sale_id = line.sale_id;
        if let Some(pool) = self.pool_of_mut(sale_id) {
            pool.counters.reserved -= quantity;
            pool.counters.sold += quantity;
        }
        self.counters.reserved -= quantity;
        self.counters.sold += quantity;
        self.assert_invariants();
    }

    pub fn abort_confirm(&mut self, order_id: OrderId) {
        self.unlock_line(order_id, LineState::Confirming, LineState::Reserved);
    }

    /// Cancelled or expired: the line is locked until [`Self::finish_release`], and its
    /// units are not offered again before then.
    pub fn begin_release(&mut self, order_id: OrderId) -> Result<&Line, LineError> {
        self.lock_line(order_id, LineState::Releasing)
    }

    pub fn finish_release(&mut self, order_id: OrderId, now_ms: u64) {
        self.settle(now_ms);
        let line = self
            .unlock_line(order_id, LineState::Releasing, LineState::Released)
            .clone();
        self.return_units(&line);
        self.assert_invariants();
    }

    pub fn abort_release(&mut self, order_id: OrderId) {
        self.unlock_line(order_id, LineState::Releasing, LineState::Reserved);
    }

    fn lock_line(&mut self, order_id: OrderId, to: LineState) -> Result<&Line, LineError> {
        let line = self
            .lines
            .get_mut(&order_id)
            .ok_or(LineError::UnknownOrder(order_id))?;
        if line.state != LineState::Reserved {
            return Err(LineError::NotReserved {
                order_id,
                state: line.state,
            });
        }
        line.state = to;
        Ok(line)
    }

    fn unlock_line(&mut self, order_id: OrderId, from: LineState, to: LineState) -> &Line {
        let line = self
            .lines
            .get_mut(&order_id)
            .expect("unlock of a known line");
        assert_eq!(line.state, from, "line {order_id} moved while locked");
        line.state = to;
        line
    }

    /// Puts a line's reserved units back on the shelf: into the pool while it is open,
    /// into regular stock otherwise.
    fn return_units(&mut self, line: &Line) {
        let quantity = u64::from(line.quantity);
        if let Some(pool) = self.pool_of_mut(line.sale_id) {
            pool.counters.reserved -= quantity;
            if pool.closed {
                pool.counters.returned += quantity;
            } else {
                pool.counters.left += quantity;
            }
            let held = pool
                .held_by_user
                .get_mut(&line.user_id)
                .expect("a sale line's user holds units");
            *held -= line.quantity;
            if *held == 0 {
                pool.held_by_user.remove(&line.user_id);
            }
        }
        self.counters.reserved -= quantity;
        self.counters.left += quantity;
    }

    /// The pool a line came from, if it is still the current one. Lines of an earlier,
    /// replaced sale only touch the product's counters.
    fn pool_of_mut(&mut self, sale_id: Option<SaleId>) -> Option<&mut SalePool> {
        let sale_id = sale_id?;
        self.sale.as_mut().filter(|pool| pool.sale.id == sale_id)
    }

    /// Whether `sale` could be scheduled now; [`Self::schedule_sale`] applies it.
    pub fn check_schedule_sale(&self, sale: &FlashSale, now_ms: u64) -> Result<(), SaleRefused> {
        assert_eq!(sale.product_id, self.product_id);
        if let Some(pool) = &self.sale {
            let over = pool.closed || pool.sale.phase(now_ms) == SalePhase::Ended;
            if !over {
                return Err(SaleRefused::AnotherSaleActive(pool.sale.id));
            }
        }
        // Any pool left is over, so it no longer carves anything out of the shelf.
        let available = self.counters.left;
        if sale.stock > available {
            return Err(SaleRefused::NotEnoughStock {
                wanted: sale.stock,
                available,
            });
        }
        Ok(())
    }

    /// Carves the sale's pool out of the shelf, replacing an earlier sale that is over.
    pub fn schedule_sale(&mut self, sale: FlashSale, now_ms: u64) -> Result<(), SaleRefused> {
        self.settle(now_ms);
        self.check_schedule_sale(&sale, now_ms)?;
        let counters = SaleCounters {
            initial: sale.stock,
            left: sale.stock,
            ..SaleCounters::default()
        };
        self.sale = Some(SalePool {
            sale,
            counters,
            closed: false,
            held_by_user: SplitMap::new(),
        });
        self.settle(now_ms);
        self.assert_invariants();
        Ok(())
    }

    /// The current sale `sale_id` as it is once cancelled at `now_ms`: it ends now (a sale
    /// not started yet never starts). Units it sold stay sold and its reservations run
    /// their course; its leftover goes back to the shelf. [`Self::change_sale`] applies it.
    pub fn check_cancel_sale(
        &self,
        sale_id: SaleId,
        now_ms: u64,
    ) -> Result<FlashSale, SaleRefused> {
        let sale = self.open_sale(sale_id, now_ms)?;
        Ok(FlashSale {
            cancelled_at_ms: Some(now_ms),
            ..sale.clone()
        })
    }

    /// Whether the current sale `sale_id` may move to `moved`'s window (same sale, another
    /// start and end): only while it has not started, so nobody holds any of its units.
    pub fn check_move_sale(&self, moved: &FlashSale, now_ms: u64) -> Result<(), SaleRefused> {
        let sale = self.open_sale(moved.id, now_ms)?;
        if sale.phase(now_ms) != SalePhase::Scheduled {
            return Err(SaleRefused::Started(moved.id));
        }
        assert_eq!(
            (sale.product_id, sale.stock, sale.per_user_limit),
            (moved.product_id, moved.stock, moved.per_user_limit),
            "only the window moves"
        );
        Ok(())
    }

    /// The current sale, if it is `sale_id` and not over.
    fn open_sale(&self, sale_id: SaleId, now_ms: u64) -> Result<&FlashSale, SaleRefused> {
        let pool = self
            .sale
            .as_ref()
            .filter(|pool| pool.sale.id == sale_id)
            .ok_or(SaleRefused::NotCurrent(sale_id))?;
        if pool.closed || pool.sale.phase(now_ms) == SalePhase::Ended {
            return Err(SaleRefused::Over(sale_id));
        }
        Ok(&pool.sale)
    }

    /// Applies a cancellation ([`Self::check_cancel_sale`]) or a move
    /// ([`Self::check_move_sale`]) checked with nothing else touching this stock since
    /// (the product actor holds it while the change commits): the pool keeps its counters
    /// under the new window, and a window that ended gives the leftover back.
    pub fn change_sale(&mut self, changed: FlashSale, now_ms: u64) {
        let pool = self.sale.as_mut().expect("checked: a current sale");
        assert_eq!(pool.sale.id, changed.id, "checked: the current sale");
        assert!(!pool.closed, "checked: not over");
        if pool.sale.start_ms != changed.start_ms {
            // Only a sale that had not started moves its start: nobody holds its units.
            assert_eq!(pool.counters.reserved + pool.counters.sold, 0);
        }
        pool.sale = changed;
        self.settle(now_ms);
        self.assert_invariants();
    }

    /// What [`Self::set_left`] would do, without doing it: the new `initial` and the change
    /// of units on the shelf. The shelf cannot drop below the open sale pool.
    pub fn plan_set_left(&self, left: u64, now_ms: u64) -> Result<StockPlan, Invalid> {
        let pool_left = self
            .sale
            .as_ref()
            .filter(|pool| pool.sale.phase(now_ms) != SalePhase::Ended)
            .map_or(0, SalePool::open_left);
        if left < pool_left {
            return Err(Invalid::new(
                "stock",
                format!("must be at least the {pool_left} units of the open flash sale"),
            ));
        }
        let initial = self.counters.initial - self.counters.left + left;
        if initial > STOCK_MAX {
            return Err(Invalid::new(
                "stock",
                format!("would take the product past {STOCK_MAX} units"),
            ));
        }
        let shelf_change = i64::try_from(left).expect("bounded by STOCK_MAX")
            - i64::try_from(self.counters.left).expect("bounded by STOCK_MAX");
        Ok(StockPlan {
            initial,
            shelf_change,
        })
    }

    /// Restock or write-down: sets the units on the shelf (pool included) and returns the
    /// change of units on the shelf.
    pub fn set_left(&mut self, left: u64, now_ms: u64) -> Result<i64, Invalid> {
        self.settle(now_ms);
        let plan = self.plan_set_left(left, now_ms)?;
        self.counters.initial = plan.initial;
        self.counters.left = left;
        self.assert_invariants();
        Ok(plan.shelf_change)
    }

    pub fn set_price(&mut self, price: Money) {
        self.price = price;
    }

    /// Forgets settled lines created before `cutoff_ms`: their idempotency keys stop
    /// answering, which bounds memory. Reserved lines are never forgotten.
    pub fn forget_settled_before(&mut self, cutoff_ms: u64) -> usize {
        let before = self.lines.len();
        let keys = &mut self.keys;
        self.lines.retain(|_, line| {
            let settled = matches!(line.state, LineState::Sold | LineState::Released);
            let keep = !settled || line.created_at_ms >= cutoff_ms;
            if !keep {
                keys.remove(line.user_id, &line.idempotency_key, line.order_id);
            }
            keep
        });
        assert_eq!(self.lines.len(), self.keys.len());
        before - self.lines.len()
    }

    /// What the store would give back for this stock: the input of [`Self::restore`].
    /// Lines still moving (confirming, releasing) are reserved there, since their change
    /// is not durable yet.
    pub fn snapshot(&self) -> StockSnapshot {
        let lines = self
            .lines
            .values()
            .map(|line| {
                let state = match line.state {
                    LineState::Confirming | LineState::Releasing => LineState::Reserved,
                    other => other,
                };
                Line {
                    state,
                    ..line.clone()
                }
            })
            .collect();
        StockSnapshot {
            initial: self.counters.initial,
            sold: self.counters.sold,
            sale: self.sale.as_ref().map(|pool| SaleSnapshot {
                sale: pool.sale.clone(),
                sold: pool.counters.sold,
                held_by_user: pool
                    .held_by_user
                    .iter()
                    .map(|(user, held)| (*user, *held))
                    .collect(),
            }),
            lines,
        }
    }

    /// Rebuilds a product's stock from what the store holds. Counters are derived from the
    /// orders, never trusted from a cache.
    pub fn restore(
        product_id: ProductId,
        price: Money,
        snapshot: StockSnapshot,
        now_ms: u64,
    ) -> Result<Self, CorruptSnapshot> {
        let corrupt = |problem: String| CorruptSnapshot {
            product_id,
            problem,
        };
        let mut stock = ProductStock::new(product_id, price, 0);
        let mut reserved: u64 = 0;
        let mut sale_reserved: u64 = 0;
        let current_sale_id = snapshot.sale.as_ref().map(|s| s.sale.id);
        for line in snapshot.lines {
            match line.state {
                LineState::Reserved => {
                    reserved += u64::from(line.quantity);
                    if line.sale_id.is_some() && line.sale_id == current_sale_id {
                        sale_reserved += u64::from(line.quantity);
                    }
                }
                LineState::Sold | LineState::Released => {}
                LineState::Confirming | LineState::Releasing => {
                    return Err(corrupt(format!(
                        "order {} is in the transient state {:?}",
                        line.order_id, line.state
                    )));
                }
            }
            let (user, key, order_id) = (line.user_id, line.idempotency_key.clone(), line.order_id);
            stock.lines.insert(order_id, line);
            if !stock.keys.insert(user, &key, order_id, &stock.lines) {
                return Err(corrupt("two orders share an idempotency key".into()));
            }
        }
        let promised = snapshot.sold + reserved;
        if promised > snapshot.initial {
            return Err(corrupt(format!(
                "{promised} units sold or reserved out of {}",
                snapshot.initial
            )));
        }
        stock.counters = StockCounters {
            initial: snapshot.initial,
            reserved,
            sold: snapshot.sold,
            left: snapshot.initial - promised,
        };
        if let Some(sale) = snapshot.sale {
            let promised = sale.sold + sale_reserved;
            if promised > sale.sale.stock {
                return Err(corrupt(format!(
                    "{promised} sale units sold or reserved out of {}",
                    sale.sale.stock
                )));
            }
            let left = sale.sale.stock - promised;
            // An ended sale gave its leftover back to the shelf, where anyone may have
            // bought it since: only an open pool must still fit on the shelf. (`settle`
            // below closes an ended one.)
            let ended = sale.sale.phase(now_ms) == SalePhase::Ended;
            if !ended && left > stock.counters.left {
                return Err(corrupt(format!(
                    "the sale pool holds {left} units but the shelf only {}",
                    stock.counters.left
                )));
            }
            stock.sale = Some(SalePool {
                counters: SaleCounters {
                    initial: sale.sale.stock,
                    reserved: sale_reserved,
                    sold: sale.sold,
                    left,
                    returned: 0,
                },
                sale: sale.sale,
                closed: false,
                held_by_user: sale.held_by_user.into_iter().collect(),
            });
        }
        stock.settle(now_ms);
        stock.assert_invariants();
        Ok(stock)
    }

    fn assert_invariants(&self) {
        self.counters.assert_balanced();
        if let Some(pool) = &self.sale {
            pool.counters.assert_balanced();
            assert!(pool.counters.reserved <= self.counters.reserved);
            assert!(pool.counters.sold <= self.counters.sold);
            assert!(pool.open_left() <= self.counters.left);
            assert!(!pool.closed || pool.counters.left == 0);
            // Settled lines may have been forgotten (or never loaded after a restart), so
            // memory sees at most what the users hold.
            debug_assert!(
                pool.held_by_user
                    .values()
                    .map(|held| u64::from(*held))
                    .sum::<u64>()
                    >= self
                        .lines
                        .values()
                        .filter(|line| line.sale_id == Some(pool.sale.id))
                        .filter(|line| line.state != LineState::Released)
                        .map(|line| u64::from(line.quantity))
                        .sum::<u64>(),
                "per-user holdings miss some lines"
            );
        }
        debug_assert_eq!(
            self.lines
                .values()
                .filter(|line| matches!(
                    line.state,
                    LineState::Reserved | LineState::Confirming | LineState::Releasing
                ))
                .map(|line| u64::from(line.quantity))
                .sum::<u64>(),
            self.counters.reserved,
            "reserved counter disagrees with the lines"
        );
    }
}
