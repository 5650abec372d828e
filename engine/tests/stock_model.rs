//! Property test: random sequences of stock operations run on the real state machine and on
//! a tiny reference model that recomputes everything from the list of orders. After every
//! step the two must agree on the outcome and on every counter, and the invariants hold:
//! `sold + reserved + left == initial`, no user above the sale limit, no pool oversold.

use std::collections::HashMap;

use engine::Refusal;
use engine::flash_sale::{FlashSale, SalePhase};
use engine::stock::{LineState, ProductStock, ReserveOutcome, ReserveRequest, StockCounters};
use engine::{IdempotencyKey, Money, OrderId, ProductId, SaleId, UserId};
use proptest::prelude::*;
use uuid::Uuid;

const PRODUCT: ProductId = ProductId(42);
const PRICE: Money = Money(1_000);
const SALE_PRICE: Money = Money(400);

#[derive(Clone, Debug)]
enum Op {
    Reserve {
        user: u64,
        quantity: u32,
        key: u8,
    },
    BeginConfirm(usize),
    BeginRelease(usize),
    Finish(usize),
    Abort(usize),
    AbortReserve(usize),
    Advance(u64),
    ScheduleSale {
        stock: u64,
        limit: u32,
        starts_in: u64,
        lasts: Option<u64>,
    },
    CancelSale,
    MoveSale {
        starts_in: u64,
        lasts: Option<u64>,
    },
    SetLeft(u64),
    Forget {
        age_ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..6, 1u32..4, 0u8..10)
            .prop_map(|(user, quantity, key)| Op::Reserve { user, quantity, key }),
        2 => any::<usize>().prop_map(Op::BeginConfirm),
        2 => any::<usize>().prop_map(Op::BeginRelease),
        3 => any::<usize>().prop_map(Op::Finish),
        1 => any::<usize>().prop_map(Op::Abort),
        1 => any::<usize>().prop_map(Op::AbortReserve),
        2 => (0u64..40).prop_map(Op::Advance),
        1 => (1u64..30, 1u32..5, 0u64..30, proptest::option::of(1u64..80))
            .prop_map(|(stock, limit, starts_in, lasts)| Op::ScheduleSale { stock, limit, starts_in, lasts }),
        1 => Just(Op::CancelSale),
        1 => (0u64..30, proptest::option::of(1u64..80))
            .prop_map(|(starts_in, lasts)| Op::MoveSale { starts_in, lasts }),
        1 => (0u64..60).prop_map(Op::SetLeft),
        1 => (0u64..100).prop_map(|age_ms| Op::Forget { age_ms }),
    ]
}

#[derive(Clone, Debug)]
struct ModelOrder {
    id: OrderId,
    user: u64,
    key: u8,
    quantity: u32,
    sale_id: Option<SaleId>,
    state: LineState,
    created_at_ms: u64,
    forgotten: bool,
}

/// The reference: a list of orders and a few numbers; every counter is a sum over orders.
#[derive(Default)]
struct Model {
    initial: u64,
    sale: Option<FlashSale>,
    orders: Vec<ModelOrder>,
    now_ms: u64,
}

impl Model {
    fn holds(state: LineState) -> bool {
        state != LineState::Released
    }

    fn promised(&self) -> u64 {
        self.orders
            .iter()
            .filter(|o| Self::holds(o.state))
            .map(|o| u64::from(o.quantity))
            .sum()
    }

    fn sold(&self) -> u64 {
        self.orders
            .iter()
            .filter(|o| o.state == LineState::Sold)
            .map(|o| u64::from(o.quantity))
            .sum()
    }

    fn left(&self) -> u64 {
        self.initial - self.promised()
    }

    fn sale_phase(&self) -> Option<SalePhase> {
        self.sale.as_ref().map(|sale| sale.phase(self.now_ms))
    }

    fn held_in_sale(&self, user: Option<u64>) -> u64 {
        let Some(sale) = &self.sale else { return 0 };
        self.orders
            .iter()
            .filter(|o| o.sale_id == Some(sale.id) && Self::holds(o.state))
            .filter(|o| user.is_none_or(|user| o.user == user))
            .map(|o| u64::from(o.quantity))
            .sum()
    }

    /// While the pool is open, it holds its stock minus what its buyers hold.
    fn pool_left(&self) -> u64 {
        match (&self.sale, self.sale_phase()) {
            (Some(sale), Some(SalePhase::Scheduled | SalePhase::Live)) => {
                sale.stock - self.held_in_sale(None)
            }
            _ => 0,
        }
    }

    fn regular_available(&self) -> u64 {
        self.left() - self.pool_left()
    }

    fn expected_reserve(&self, user: u64, quantity: u32, key: u8) -> Expected {
        let earlier = self
            .orders
            .iter()
            .find(|o| o.user == user && o.key == key && !o.forgotten);
        if let Some(earlier) = earlier {
            if earlier.quantity != quantity {
                return Expected::Refused(Refusal::KeyReused);
            }
            return Expected::Duplicate;
        }
        let q = u64::from(quantity);
        if self.sale_phase() == Some(SalePhase::Live) {
            let sale = self.sale.as_ref().expect("live");
            let held = self.held_in_sale(Some(user));
            if held + q > u64::from(sale.per_user_limit) {
                return Expected::Refused(Refusal::LimitExceeded {
                    limit: sale.per_user_limit,
                    held: held as u32,
                });
            }
            if self.pool_left() < q {
                return Expected::Refused(Refusal::OutOfStock {
                    left: self.pool_left(),
                });
            }
            return Expected::FromSale;
        }
        let available = self.regular_available();
        if available >= q {
            return Expected::Regular;
        }
        Expected::Refused(match (available, &self.sale, self.sale_phase()) {
            (0, Some(sale), Some(SalePhase::Scheduled)) => Refusal::SaleNotStarted {
                starts_at_ms: sale.start_ms,
            },
            (0, Some(sale), Some(SalePhase::Ended)) => Refusal::SaleEnded {
                ended_at_ms: sale.ended_at_ms().expect("ended"),
            },
            _ => Refusal::OutOfStock { left: available },
        })
    }

    fn pick(&self, index: usize, state: LineState) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.orders.len())
            .filter(|&i| self.orders[i].state == state && !self.orders[i].forgotten)
            .collect();
        (!candidates.is_empty()).then(|| candidates[index % candidates.len()])
    }

    fn expected_counters(&self) -> StockCounters {
        let reserved = self.promised() - self.sold();
        StockCounters {
            initial: self.initial,
            reserved,
            sold: self.sold(),
            left: self.left(),
        }
    }
}

/// What the model expects of a reservation.
#[derive(Debug)]
enum Expected {
    /// The key's earlier order answers.
    Duplicate,
    /// Reserved from the live sale's pool, at the sale price.
    FromSale,
    /// Reserved from the regular stock, at the regular price.
    Regular,
    Refused(Refusal),
}

fn key(k: u8) -> IdempotencyKey {
    IdempotencyKey::parse(&format!("key-{k}")).expect("valid key")
}

fn run(initial: u64, ops: Vec<Op>) {
    let mut stock = ProductStock::new(PRODUCT, PRICE, initial);
    let mut model = Model {
        initial,
        now_ms: 1_000,
        ..Model::default()
    };
    let mut next_order: u128 = 1;
    let mut next_sale: u64 = 1;
    for op in ops {
        match op {
            Op::Reserve {
                user,
                quantity,
                key: k,
            } => {
                let id = OrderId(Uuid::from_u128(next_order));
                next_order += 1;
                let expected = model.expected_reserve(user, quantity, k);
                let outcome = stock.reserve(ReserveRequest {
                    order_id: id,
                    user_id: UserId(user),
                    quantity,
                    idempotency_key: key(k),
                    now_ms: model.now_ms,
                    expires_at_ms: model.now_ms + 600_000,
                });
                match (expected, outcome) {
                    (Expected::Duplicate, ReserveOutcome::Duplicate(line)) => {
                        let earlier = model
                            .orders
                            .iter()
                            .find(|o| o.user == user && o.key == k && !o.forgotten)
                            .expect("model knows the earlier order");
                        assert_eq!(line.order_id, earlier.id);
                        assert_eq!(line.state, earlier.state);
                    }
                    (Expected::FromSale, ReserveOutcome::Reserved(line)) => {
                        let sale = model.sale.as_ref().expect("live sale");
                        assert_eq!(line.sale_id, Some(sale.id));
                        assert_eq!(line.unit_price, SALE_PRICE);
                        model
                            .orders
                            .push(order(id, user, k, quantity, line.sale_id, model.now_ms));
                    }
                    (Expected::Regular, ReserveOutcome::Reserved(line)) => {
                        assert_eq!(line.sale_id, None);
                        assert_eq!(line.unit_price, PRICE);
                        model
                            .orders
                            .push(order(id, user, k, quantity, None, model.now_ms));
                    }
                    (Expected::Refused(refusal), outcome) => {
                        assert_eq!(outcome, ReserveOutcome::Refused(refusal))
                    }
                    (expected, outcome) => panic!("expected {expected:?}, got {outcome:?}"),
                }
            }
            Op::BeginConfirm(index) => {
                if let Some(i) = model.pick(index, LineState::Reserved) {
                    stock
                        .begin_confirm(model.orders[i].id)
                        .expect("reserved line confirms");
                    model.orders[i].state = LineState::Confirming;
                } else if let Some(o) = model
                    .orders
                    .iter()
                    .find(|o| o.state != LineState::Reserved && !o.forgotten)
                {
                    assert!(
                        stock.begin_confirm(o.id).is_err(),
                        "only reserved lines confirm"
                    );
                }
            }
            Op::BeginRelease(index) => {
                if let Some(i) = model.pick(index, LineState::Reserved) {
                    stock
                        .begin_release(model.orders[i].id)
                        .expect("reserved line releases");
                    model.orders[i].state = LineState::Releasing;
                } else if let Some(o) = model
                    .orders
                    .iter()
                    .find(|o| o.state != LineState::Reserved && !o.forgotten)
                {
                    assert!(
                        stock.begin_release(o.id).is_err(),
                        "only reserved lines release"
                    );
                }
            }
            Op::Finish(index) => {
                if let Some(i) = model.pick(index, LineState::Confirming) {
                    stock.finish_confirm(model.orders[i].id);
                    model.orders[i].state = LineState::Sold;
                } else if let Some(i) = model.pick(index, LineState::Releasing) {
                    stock.finish_release(model.orders[i].id, model.now_ms);
                    model.orders[i].state = LineState::Released;
                }
            }
            Op::Abort(index) => {
                if let Some(i) = model.pick(index, LineState::Confirming) {
                    stock.abort_confirm(model.orders[i].id);
                    model.orders[i].state = LineState::Reserved;
                } else if let Some(i) = model.pick(index, LineState::Releasing) {
                    stock.abort_release(model.orders[i].id);
                    model.orders[i].state = LineState::Reserved;
                }
            }
            Op::AbortReserve(index) => {
                if let Some(i) = model.pick(index, LineState::Reserved) {
                    stock.abort_reserve(model.orders[i].id);
                    model.orders.remove(i);
                }
            }
            Op::Advance(ms) => {
                model.now_ms += ms;
                stock.settle(model.now_ms);
            }
            Op::ScheduleSale {
                stock: units,
                limit,
                starts_in,
                lasts,
            } => {
                let start_ms = model.now_ms + starts_in;
                let sale = FlashSale {
                    id: SaleId(next_sale),
                    product_id: PRODUCT,
                    sale_price: SALE_PRICE,
                    original_price: PRICE,
                    start_ms,
                    end_ms: lasts.map(|lasts| start_ms + lasts),
                    stock: units,
                    per_user_limit: limit,
                    cancelled_at_ms: None,
                };
                next_sale += 1;
                let busy = matches!(
                    model.sale_phase(),
                    Some(SalePhase::Scheduled | SalePhase::Live)
                );
                let fits = units <= model.left();
                let result = stock.schedule_sale(sale.clone(), model.now_ms);
                assert_eq!(result.is_ok(), !busy && fits, "{result:?}");
                if result.is_ok() {
                    model.sale = Some(sale);
                }
            }
            Op::CancelSale => {
                let open = matches!(
                    model.sale_phase(),
                    Some(SalePhase::Scheduled | SalePhase::Live)
                );
                let sale_id = model.sale.as_ref().map_or(SaleId(0), |sale| sale.id);
                let result = stock.check_cancel_sale(sale_id, model.now_ms);
                assert_eq!(result.is_ok(), open, "{result:?}");
                if let Ok(cancelled) = result {
                    let sale = model.sale.as_mut().expect("open");
                    sale.cancelled_at_ms = Some(model.now_ms);
                    assert_eq!(&cancelled, sale);
                    stock.change_sale(cancelled, model.now_ms);
                }
            }
            Op::MoveSale { starts_in, lasts } => {
                let scheduled = model.sale_phase() == Some(SalePhase::Scheduled);
                if let Some(sale) = model.sale.as_mut() {
                    let start_ms = model.now_ms + starts_in;
                    let end_ms = lasts.map(|lasts| start_ms + lasts);
                    let moved = sale
                        .moved_to(start_ms, end_ms, model.now_ms)
                        .expect("a window after now");
                    let result = stock.check_move_sale(&moved, model.now_ms);
                    assert_eq!(result.is_ok(), scheduled, "{result:?}");
                    if result.is_ok() {
                        *sale = moved.clone();
                        stock.change_sale(moved, model.now_ms);
                    }
                }
            }
            Op::SetLeft(left) => {
                let result = stock.set_left(left, model.now_ms);
                assert_eq!(result.is_ok(), left >= model.pool_left());
                if result.is_ok() {
                    model.initial = model.initial - model.left() + left;
                }
            }
            Op::Forget { age_ms } => {
                let cutoff = model.now_ms.saturating_sub(age_ms);
                let forgotten = stock.forget_settled_before(cutoff);
                let mut expected = 0;
                for o in model.orders.iter_mut().filter(|o| !o.forgotten) {
                    if matches!(o.state, LineState::Sold | LineState::Released)
                        && o.created_at_ms < cutoff
                    {
                        o.forgotten = true;
                        expected += 1;
                    }
                }
                assert_eq!(forgotten, expected);
            }
        }
        check(&stock, &model);
        // What a restart would rebuild from the store is the same stock.
        let restored = ProductStock::restore(PRODUCT, PRICE, stock.snapshot(), model.now_ms)
            .unwrap_or_else(|corrupt| panic!("a consistent stock restores: {corrupt}"));
        assert_eq!(restored.counters(), stock.counters());
        assert_eq!(
            restored.inventory(model.now_ms),
            stock.inventory(model.now_ms)
        );
    }
}

fn order(
    id: OrderId,
    user: u64,
    key: u8,
    quantity: u32,
    sale_id: Option<SaleId>,
    now_ms: u64,
) -> ModelOrder {
    ModelOrder {
        id,
        user,
        key,
        quantity,
        sale_id,
        state: LineState::Reserved,
        created_at_ms: now_ms,
        forgotten: false,
    }
}

fn check(stock: &ProductStock, model: &Model) {
    let counters = stock.counters();
    assert_eq!(
        counters.sold + counters.reserved + counters.left,
        counters.initial
    );
    assert_eq!(counters, model.expected_counters());
    assert_eq!(stock.regular_available(), model.regular_available());
    let inventory = stock.inventory(model.now_ms);
    if let (Some(sale_view), Some(sale)) = (&inventory.sale, &model.sale) {
        let c = sale_view.counters;
        assert_eq!(c.sold + c.reserved + c.left + c.returned, c.initial);
        assert_eq!(c.initial, sale.stock);
        assert!(c.sold + c.reserved <= sale.stock, "sale pool oversold");
        let mut held: HashMap<u64, u64> = HashMap::new();
        for o in model
            .orders
            .iter()
            .filter(|o| o.sale_id == Some(sale.id) && Model::holds(o.state))
        {
            *held.entry(o.user).or_default() += u64::from(o.quantity);
        }
        assert!(
            held.values().all(|&h| h <= u64::from(sale.per_user_limit)),
            "limit broken"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn stock_matches_the_reference_model(initial in 0u64..40, ops in proptest::collection::vec(op(), 1..120)) {
        run(initial, ops);
    }
}

/// Restoring from the facts a store keeps gives back the same counters.
#[test]
fn restore_rebuilds_the_same_counters() {
    use engine::stock::{SaleSnapshot, StockSnapshot};
    let mut stock = ProductStock::new(PRODUCT, PRICE, 20);
    let sale = FlashSale {
        id: SaleId(1),
        product_id: PRODUCT,
        sale_price: SALE_PRICE,
        original_price: PRICE,
        start_ms: 1_000,
        end_ms: Some(5_000),
        stock: 10,
        per_user_limit: 3,
        cancelled_at_ms: None,
    };
    stock.schedule_sale(sale.clone(), 1_000).expect("fits");
    let mut lines = Vec::new();
    for user in 0..4u64 {
        let outcome = stock.reserve(ReserveRequest {
            order_id: OrderId(Uuid::from_u128(u128::from(user) + 1)),
            user_id: UserId(user),
            quantity: 2,
            idempotency_key: key(1),
            now_ms: 1_500,
            expires_at_ms: 60_000,
        });
        let ReserveOutcome::Reserved(line) = outcome else {
            panic!("{outcome:?}")
        };
        lines.push(line);
    }
    stock.begin_confirm(lines[0].order_id).expect("reserved");
    stock.finish_confirm(lines[0].order_id);
    stock.begin_release(lines[1].order_id).expect("reserved");
    stock.finish_release(lines[1].order_id, 1_600);

    let snapshot_lines: Vec<_> = lines
        .iter()
        .map(|line| stock.line(line.order_id).expect("kept").clone())
        .collect();
    let restored = ProductStock::restore(
        PRODUCT,
        PRICE,
        StockSnapshot {
            initial: 20,
            sold: 2,
            sale: Some(SaleSnapshot {
                sale,
                sold: 2,
                held_by_user: [(UserId(0), 2), (UserId(2), 2), (UserId(3), 2)].into(),
            }),
            lines: snapshot_lines,
        },
        1_600,
    )
    .expect("consistent");
    assert_eq!(restored.counters(), stock.counters());
    assert_eq!(restored.inventory(1_600), stock.inventory(1_600));
    // The restored keys still answer.
    let again = ProductStock::clone(&restored).reserve(ReserveRequest {
        order_id: OrderId(Uuid::from_u128(99)),
        user_id: UserId(3),
        quantity: 2,
        idempotency_key: key(1),
        now_ms: 1_700,
        expires_at_ms: 60_000,
    });
    assert!(matches!(again, ReserveOutcome::Duplicate(line) if line.order_id == lines[3].order_id));
}

#[test]
fn restore_refuses_a_snapshot_that_promises_too_much() {
    use engine::stock::StockSnapshot;
    let snapshot = StockSnapshot {
        initial: 5,
        sold: 6,
        ..StockSnapshot::default()
    };
    assert!(ProductStock::restore(PRODUCT, PRICE, snapshot, 0).is_err());
}

/// A hot product's lines and keys are spread over parts past a few thousand orders (so
/// growing them never stalls its actor): every order is still found by its key, a sale's
/// per-user holdings still count, and a snapshot of the split state restores the same.
#[test]
fn a_hot_product_past_the_split_still_finds_every_order() {
    const ORDERS: u64 = 9_000;
    let mut stock = ProductStock::new(PRODUCT, PRICE, ORDERS * 2);
    let sale = FlashSale {
        id: SaleId(1),
        product_id: PRODUCT,
        sale_price: SALE_PRICE,
        original_price: PRICE,
        start_ms: 0,
        end_ms: None,
        stock: ORDERS * 2,
        per_user_limit: 2,
        cancelled_at_ms: None,
    };
    stock.schedule_sale(sale, 0).expect("fits");
    let request = |user: u64, order: u64| ReserveRequest {
        order_id: OrderId(Uuid::from_u128(u128::from(order))),
        user_id: UserId(user),
        quantity: 1,
        idempotency_key: key(7),
        now_ms: 10,
        expires_at_ms: 60_000,
    };
    for user in 0..ORDERS {
        let outcome = stock.reserve(request(user, user + 1));
        assert!(
            matches!(outcome, ReserveOutcome::Reserved(_)),
            "{outcome:?}"
        );
    }
    for user in 0..ORDERS {
        let outcome = stock.reserve(request(user, ORDERS + user + 1));
        let ReserveOutcome::Duplicate(line) = outcome else {
            panic!("user {user}: {outcome:?}")
        };
        assert_eq!(
            line.order_id,
            OrderId(Uuid::from_u128(u128::from(user + 1)))
        );
    }
    // Each user holds one unit of two: a second key buys once more, a third is refused.
    let second = ReserveRequest {
        idempotency_key: key(8),
        ..request(5, 3 * ORDERS)
    };
    assert!(matches!(stock.reserve(second), ReserveOutcome::Reserved(_)));
    let third = ReserveRequest {
        idempotency_key: key(9),
        ..request(5, 3 * ORDERS + 1)
    };
    assert!(matches!(
        stock.reserve(third),
        ReserveOutcome::Refused(Refusal::LimitExceeded { .. })
    ));
    let counters = stock.counters();
    assert_eq!(counters.reserved, ORDERS + 1);

    let snapshot = stock.snapshot();
    assert_eq!(snapshot.lines.len() as u64, ORDERS + 1);
    let restored = ProductStock::restore(PRODUCT, PRICE, snapshot, 20).expect("consistent");
    assert_eq!(restored.counters(), counters);
    let again = ProductStock::clone(&restored).reserve(request(ORDERS - 1, 4 * ORDERS));
    assert!(
        matches!(again, ReserveOutcome::Duplicate(line) if line.order_id == OrderId(Uuid::from_u128(u128::from(ORDERS))))
    );
}
