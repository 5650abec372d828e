//! The store contract, run against each backend (`sqlite_store.rs`, `postgres_store.rs`):
//! what is committed reads back, a batch is all-or-nothing, the committer batches and
//! fences.

use std::sync::Arc;
use std::time::Duration;

use engine::order::{Order, OrderItem, OrderStatus};
use engine::stock::{LineState, ProductStock};
use engine::{FlashSale, IdempotencyKey, Money, OrderId, Product, ProductId, SaleId, UserId};
use persistence::{
    CommitOutcome, Database, GroupCommitSettings, GroupCommitter, LedgerKind, OrderLedger,
    OrderLookup, StatusChange, StockMove, WriteOp,
};
use uuid::Uuid;

mod concerns;
pub use concerns::*;

/// Every contract of this module, handed to `$runner` (each backend's test file defines
/// one that makes a test of each, on a fresh database).
#[macro_export]
macro_rules! contracts {
    ($runner:ident) => {
        $runner!(
            committed_orders_rebuild_the_same_stock,
            a_cancelled_or_moved_sale_reloads_as_changed,
            a_failing_write_rolls_back_the_whole_batch,
            the_committer_batches_submissions_and_barriers_wait_for_them,
            inventory_levels_follow_the_orders,
            carts_keep_lines_until_they_go_stale,
            abandoned_carts_are_claimed_once_per_change,
            reviews_count_once_per_user,
            notifications_are_recorded_once,
            provider_messages_are_logged_in_packs_newest_first,
            deliveries_keep_the_first_partner_and_the_shipment,
            the_outbox_hands_out_events_in_order,
            orders_are_found_by_key_and_delivery,
            an_import_creates_products_once_and_then_updates_their_records,
            wishlists_are_bounded_and_counted,
            concurrent_adds_never_pass_a_wishlist_bound,
            campaigns_keep_their_cursor_and_count_each_message_once,
            a_campaign_finishes_with_its_last_delivery,
            a_cancelled_campaign_stops_where_it_was,
            sellers_see_their_orders_and_each_payout_once,
            recommendation_lists_are_saved_per_node,
        );
    };
}

pub fn product(id: u64) -> Product {
    Product {
        id: ProductId(id),
        title: format!("Phone {id}"),
        brand: "Acme".into(),
        category: "mobiles".into(),
        description: String::new(),
        price: Money(10_000),
        rating: 4.0,
        popularity: 1,
        seller_id: None,
    }
}

pub fn put_product(id: u64, stock: u64) -> WriteOp {
    WriteOp::PutProduct {
        product: product(id),
        stock_initial: stock,
        shelf_change: i64::try_from(stock).expect("small"),
        at_ms: 1,
    }
}

pub fn order(n: u128, user: u64, product_id: u64, quantity: u32, sale_id: Option<SaleId>) -> Order {
    Order {
        id: OrderId(Uuid::from_u128(n)),
        user_id: UserId(user),
        status: OrderStatus::PendingPayment,
        items: vec![OrderItem {
            product_id: ProductId(product_id),
            sale_id,
            quantity,
            unit_price: Money(5_000),
        }],
        total: Money(5_000 * u64::from(quantity)),
        idempotency_key: IdempotencyKey::parse(&format!("k{n}")).expect("key"),
        created_at_ms: 100,
        expires_at_ms: 600_100,
        updated_at_ms: 100,
    }
}

pub fn place(order: Order) -> WriteOp {
    let scope = format!("product:{}", order.items[0].product_id);
    WriteOp::PlaceOrder {
        order,
        idempotency_scope: scope,
    }
}

pub async fn committed_orders_rebuild_the_same_stock(store: Arc<Database>) {
    let sale = FlashSale {
        id: SaleId(1),
        product_id: ProductId(7),
        sale_price: Money(5_000),
        original_price: Money(10_000),
        start_ms: 0,
        end_ms: None,
        stock: 10,
        per_user_limit: 2,
        cancelled_at_ms: None,
    };
    store
        .commit(&[
            put_product(7, 20),
            WriteOp::PutSale {
                sale: sale.clone(),
                at_ms: 1,
            },
        ])
        .await
        .expect("commit product");
    store
        .commit(&[
            place(order(1, 1, 7, 2, Some(SaleId(1)))),
            place(order(2, 2, 7, 1, Some(SaleId(1)))),
            place(order(3, 3, 7, 3, None)),
        ])
        .await
        .expect("commit orders");
    let paid = StatusChange {
        order_id: OrderId(Uuid::from_u128(1)),
        from: OrderStatus::PendingPayment,
        to: OrderStatus::Paid,
        at_ms: 200,
        ledger: vec![StockMove {
            product_id: ProductId(7),
            kind: LedgerKind::Confirm,
            units: 2,
            sale: None,
        }],
        payment: None,
    };
    let expired = StatusChange {
        order_id: OrderId(Uuid::from_u128(2)),
        from: OrderStatus::PendingPayment,
        to: OrderStatus::Expired,
        at_ms: 200,
        ledger: vec![StockMove {
            product_id: ProductId(7),
            kind: LedgerKind::Release,
            units: 1,
            sale: Some(SaleId(1)),
        }],
        payment: None,
    };
    store
        .commit(&[
            WriteOp::SetOrderStatus(paid),
            WriteOp::SetOrderStatus(expired),
        ])
        .await
        .expect("commit changes");

    let state = store
        .load_product(ProductId(7), 0)
        .await
        .expect("load")
        .expect("exists");
    assert_eq!(state.product, product(7));
    assert_eq!(state.stock.initial, 20);
    assert_eq!(state.stock.sold, 2);
    let sale_snapshot = state.stock.sale.clone().expect("sale");
    assert_eq!(sale_snapshot.sale, sale);
    assert_eq!(sale_snapshot.sold, 2);
    assert_eq!(sale_snapshot.held_by_user.get(&UserId(1)), Some(&2));
    assert_eq!(
        sale_snapshot.held_by_user.get(&UserId(2)),
        None,
        "expired order holds nothing"
    );
    assert_eq!(state.stock.lines.len(), 3);

    let stock =
        ProductStock::restore(ProductId(7), Money(10_000), state.stock, 300).expect("restore");
    let counters = stock.counters();
    assert_eq!(
        (
            counters.initial,
            counters.sold,
            counters.reserved,
            counters.left
        ),
        (20, 2, 3, 15)
    );
    let line = stock
        .line(OrderId(Uuid::from_u128(2)))
        .expect("recent line kept");
    assert_eq!(line.state, LineState::Released);

    let loaded = store
        .order(OrderId(Uuid::from_u128(1)))
        .await
        .expect("load")
        .expect("exists");
    assert_eq!(loaded.status, OrderStatus::Paid);
    assert_eq!(loaded.items, order(1, 1, 7, 2, Some(SaleId(1))).items);
    let pending = store.pending_orders().await.expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, OrderId(Uuid::from_u128(3)));
    let high = store.id_high_water().await.expect("high water");
    assert_eq!((high.product_id, high.sale_id), (7, 1));
}

/// A sale moved to another window, then cancelled, reloads as it was last changed; a
/// change of a sale that does not exist fails the batch.
pub async fn a_cancelled_or_moved_sale_reloads_as_changed(store: Arc<Database>) {
    let sale = FlashSale {
        id: SaleId(1),
        product_id: ProductId(7),
        sale_price: Money(5_000),
        original_price: Money(10_000),
        start_ms: 10_000,
        end_ms: Some(20_000),
        stock: 10,
        per_user_limit: 2,
        cancelled_at_ms: None,
    };
    let put = WriteOp::PutSale {
        sale: sale.clone(),
        at_ms: 1,
    };
    store
        .commit(&[put_product(7, 20), put])
        .await
        .expect("commit product");
    let reloaded = |store: Arc<Database>| async move {
        let state = store.load_product(ProductId(7), 0).await.expect("load");
        state.expect("exists").stock.sale.expect("a sale").sale
    };
    let moved = sale.moved_to(30_000, None, 2).expect("a later window");
    let change = |sale: &FlashSale, at_ms| WriteOp::ChangeSale {
        sale: sale.clone(),
        at_ms,
    };
    store.commit(&[change(&moved, 2)]).await.expect("move");
    assert_eq!(reloaded(Arc::clone(&store)).await, moved);
    let cancelled = FlashSale {
        cancelled_at_ms: Some(3),
        ..moved
    };
    store
        .commit(&[change(&cancelled, 3)])
        .await
        .expect("cancel");
    let back = reloaded(Arc::clone(&store)).await;
    assert_eq!(back, cancelled);
    assert_eq!(back.phase(3), engine::SalePhase::Ended);

    let unknown = FlashSale {
        id: SaleId(99),
        ..sale
    };
    assert!(store.commit(&[change(&unknown, 4)]).await.is_err());
}

pub async fn a_failing_write_rolls_back_the_whole_batch(store: Arc<Database>) {
    store.commit(&[put_product(1, 5)]).await.expect("product");
    let stale = StatusChange {
        order_id: OrderId(Uuid::from_u128(99)),
        from: OrderStatus::PendingPayment,
        to: OrderStatus::Paid,
        at_ms: 5,
        ledger: Vec::new(),
        payment: None,
    };
    let result = store
        .commit(&[
            place(order(1, 1, 1, 1, None)),
            WriteOp::SetOrderStatus(stale),
        ])
        .await;
    assert!(result.is_err(), "the guard refuses an unknown order");
    assert!(
        store
            .order(OrderId(Uuid::from_u128(1)))
            .await
            .expect("load")
            .is_none()
    );

    // The same checkout idempotency key twice is refused by the schema (Buy Now's keys
    // are checked by their product's actor).
    let checkout = |order: Order| WriteOp::PlaceOrder {
        order,
        idempotency_scope: persistence::CHECKOUT_SCOPE.into(),
    };
    let mut twin = order(2, 1, 1, 1, None);
    twin.idempotency_key = order(1, 1, 1, 1, None).idempotency_key;
    let result = store
        .commit(&[checkout(order(1, 1, 1, 1, None)), checkout(twin)])
        .await;
    assert!(result.is_err());
    assert!(store.pending_orders().await.expect("pending").is_empty());

    // A refused batch leaves no transaction open behind it: the next one commits.
    store
        .commit(&[place(order(3, 1, 1, 1, None))])
        .await
        .expect("the next batch");
    let pending = store.pending_orders().await.expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, OrderId(Uuid::from_u128(3)));
}

pub async fn the_committer_batches_submissions_and_barriers_wait_for_them(store: Arc<Database>) {
    store
        .commit(&[put_product(1, 1_000)])
        .await
        .expect("product");
    let settings = GroupCommitSettings {
        batch_size_max: 64,
        batch_delay: Duration::from_millis(5),
        queue_capacity: 1_024,
        commit_timeout: Duration::from_secs(5),
        abandon_after: Duration::from_secs(10),
    };
    let (committer, task) = GroupCommitter::start(store.clone(), settings);
    let (outcomes, mut received) = tokio::sync::mpsc::unbounded_channel();
    for n in 0..200u128 {
        let outcomes = outcomes.clone();
        committer.submit(vec![place(order(n + 1, 1, 1, 1, None))], move |outcome| {
            let _ = outcomes.send(outcome);
        });
    }
    committer.barrier().await.expect("barrier");
    // Every submission was answered before the barrier passed.
    for _ in 0..200 {
        assert_eq!(
            received.try_recv().expect("answered"),
            CommitOutcome::Committed
        );
    }
    assert_eq!(store.pending_orders().await.expect("pending").len(), 200);

    // A submission that cannot commit is reported, and the committer keeps going.
    let (tx, rx) = tokio::sync::oneshot::channel();
    committer.submit(vec![place(order(1, 1, 1, 1, None))], move |outcome| {
        let _ = tx.send(outcome);
    });
    assert!(matches!(
        rx.await.expect("answered"),
        CommitOutcome::Unknown(_)
    ));
    let (tx, rx) = tokio::sync::oneshot::channel();
    committer.submit(vec![place(order(500, 1, 1, 1, None))], move |outcome| {
        let _ = tx.send(outcome);
    });
    assert_eq!(rx.await.expect("answered"), CommitOutcome::Committed);

    drop(committer);
    task.await
        .expect("committer ends when its handles are dropped");
}

/// Committed stock reads back as the same inventory levels a mirror would show.
pub async fn inventory_levels_follow_the_orders(store: Arc<Database>) {
    let sale = FlashSale {
        id: SaleId(3),
        product_id: ProductId(9),
        sale_price: Money(5_000),
        original_price: Money(10_000),
        start_ms: 0,
        end_ms: None,
        stock: 4,
        per_user_limit: 3,
        cancelled_at_ms: None,
    };
    store
        .commit(&[
            put_product(8, 5),
            put_product(9, 10),
            WriteOp::PutSale {
                sale: sale.clone(),
                at_ms: 1,
            },
        ])
        .await
        .expect("products");
    store
        .commit(&[
            place(order(1, 1, 9, 3, Some(SaleId(3)))),
            place(order(2, 2, 8, 2, None)),
        ])
        .await
        .expect("orders");
    let levels = store.inventory_levels().await.expect("levels");
    assert_eq!(levels.len(), 2);
    assert_eq!(
        (levels[0].product_id, levels[0].left, levels[0].sale.clone()),
        (ProductId(8), 3, None)
    );
    assert_eq!(levels[1].left, 7);
    let level = levels[1].sale.clone().expect("sale");
    assert_eq!((level.sale, level.held), (sale, 3));
}
