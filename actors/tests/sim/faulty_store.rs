//! A real database behind a switchboard the simulator operates.
//!
//! Every call the shop makes to its stores (the ledger's commits and reads, order lookups,
//! carts, the catalog) is parked on the [`Board`] instead of running. The simulator takes
//! parked calls one at a time, when nothing else in the process can run, and decides each
//! one's fate: run it, fail it before it writes, fail it after it wrote (the caller cannot
//! tell the two apart: "outcome unknown"), or leave it parked a while (a stall). So the
//! database work of the shop happens in an order the seed decides, and a seed replays.
//!
//! A crash moves the board to a new generation: calls of the dead process are refused at
//! once, and the ones it left parked are decided as a crash would (a commit may or may
//! not have reached the disk).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use engine::order::Order;
use engine::{IdempotencyKey, OrderId, Product, ProductId, UserId};
use persistence::{
    CartChange, CartItem, CartStore, CatalogChanges, CatalogStore, Database, IdHighWater,
    InventoryLevel, OrderLedger, OrderLookup, ProductState, StoreError, UntouchedCart, WriteOp,
};
use tokio::sync::oneshot;

/// What the simulator does with a parked call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Run,
    /// Refused before anything was written.
    FailBeforeWriting,
    /// Written, then reported as failed: the caller learns nothing of the outcome.
    FailAfterWriting,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Commit,
    Read,
}

/// Answers the caller of a call that ran. Called on the simulated runtime (not where the
/// database work ran), so the caller wakes up in an order the simulation decides.
pub type Deliver = Box<dyn FnOnce() + Send>;

type Run = Box<dyn FnOnce(Fate) -> Pin<Box<dyn Future<Output = Deliver> + Send>> + Send>;

pub struct Parked {
    pub kind: Kind,
    pub generation: u64,
    /// What the call is, for the trace.
    pub label: String,
    /// The first pump at which it may be decided (a stall pushes it later).
    pub not_before: u64,
    pub decided: bool,
    run: Run,
}

impl Parked {
    /// Runs the call's database work with `fate`; the caller (if it still waits) is
    /// answered by calling what this returns.
    pub fn execute(self, fate: Fate) -> Pin<Box<dyn Future<Output = Deliver> + Send>> {
        (self.run)(fate)
    }
}

#[derive(Default)]
struct BoardState {
    parked: VecDeque<Parked>,
    generation: u64,
}

/// Where calls wait for the simulator.
#[derive(Clone, Default)]
pub struct Board {
    state: Arc<Mutex<BoardState>>,
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, BoardState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// The process died: its calls are refused from now on. Returns what it left parked.
    pub fn crash(&self) -> Vec<Parked> {
        let mut state = self.lock();
        state.generation += 1;
        let live = state.generation;
        let (dead, alive): (Vec<Parked>, Vec<Parked>) = state
            .parked
            .drain(..)
            .partition(|parked| parked.generation != live);
        state.parked.extend(alive);
        dead
    }

    pub fn parked_count(&self) -> usize {
        self.lock().parked.len()
    }

    /// What is parked, oldest first.
    pub fn parked_labels(&self) -> Vec<String> {
        self.lock()
            .parked
            .iter()
            .map(|parked| parked.label.clone())
            .collect()
    }

    /// The oldest call that may be decided at `pump`, taken off the board.
    pub fn take_next(&self, pump: u64) -> Option<Parked> {
        let mut state = self.lock();
        let index = state
            .parked
            .iter()
            .position(|parked| parked.not_before <= pump)?;
        state.parked.remove(index)
    }

    /// Puts a call back to be decided at `not_before`, keeping its place in line.
    pub fn stall(&self, mut parked: Parked, not_before: u64) {
        parked.not_before = not_before;
        parked.decided = true;
        self.lock().parked.push_front(parked);
    }

    fn park(&self, parked: Parked) -> Result<(), StoreError> {
        let mut state = self.lock();
        if parked.generation != state.generation {
            return Err(StoreError::Unavailable("the process is dead".into()));
        }
        state.parked.push_back(parked);
        Ok(())
    }
}

/// The stores of one process incarnation.
#[derive(Clone)]
pub struct FaultyStore {
    inner: Arc<Database>,
    board: Board,
    generation: u64,
}

fn injected(what: &str) -> StoreError {
    StoreError::Unavailable(format!("injected fault: {what}"))
}

impl FaultyStore {
    pub fn new(inner: Arc<Database>, board: Board) -> Self {
        let generation = board.generation();
        Self {
            inner,
            board,
            generation,
        }
    }

    /// Parks `call` and waits for the simulator to decide it.
    async fn call<T, F, Fut>(&self, kind: Kind, label: String, call: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Database>, Fate) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let inner = Arc::clone(&self.inner);
        let run: Run = Box::new(move |fate| {
            Box::pin(async move {
                // A caller that gave up (an abandoned transaction) is gone with its
                // connection: the server timed the statement out, nothing was written.
                if answer.is_closed() {
                    return Box::new(|| {}) as Deliver;
                }
                let result = call(inner, fate).await;
                Box::new(move || {
                    let _ = answer.send(result);
                }) as Deliver
            })
        });
        self.board.park(Parked {
            kind,
            generation: self.generation,
            label,
            not_before: 0,
            decided: false,
            run,
        })?;
        answered
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the process is dead".into())))
    }

    async fn read<T, F, Fut>(&self, label: String, call: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Database>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.call(Kind::Read, label, move |inner, fate| async move {
            match fate {
                Fate::Run => call(inner).await,
                Fate::FailBeforeWriting | Fate::FailAfterWriting => Err(injected("read failed")),
            }
        })
        .await
    }
}

/// A commit's ops, briefly: enough to tell two traces apart.
fn describe(ops: &[WriteOp]) -> String {
    let parts: Vec<String> = ops
        .iter()
        .map(|op| match op {
            WriteOp::PutProduct { product, .. } => format!("product {}", product.id),
            WriteOp::PutSale { sale, .. } => format!("sale {}", sale.id),
            WriteOp::ChangeSale { sale, .. } => format!("changed sale {}", sale.id),
            WriteOp::PlaceOrder { order, .. } => format!("place {}", order.id),
            WriteOp::SetOrderStatus(change) => format!("{} {}", change.to, change.order_id),
            WriteOp::PutShipment(shipment) => format!("ship {}", shipment.order_id),
            WriteOp::ReleasePayouts(payouts) => format!("{} payouts", payouts.len()),
            WriteOp::SaveNeighbours { lists, .. } => format!("{} neighbour lists", lists.len()),
            WriteOp::Emit(event) => event.event_type.to_owned(),
            WriteOp::PutCheckout(details) => format!("checkout {}", details.order_id),
            WriteOp::ForgetEvents(seqs) => format!("forget {} events", seqs.len()),
            WriteOp::RecordNotifications(notes) => format!("{} notifications", notes.len()),
            WriteOp::LogProviderMessages(messages) => {
                format!("{} provider messages", messages.len())
            }
            WriteOp::Fence(lease) => format!("fence shard {} epoch {}", lease.shard, lease.epoch),
            WriteOp::HoldUntil(until_ms) => format!("hold until {until_ms}"),
        })
        .collect();
    parts.join(", ")
}

#[async_trait]
impl OrderLedger for FaultyStore {
    async fn commit(&self, ops: &[WriteOp]) -> Result<(), StoreError> {
        let ops = ops.to_vec();
        let label = format!("commit [{}]", describe(&ops));
        self.call(Kind::Commit, label, move |inner, fate| async move {
            match fate {
                Fate::Run => inner.commit(&ops).await,
                Fate::FailBeforeWriting => Err(injected("commit failed before writing")),
                Fate::FailAfterWriting => {
                    inner.commit(&ops).await?;
                    Err(injected("commit failed after writing"))
                }
            }
        })
        .await
    }

    async fn load_product(
        &self,
        id: ProductId,
        lines_since_ms: u64,
    ) -> Result<Option<ProductState>, StoreError> {
        self.read(format!("load product {id}"), move |inner| async move {
            inner.load_product(id, lines_since_ms).await
        })
        .await
    }

    async fn pending_orders(&self) -> Result<Vec<Order>, StoreError> {
        self.read("pending orders".into(), |inner| async move {
            inner.pending_orders().await
        })
        .await
    }

    async fn inventory_levels(&self) -> Result<Vec<InventoryLevel>, StoreError> {
        self.read("inventory levels".into(), |inner| async move {
            inner.inventory_levels().await
        })
        .await
    }

    async fn id_high_water(&self) -> Result<IdHighWater, StoreError> {
        self.read("id high water".into(), |inner| async move {
            inner.id_high_water().await
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read("ping".into(), |inner| async move {
            OrderLedger::ping(&*inner).await
        })
        .await
    }
}

#[async_trait]
impl OrderLookup for FaultyStore {
    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.read(format!("order {id}"), move |inner| async move {
            inner.order(id).await
        })
        .await
    }

    async fn orders(&self, ids: &[OrderId]) -> Result<Vec<Order>, StoreError> {
        let ids = ids.to_vec();
        self.read(format!("{} orders", ids.len()), move |inner| async move {
            inner.orders(&ids).await
        })
        .await
    }

    async fn order_for_key(
        &self,
        user: UserId,
        scope: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<OrderId>, StoreError> {
        let (scope, key) = (scope.to_owned(), key.clone());
        let label = format!("order for key {user} {scope} {}", key.as_str());
        self.read(label, move |inner| async move {
            inner.order_for_key(user, &scope, &key).await
        })
        .await
    }

    async fn delivered_to(&self, user: UserId, product: ProductId) -> Result<bool, StoreError> {
        self.read(
            format!("delivered {product} to {user}"),
            move |inner| async move { inner.delivered_to(user, product).await },
        )
        .await
    }
}

#[async_trait]
impl CatalogStore for FaultyStore {
    async fn load_catalog(&self) -> Result<Vec<Product>, StoreError> {
        self.read("catalog".into(), |inner| async move {
            inner.load_catalog().await
        })
        .await
    }

    async fn catalog_changes(&self, since_ms: u64) -> Result<CatalogChanges, StoreError> {
        self.read(
            format!("catalog since {since_ms}"),
            move |inner| async move { inner.catalog_changes(since_ms).await },
        )
        .await
    }
}

#[async_trait]
impl CartStore for FaultyStore {
    async fn cart(&self, user: UserId, since_ms: u64) -> Result<Vec<CartItem>, StoreError> {
        self.read(format!("cart of {user}"), move |inner| async move {
            inner.cart(user, since_ms).await
        })
        .await
    }

    async fn put_cart_item(&self, user: UserId, item: CartItem) -> Result<(), StoreError> {
        let label = format!("cart of {user}: {} x{}", item.product_id, item.quantity);
        self.read(label, move |inner| async move {
            inner.put_cart_item(user, item).await
        })
        .await
    }

    async fn remove_cart_items(
        &self,
        user: UserId,
        products: &[ProductId],
        change: CartChange,
    ) -> Result<u64, StoreError> {
        let products = products.to_vec();
        self.read(format!("empty cart of {user}"), move |inner| async move {
            inner.remove_cart_items(user, &products, change).await
        })
        .await
    }

    async fn untouched_carts(
        &self,
        before_ms: u64,
        limit: u32,
    ) -> Result<Vec<UntouchedCart>, StoreError> {
        self.read(
            format!("carts untouched before {before_ms}"),
            move |inner| async move { inner.untouched_carts(before_ms, limit).await },
        )
        .await
    }

    async fn claim_untouched_cart(&self, cart: UntouchedCart) -> Result<bool, StoreError> {
        self.read(
            format!("claim cart of {}", cart.user_id),
            move |inner| async move { inner.claim_untouched_cart(cart).await },
        )
        .await
    }

    async fn release_untouched_cart(&self, cart: UntouchedCart) -> Result<(), StoreError> {
        self.read(
            format!("release cart of {}", cart.user_id),
            move |inner| async move { inner.release_untouched_cart(cart).await },
        )
        .await
    }
}
