//! The contracts of the concerns beside the ledger, run against each database: what one
//! writes, the next reads back the same, on SQLite and on PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use engine::order::{Order, OrderEvent, OrderStatus};
use engine::{IdempotencyKey, OrderId, Product, ProductId, SaleId, UserId};
use persistence::{
    CampaignDelivery, CampaignKind, CampaignPlan, CampaignStore, CartChange, CartItem, CartStore,
    Carts, CatalogStore, Database, Deliveries, Delivery, Event, ImportSummary, ImportedProduct,
    Notification, NotificationStore, OrderLedger, OrderLookup, Outbox, Review, ReviewStore,
    Shipment, StatusChange, StoreError, Topic, UntouchedCart, WishlistAdd, WishlistItem,
    WishlistStore, WriteOp,
};
use uuid::Uuid;

use super::{order, place, put_product};

/// Cart lines: set, replaced, listed oldest first, removed; stale lines purged on read.
pub async fn carts_keep_lines_until_they_go_stale(store: Arc<Database>) {
    let user = UserId(5);
    let line = |product: u64, quantity: u32, added: u64, updated: u64| CartItem {
        product_id: ProductId(product),
        quantity,
        added_at_ms: added,
        updated_at_ms: updated,
    };
    store
        .put_cart_item(user, line(2, 1, 100, 100))
        .await
        .expect("put");
    store
        .put_cart_item(user, line(1, 3, 200, 200))
        .await
        .expect("put");
    store
        .put_cart_item(user, line(2, 4, 100, 300))
        .await
        .expect("replace");
    store
        .put_cart_item(UserId(6), line(2, 9, 100, 100))
        .await
        .expect("other user");
    assert_eq!(
        store.cart(user, 0).await.expect("cart"),
        vec![line(2, 4, 100, 300), line(1, 3, 200, 200)]
    );
    assert_eq!(
        store
            .remove_cart_items(
                user,
                &[ProductId(1), ProductId(7)],
                CartChange::Edited { at_ms: 300 }
            )
            .await
            .expect("remove"),
        1
    );
    assert_eq!(
        store.cart(user, 0).await.expect("cart"),
        vec![line(2, 4, 100, 300)]
    );
    // Older than the cutoff: gone, and purged for good.
    assert!(store.cart(user, 301).await.expect("cart").is_empty());
    assert!(store.cart(user, 0).await.expect("cart").is_empty());
    assert_eq!(store.cart(UserId(6), 0).await.expect("cart").len(), 1);
}

/// The abandoned-cart index over the database (`postgres_store.rs` runs the same over
/// Redis).
pub async fn abandoned_carts_are_claimed_once_per_change(store: Arc<Database>) {
    untouched_carts_are_claimed_once_per_change(Carts::in_database(
        store,
        Duration::from_secs(3_600),
    ))
    .await;
}

/// Carts are due oldest first, once unchanged long enough; a claim succeeds once and only
/// while the cart has not changed; a change re-arms, a checkout calls off; a claim given
/// back is due again, unless the cart changed since.
pub async fn untouched_carts_are_claimed_once_per_change(carts: Carts) {
    let line = |product: u64, at: u64| CartItem {
        product_id: ProductId(product),
        quantity: 1,
        added_at_ms: at,
        updated_at_ms: at,
    };
    let cart = |user: u64, at: u64| UntouchedCart {
        user_id: UserId(user),
        touched_at_ms: at,
    };
    for (user, product, at) in [
        (1, 1, 100),
        (2, 1, 200),
        (3, 2, 300),
        (4, 1, 150),
        (5, 1, 120),
        (5, 2, 121),
    ] {
        carts
            .put(UserId(user), line(product, at))
            .await
            .expect("put");
    }
    let checked_out = carts.remove(UserId(4), &[ProductId(1)], CartChange::CheckedOut);
    assert_eq!(checked_out.await.expect("check out"), 1);
    let edited = carts.remove(
        UserId(5),
        &[ProductId(1)],
        CartChange::Edited { at_ms: 400 },
    );
    assert_eq!(edited.await.expect("edit"), 1);

    // Strictly before the bound, oldest first, at most the limit.
    assert_eq!(
        carts.untouched(300, 10).await.expect("due"),
        [cart(1, 100), cart(2, 200)]
    );
    assert_eq!(carts.untouched(300, 1).await.expect("due"), [cart(1, 100)]);

    assert!(carts.claim_untouched(cart(1, 100)).await.expect("claim"));
    assert!(
        !carts
            .claim_untouched(cart(1, 100))
            .await
            .expect("claimed before")
    );
    // User 2 changed the cart after the scan read it: not abandoned any more.
    carts.put(UserId(2), line(3, 260)).await.expect("put");
    assert!(
        !carts
            .claim_untouched(cart(2, 200))
            .await
            .expect("stale claim")
    );
    assert_eq!(
        carts.untouched(1_000, 10).await.expect("due"),
        [cart(2, 260), cart(3, 300), cart(5, 400)]
    );

    // A claim given back is due again; one given back after a change is not.
    assert!(carts.claim_untouched(cart(3, 300)).await.expect("claim"));
    carts
        .release_untouched(cart(3, 300))
        .await
        .expect("release");
    assert!(carts.claim_untouched(cart(5, 400)).await.expect("claim"));
    carts.put(UserId(5), line(2, 500)).await.expect("put");
    carts
        .release_untouched(cart(5, 400))
        .await
        .expect("release");
    assert_eq!(
        carts.untouched(1_000, 10).await.expect("due"),
        [cart(2, 260), cart(3, 300), cart(5, 500)]
    );
}

/// One review per user and product; the summary is the average of all of them; pages
/// come newest first.
pub async fn reviews_count_once_per_user(store: Arc<Database>) {
    let review = |user: u64, rating: u8| Review {
        product_id: ProductId(3),
        user_id: UserId(user),
        rating,
        title: format!("from {user}"),
        body: "fine".into(),
        created_at_ms: 1_000 + user,
    };
    let first = store.add_review(&review(1, 5)).await.expect("add");
    assert_eq!(
        first.map(|summary| (summary.average, summary.count)),
        Some((5.0, 1))
    );
    assert_eq!(store.add_review(&review(1, 1)).await.expect("again"), None);
    let second = store
        .add_review(&review(2, 2))
        .await
        .expect("add")
        .expect("new");
    assert_eq!((second.average, second.count), (3.5, 2));
    let (page, summary) = store.reviews(ProductId(3), 0, 1).await.expect("page");
    assert_eq!(page, vec![review(2, 2)]);
    assert_eq!(summary.count, 2);
    let (page, _) = store.reviews(ProductId(3), 1, 10).await.expect("page");
    assert_eq!(page, vec![review(1, 5)]);
    let (empty, none) = store.reviews(ProductId(4), 0, 10).await.expect("none");
    assert!(empty.is_empty());
    assert_eq!((none.average, none.count), (0.0, 0));
}

/// A message is recorded once per dedup key; a user reads theirs, newest first.
pub async fn notifications_are_recorded_once(store: Arc<Database>) {
    // Sent a, then c and d, then b: recorded in another order than sent.
    let message = |key: &str, user: u64, order: Option<u128>| Notification {
        dedup_key: key.into(),
        user_id: UserId(user),
        order_id: order.map(|n| OrderId(Uuid::from_u128(n))),
        kind: "order_confirmation".into(),
        channel: "email".into(),
        body: format!(r#"{{"key":"{key}"}}"#),
        sent_at_ms: match key {
            "a" => 10,
            "b" => 12,
            _ => 11,
        },
    };
    let batch = [
        message("a", 1, Some(1)),
        message("b", 1, None),
        message("c", 2, None),
    ];
    store.record_notifications(&batch).await.expect("record");
    store
        .record_notifications(&[message("a", 1, Some(1)), message("d", 1, None)])
        .await
        .expect("again, one of them new");
    let mine = store
        .notifications_for_user(UserId(1), 10)
        .await
        .expect("read");
    let keys: Vec<&str> = mine.iter().map(|n| n.dedup_key.as_str()).collect();
    // Newest first by send time, on both stores.
    assert_eq!(keys, ["b", "d", "a"]);
    // The body reads back as written.
    assert_eq!(mine[2], message("a", 1, Some(1)));
    assert_eq!(
        store
            .notifications_for_user(UserId(1), 1)
            .await
            .expect("read")
            .len(),
        1
    );
}

/// Messages to providers are logged in packs, one per batch, with the orders they ride
/// with, and read back newest first; a second delivery is logged again; none of them is a
/// shopper's notification; a message that cannot be packed fails its whole batch.
pub async fn provider_messages_are_logged_in_packs_newest_first(store: Arc<Database>) {
    let request = |n: u128, sent_at_ms: u64| Notification {
        dedup_key: format!("{}:payment_request:payment_provider", Uuid::from_u128(n)),
        user_id: UserId(7),
        order_id: Some(OrderId(Uuid::from_u128(n))),
        kind: "payment_request".into(),
        channel: "payment_provider".into(),
        body: format!(r#"{{"orderId":"{}","total":5000}}"#, Uuid::from_u128(n)),
        sent_at_ms,
    };
    store.commit(&[put_product(1, 10)]).await.expect("product");
    // The hot path's batch: an order and a payment request in one statement.
    store
        .commit(&[
            place(order(1, 7, 1, 1, None)),
            WriteOp::LogProviderMessages(vec![request(1, 10)]),
        ])
        .await
        .expect("order and request");
    store
        .log_provider_messages(&[request(2, 11), request(3, 12)])
        .await
        .expect("a pack of two");
    store
        .log_provider_messages(&[request(2, 13)])
        .await
        .expect("the first again");
    let newest = store.provider_messages(10).await.expect("read");
    assert_eq!(
        newest,
        [
            request(2, 13),
            request(3, 12),
            request(2, 11),
            request(1, 10)
        ]
    );
    assert_eq!(store.provider_messages(2).await.expect("read"), newest[..2]);
    assert!(
        store
            .notifications_for_user(UserId(7), 10)
            .await
            .expect("read")
            .is_empty()
    );
    assert!(
        store
            .order(OrderId(Uuid::from_u128(1)))
            .await
            .expect("read")
            .is_some()
    );

    let mut torn = request(4, 14);
    torn.kind = "payment\nrequest".into();
    let refused = store
        .commit(&[
            place(order(4, 7, 1, 1, None)),
            WriteOp::LogProviderMessages(vec![torn]),
        ])
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(
        store
            .order(OrderId(Uuid::from_u128(4)))
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(store.provider_messages(10).await.expect("read"), newest);
}

/// The first delivery partner stands; a shipment reads back as written, then completed.
pub async fn deliveries_keep_the_first_partner_and_the_shipment(store: Arc<Database>) {
    store
        .commit(&[put_product(1, 5), place(order(1, 1, 1, 1, None))])
        .await
        .expect("order");
    let id = OrderId(Uuid::from_u128(1));
    assert_eq!(store.partner(id).await.expect("none yet"), None);
    assert_eq!(
        store
            .assign_partner(id, "bluedart", 5)
            .await
            .expect("assign"),
        "bluedart"
    );
    assert_eq!(
        store
            .assign_partner(id, "delhivery", 6)
            .await
            .expect("again"),
        "bluedart"
    );
    assert_eq!(
        store.partner(id).await.expect("read").as_deref(),
        Some("bluedart")
    );

    let paid = StatusChange {
        order_id: id,
        from: OrderStatus::PendingPayment,
        to: OrderStatus::Paid,
        at_ms: 150,
        ledger: vec![persistence::StockMove {
            product_id: ProductId(1),
            kind: persistence::LedgerKind::Confirm,
            units: 1,
            sale: None,
        }],
        payment: None,
    };
    store
        .commit(&[WriteOp::SetOrderStatus(paid)])
        .await
        .expect("paid");
    let mut shipment = Shipment {
        order_id: id,
        tracking_id: "TRK1".into(),
        estimated_delivery_ms: 9_000,
        shipped_at_ms: 200,
        delivered: None,
    };
    let shipped = StatusChange {
        order_id: id,
        from: OrderStatus::Paid,
        to: OrderStatus::Paid.apply(OrderEvent::Ship).expect("ships"),
        at_ms: 200,
        ledger: Vec::new(),
        payment: None,
    };
    store
        .commit(&[
            WriteOp::SetOrderStatus(shipped),
            WriteOp::PutShipment(shipment.clone()),
        ])
        .await
        .expect("shipped");
    assert_eq!(
        store.shipment(id).await.expect("read"),
        Some(shipment.clone())
    );
    shipment.delivered = Some(Delivery {
        at_ms: 8_000,
        signature: "R. Kumar".into(),
        photo_url: "https://example.com/p.jpg".into(),
    });
    store
        .commit(&[WriteOp::PutShipment(shipment.clone())])
        .await
        .expect("delivered");
    assert_eq!(store.shipment(id).await.expect("read"), Some(shipment));
    assert_eq!(
        store
            .shipment(OrderId(Uuid::from_u128(2)))
            .await
            .expect("none"),
        None
    );
}

/// Events come out oldest first, as written, a group commit's events together (one pack),
/// and leave once deleted.
pub async fn the_outbox_hands_out_events_in_order(store: Arc<Database>) {
    let event = |n: u64| {
        Event::new(
            Topic::OrderEvents,
            "order_placed",
            n,
            n,
            &serde_json::json!({ "n": n }),
        )
    };
    for commit in [1..=3, 4..=5, 6..=6] {
        let ops: Vec<WriteOp> = commit.map(|n| WriteOp::Emit(event(n))).collect();
        store.commit(&ops).await.expect("events");
    }
    let keys = |rows: &[persistence::OutboxRow]| -> Vec<String> {
        rows.iter().map(|row| row.key.clone()).collect()
    };
    assert_eq!(store.pending_events().await.expect("count"), 6);
    // Whole packs that fit in the limit, and always the oldest even if it is larger.
    let rows = store.oldest_events(4).await.expect("read");
    assert_eq!(keys(&rows), ["1", "2", "3"]);
    assert_eq!(
        keys(&store.oldest_events(1).await.expect("read")),
        ["1", "2", "3"]
    );
    assert_eq!(
        keys(&store.oldest_events(5).await.expect("read")),
        ["1", "2", "3", "4", "5"]
    );
    assert_eq!(rows[0].topic, "order-events");
    assert_eq!(rows[0].event_type, "order_placed");
    let payload: serde_json::Value = serde_json::from_str(&rows[0].payload).expect("JSON");
    assert_eq!(payload["data"]["n"], 1);
    let seqs: Vec<i64> = rows.iter().map(|row| row.seq).collect();
    store.delete_events(&seqs).await.expect("delete");
    let rest = store.oldest_events(10).await.expect("read");
    assert_eq!(keys(&rest), ["4", "5", "6"]);
    assert_eq!(store.pending_events().await.expect("count"), 3);
    let seqs: Vec<i64> = rest.iter().map(|row| row.seq).collect();
    store.delete_events(&seqs).await.expect("delete");
    assert!(store.oldest_events(10).await.expect("read").is_empty());
    assert_eq!(store.pending_events().await.expect("count"), 0);
}

/// An order is found by its key in its scope only, and a key makes one order; "delivered
/// to" needs a delivered order of that product.
pub async fn orders_are_found_by_key_and_delivery(store: Arc<Database>) {
    store
        .commit(&[
            put_product(1, 5),
            put_product(2, 5),
            place(order(1, 9, 1, 1, None)),
        ])
        .await
        .expect("order");
    let key = IdempotencyKey::parse("k1").expect("key");
    let id = OrderId(Uuid::from_u128(1));
    let by_key = |user: u64, scope: &'static str| store.order_for_key(UserId(user), scope, &key);
    assert_eq!(by_key(9, "product:1").await.expect("by key"), Some(id));
    assert_eq!(by_key(9, "product:2").await.expect("scope"), None);
    assert_eq!(by_key(8, "product:1").await.expect("user"), None);
    // Checkout's keys are looked up here before its order is placed, and the schema holds
    // one unique per user whatever the engine does: a second order with the same key
    // fails its batch, and the first keeps the key. (Buy Now's are checked by their
    // product's actor: `sqlite_store.rs`, `two_buy_now_orders_with_one_key_stop_their_product`.)
    let checkout = |n: u128| WriteOp::PlaceOrder {
        order: Order {
            idempotency_key: key.clone(),
            ..order(n, 9, 2, 1, None)
        },
        idempotency_scope: persistence::CHECKOUT_SCOPE.into(),
    };
    store.commit(&[checkout(3)]).await.expect("checkout order");
    let by_checkout_key = store.order_for_key(UserId(9), persistence::CHECKOUT_SCOPE, &key);
    assert_eq!(
        by_checkout_key.await.expect("by checkout key"),
        Some(OrderId(Uuid::from_u128(3)))
    );
    assert!(store.commit(&[checkout(4)]).await.is_err());
    let by_checkout_key = store.order_for_key(UserId(9), persistence::CHECKOUT_SCOPE, &key);
    assert_eq!(
        by_checkout_key.await.expect("by checkout key"),
        Some(OrderId(Uuid::from_u128(3)))
    );
    assert_eq!(by_key(9, "product:1").await.expect("by key"), Some(id));
    assert!(
        !store
            .delivered_to(UserId(9), ProductId(1))
            .await
            .expect("not yet")
    );
    let mut status = OrderStatus::PendingPayment;
    for (event, kind) in [
        (
            OrderEvent::PaymentSucceeded,
            Some(persistence::LedgerKind::Confirm),
        ),
        (OrderEvent::Ship, None),
        (OrderEvent::Deliver, None),
    ] {
        let to = status.apply(event).expect("legal");
        let change = StatusChange {
            order_id: id,
            from: status,
            to,
            at_ms: 500,
            ledger: kind
                .map(|kind| persistence::StockMove {
                    product_id: ProductId(1),
                    kind,
                    units: 1,
                    sale: None,
                })
                .into_iter()
                .collect(),
            payment: None,
        };
        store
            .commit(&[WriteOp::SetOrderStatus(change)])
            .await
            .expect("moves");
        status = to;
    }
    assert!(
        store
            .delivered_to(UserId(9), ProductId(1))
            .await
            .expect("delivered")
    );
    assert!(
        !store
            .delivered_to(UserId(9), ProductId(2))
            .await
            .expect("other product")
    );
    assert!(
        !store
            .delivered_to(UserId(8), ProductId(1))
            .await
            .expect("other user")
    );
    let order = store.order(id).await.expect("read").expect("exists");
    assert_eq!(order.status, OrderStatus::Delivered);
    assert_eq!(order.updated_at_ms, 500);
    let missing = OrderId(Uuid::from_u128(77));
    assert_eq!(
        store.orders(&[missing, id]).await.expect("read"),
        vec![order]
    );
    assert!(store.orders(&[]).await.expect("read").is_empty());
}

/// A bulk import creates new products with their stock (as the engine's own writes would),
/// and a second import of the same ids replaces the records and leaves the stock alone.
pub async fn an_import_creates_products_once_and_then_updates_their_records(store: Arc<Database>) {
    let imported = |id: u64, title: &str, stock: u64| ImportedProduct {
        product: Product {
            title: title.into(),
            ..super::product(id)
        },
        stock,
    };
    store
        .commit(&[put_product(1, 5)])
        .await
        .expect("product made by the engine");
    // More rows than one SQLite statement may bind, so the import spans statements.
    let first: Vec<ImportedProduct> = (1..=4_000).map(|id| imported(id, "Old", id % 7)).collect();
    let summary = store.import_products(&first, 10).await.expect("import");
    assert_eq!(
        summary,
        ImportSummary {
            created: 3_999,
            updated: 1
        }
    );

    let catalog = store.load_catalog().await.expect("catalog");
    assert_eq!(catalog.len(), 4_000);
    assert!(catalog.iter().all(|product| product.title == "Old"));
    let levels: std::collections::HashMap<ProductId, u64> = store
        .inventory_levels()
        .await
        .expect("levels")
        .into_iter()
        .map(|level| (level.product_id, level.left))
        .collect();
    assert_eq!(
        levels[&ProductId(1)],
        5,
        "an existing product keeps its stock"
    );
    assert_eq!(levels[&ProductId(13)], 13 % 7);
    assert_eq!(levels[&ProductId(14)], 0);
    store
        .commit(&[place(order(1, 1, 13, 2, None))])
        .await
        .expect("an imported product sells");
    let state = store
        .load_product(ProductId(13), 0)
        .await
        .expect("load")
        .expect("exists");
    assert_eq!(state.stock.initial, 6);
    assert_eq!(state.product.title, "Old");

    let again: Vec<ImportedProduct> = (3_999..=4_001).map(|id| imported(id, "New", 50)).collect();
    let summary = store
        .import_products(&again, 20)
        .await
        .expect("import again");
    assert_eq!(
        summary,
        ImportSummary {
            created: 1,
            updated: 2
        }
    );
    let state = store
        .load_product(ProductId(4_000), 0)
        .await
        .expect("load")
        .expect("exists");
    assert_eq!(state.product.title, "New");
    assert_eq!(
        state.stock.initial,
        4_000 % 7,
        "stock is not imported twice"
    );
    let state = store
        .load_product(ProductId(4_001), 0)
        .await
        .expect("load")
        .expect("exists");
    assert_eq!(state.stock.initial, 50);

    let twice = vec![imported(9_000, "A", 1), imported(9_000, "B", 1)];
    assert!(matches!(
        store.import_products(&twice, 30).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        store
            .load_product(ProductId(9_000), 0)
            .await
            .expect("load")
            .is_none(),
        "a refused import writes nothing"
    );
}

/// A wishlist: added once, bounded, removed; a page comes newest first with the list's
/// total; each product counts its wishers, and its wishers come in keyset pages.
pub async fn wishlists_are_bounded_and_counted(store: Arc<Database>) {
    let (alice, bob) = (UserId(7), UserId(8));
    let add = |user: UserId, product: u64, at: u64| {
        let store = Arc::clone(&store);
        async move {
            store
                .add_to_wishlist(user, ProductId(product), at, 3)
                .await
                .expect("add")
        }
    };
    assert_eq!(add(alice, 1, 100).await, WishlistAdd::Added);
    assert_eq!(add(alice, 1, 101).await, WishlistAdd::AlreadyListed);
    assert_eq!(add(alice, 2, 102).await, WishlistAdd::Added);
    assert_eq!(add(alice, 3, 103).await, WishlistAdd::Added);
    assert_eq!(add(alice, 4, 104).await, WishlistAdd::Full);
    assert_eq!(add(bob, 1, 105).await, WishlistAdd::Added);

    let item = |product: u64, at: u64| WishlistItem {
        product_id: ProductId(product),
        added_at_ms: at,
    };
    let (page, total) = store.wishlist(alice, 0, 2).await.expect("page");
    assert_eq!((page, total), (vec![item(3, 103), item(2, 102)], 3));
    let (page, _) = store.wishlist(alice, 2, 2).await.expect("page");
    assert_eq!(
        page,
        vec![item(1, 100)],
        "the second add kept the first time"
    );
    assert_eq!(store.wishlist_count(ProductId(1)).await.expect("count"), 2);
    assert_eq!(store.wishlist_count(ProductId(4)).await.expect("count"), 0);

    assert!(
        store
            .remove_from_wishlist(alice, ProductId(1))
            .await
            .expect("remove")
    );
    assert!(
        !store
            .remove_from_wishlist(alice, ProductId(1))
            .await
            .expect("again")
    );
    assert!(
        !store
            .remove_from_wishlist(alice, ProductId(9))
            .await
            .expect("never listed")
    );
    assert_eq!(store.wishlist_count(ProductId(1)).await.expect("count"), 1);
    assert_eq!(add(alice, 4, 106).await, WishlistAdd::Added, "room again");
    let (_, total) = store.wishlist(alice, 0, 10).await.expect("page");
    assert_eq!(total, 3);
    let (page, total) = store.wishlist(UserId(99), 0, 10).await.expect("empty");
    assert_eq!((page.len(), total), (0, 0));

    for user in 20..45 {
        assert_eq!(add(UserId(user), 5, 200).await, WishlistAdd::Added);
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .wishers(ProductId(5), after, 10)
            .await
            .expect("wishers");
        let Some(last) = page.last().copied() else {
            break;
        };
        assert!(page.len() <= 10);
        seen.extend(page);
        after = Some(last);
    }
    assert_eq!(seen, (20..45).map(UserId).collect::<Vec<_>>());
}

/// Many adds of one user at once, each for another product: the list ends at its bound
/// exactly, and the counts agree with the rows.
pub async fn concurrent_adds_never_pass_a_wishlist_bound(store: Arc<Database>) {
    const BOUND: u32 = 5;
    let user = UserId(3);
    let adds = (1..=40u64).map(|product| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .add_to_wishlist(user, ProductId(product), product, BOUND)
                .await
        })
    });
    let mut added = 0;
    for add in adds.collect::<Vec<_>>() {
        match add.await.expect("task").expect("add") {
            WishlistAdd::Added => added += 1,
            WishlistAdd::Full => {}
            WishlistAdd::AlreadyListed => panic!("each product once"),
        }
    }
    assert_eq!(added, BOUND);
    let (page, total) = store.wishlist(user, 0, 100).await.expect("page");
    assert_eq!(
        (page.len() as u64, total),
        (u64::from(BOUND), u64::from(BOUND))
    );
    let mut counted = 0;
    for product in 1..=40 {
        counted += store
            .wishlist_count(ProductId(product))
            .await
            .expect("count");
    }
    assert_eq!(counted, u64::from(BOUND));
}

fn campaign_plan(sale: u64, kind: CampaignKind, due_at_ms: u64, message: &str) -> CampaignPlan {
    CampaignPlan {
        sale_id: SaleId(sale),
        kind,
        product_id: ProductId(5),
        due_at_ms,
        message: message.into(),
    }
}

fn delivery(
    sale: u64,
    kind: CampaignKind,
    user: u64,
    channel: &str,
    sent: bool,
) -> CampaignDelivery {
    CampaignDelivery {
        sale_id: SaleId(sale),
        kind,
        user_id: UserId(user),
        channel: channel.into(),
        sent,
        at_ms: 900,
    }
}

/// A campaign: planned (again: a replayed event moves a campaign not started, not one
/// started), due by time, started once, its cursor moved only from where it was read,
/// its deliveries recorded and counted once, finished when every queued message is
/// accounted for.
/// A cancelled sale's campaigns stop: neither is due any more, the running one's cursor
/// does not move, its unsent messages are closed (sent ones stay recorded), a replayed
/// plan does not revive it, and both count as finished at the cancel.
pub async fn a_cancelled_campaign_stops_where_it_was(store: Arc<Database>) {
    use CampaignKind::{Announcement, Reminder};
    store
        .plan_campaigns(&[
            campaign_plan(9, Announcement, 100, "{}"),
            campaign_plan(9, Reminder, 5_000, "{}"),
        ])
        .await
        .expect("plan");
    store
        .start_campaign(SaleId(9), Announcement, 4, 200)
        .await
        .expect("start");
    let first_page = store
        .advance_campaign(
            SaleId(9),
            Announcement,
            None,
            Some(UserId(1)),
            2,
            false,
            300,
        )
        .await
        .expect("first page");
    assert!(first_page);
    let sent = CampaignDelivery {
        sale_id: SaleId(9),
        kind: Announcement,
        user_id: UserId(1),
        channel: "push".into(),
        sent: true,
        at_ms: 350,
    };
    store
        .record_campaign_deliveries(&[sent])
        .await
        .expect("one sent");
    let closed = |user: u64, channel: &'static str| {
        let store = Arc::clone(&store);
        async move {
            store
                .campaign_message_closed(SaleId(9), Announcement, UserId(user), channel)
                .await
                .expect("read")
        }
    };
    assert!(closed(1, "push").await);
    assert!(!closed(1, "email").await, "not sent yet, not cancelled");

    store
        .cancel_campaigns(SaleId(9), 400)
        .await
        .expect("cancel");
    store
        .cancel_campaigns(SaleId(9), 900)
        .await
        .expect("a replayed cancel");
    store
        .plan_campaigns(&[campaign_plan(9, Reminder, 450, "{}")])
        .await
        .expect("a replayed plan");
    assert!(
        store
            .due_campaigns(10_000, 10)
            .await
            .expect("due")
            .is_empty()
    );
    let second_page = store
        .advance_campaign(
            SaleId(9),
            Announcement,
            Some(UserId(1)),
            Some(UserId(2)),
            2,
            true,
            500,
        )
        .await
        .expect("second page");
    assert!(!second_page, "a cancelled campaign's cursor stays");
    assert!(closed(1, "email").await);
    assert!(closed(2, "push").await);
    let campaigns = store.campaigns_of_sale(SaleId(9)).await.expect("read");
    let stops: Vec<_> = campaigns
        .iter()
        .map(|c| {
            (
                c.plan.kind,
                c.plan.due_at_ms,
                c.enqueued,
                c.sent,
                c.cancelled_at_ms,
                c.finished_at_ms,
            )
        })
        .collect();
    assert_eq!(
        stops,
        [
            (Announcement, 100, 2, 1, Some(400), Some(400)),
            (Reminder, 5_000, 0, 0, Some(400), Some(400)),
        ]
    );
}

pub async fn campaigns_keep_their_cursor_and_count_each_message_once(store: Arc<Database>) {
    use CampaignKind::{Announcement, Reminder};
    store
        .plan_campaigns(&[
            campaign_plan(7, Announcement, 100, r#"{"title":"old"}"#),
            campaign_plan(7, Reminder, 5_000, "{}"),
            campaign_plan(8, Announcement, 3_000, "{}"),
        ])
        .await
        .expect("plan");
    store
        .plan_campaigns(&[campaign_plan(7, Announcement, 200, r#"{"title":"new"}"#)])
        .await
        .expect("planned again before the start");
    let due = store.due_campaigns(1_000, 10).await.expect("due");
    assert_eq!(due.len(), 1, "only sale 7's announcement is due at 1000");
    let campaign = &due[0];
    assert_eq!(
        (campaign.plan.due_at_ms, campaign.plan.message.as_str()),
        (200, r#"{"title":"new"}"#)
    );
    assert_eq!(
        (campaign.total, campaign.cursor, campaign.started_at_ms),
        (None, None, None)
    );

    store
        .start_campaign(SaleId(7), Announcement, 6, 1_000)
        .await
        .expect("start");
    store
        .start_campaign(SaleId(7), Announcement, 99, 2_000)
        .await
        .expect("started again (a restart)");
    store
        .plan_campaigns(&[campaign_plan(7, Announcement, 300, "{}")])
        .await
        .expect("planned again after the start");
    assert!(
        store
            .advance_campaign(
                SaleId(7),
                Announcement,
                None,
                Some(UserId(2)),
                4,
                false,
                1_100
            )
            .await
            .expect("first page")
    );
    assert!(
        !store
            .advance_campaign(
                SaleId(7),
                Announcement,
                None,
                Some(UserId(2)),
                4,
                false,
                1_100
            )
            .await
            .expect("the same page again"),
        "the cursor moved on: a second move from the start changes nothing"
    );
    // Sent before the cursor passes them: sale 7's wishers 1 and 2, and 3 (its last page).
    let recorded = store
        .record_campaign_deliveries(&[
            delivery(7, Announcement, 1, "push", true),
            delivery(7, Announcement, 1, "email", true),
            delivery(7, Announcement, 2, "push", true),
            delivery(7, Announcement, 2, "email", false),
            delivery(7, Announcement, 1, "push", true),
        ])
        .await
        .expect("record");
    assert_eq!(recorded, 4, "the repeated message is recorded once");
    assert!(
        store
            .campaign_message_closed(SaleId(7), Announcement, UserId(2), "email")
            .await
            .expect("delivered")
    );
    assert!(
        !store
            .campaign_message_closed(SaleId(7), Reminder, UserId(2), "email")
            .await
            .expect("not in the other campaign")
    );
    // Many at once, of two campaigns, answered in order.
    let message = |kind, user: u64, channel: &str| persistence::CampaignMessage {
        sale_id: SaleId(7),
        kind,
        user_id: UserId(user),
        channel: channel.to_owned(),
    };
    assert_eq!(
        store
            .campaign_messages_closed(&[
                message(Announcement, 2, "email"),
                message(Reminder, 1, "push"),
                message(Announcement, 3, "push"),
                message(Announcement, 1, "push"),
                message(Announcement, 2, "sms"),
            ])
            .await
            .expect("checked"),
        [true, false, false, true, false]
    );
    assert!(
        store
            .campaign_messages_closed(&[])
            .await
            .expect("none")
            .is_empty()
    );
    store
        .record_campaign_deliveries(&[
            delivery(7, Announcement, 3, "push", true),
            delivery(7, Announcement, 3, "email", true),
            delivery(7, Announcement, 2, "email", true),
        ])
        .await
        .expect("record the last page");
    let campaigns = store.campaigns_of_sale(SaleId(7)).await.expect("of sale");
    assert_eq!(campaigns.len(), 2);
    let announcement = &campaigns[0];
    assert_eq!(announcement.plan.kind, Announcement);
    assert_eq!(
        announcement.plan.due_at_ms, 200,
        "a started campaign keeps its time"
    );
    assert_eq!(
        (
            announcement.total,
            announcement.enqueued,
            announcement.sent,
            announcement.failed
        ),
        (Some(6), 4, 5, 1)
    );
    assert_eq!(announcement.started_at_ms, Some(1_000));
    assert_eq!(
        announcement.finished_at_ms, None,
        "not queued to the end yet"
    );
    assert!(
        store
            .advance_campaign(
                SaleId(7),
                Announcement,
                Some(UserId(2)),
                Some(UserId(3)),
                2,
                true,
                1_500
            )
            .await
            .expect("last page")
    );
    assert!(
        store
            .due_campaigns(10_000, 10)
            .await
            .expect("due")
            .iter()
            .all(|campaign| {
                (campaign.plan.sale_id, campaign.plan.kind) != (SaleId(7), Announcement)
            }),
        "a campaign queued to the end is not due any more"
    );
    let announcement = &store.campaigns_of_sale(SaleId(7)).await.expect("of sale")[0];
    assert!(announcement.enqueued_all);
    assert_eq!(
        (
            announcement.enqueued,
            announcement.sent + announcement.failed
        ),
        (6, 6)
    );
    assert_eq!(
        announcement.finished_at_ms,
        Some(1_500),
        "its messages went out before the cursor passed them: finished when it did"
    );
    assert_eq!(campaigns[1].plan.kind, Reminder);
    assert!(
        store
            .campaigns_of_sale(SaleId(9))
            .await
            .expect("none")
            .is_empty()
    );
}

/// A campaign that finishes when its last message is recorded, after the cursor passed.
pub async fn a_campaign_finishes_with_its_last_delivery(store: Arc<Database>) {
    use CampaignKind::Reminder;
    store
        .plan_campaigns(&[campaign_plan(4, Reminder, 10, "{}")])
        .await
        .expect("plan");
    store
        .start_campaign(SaleId(4), Reminder, 2, 20)
        .await
        .expect("start");
    assert!(
        store
            .advance_campaign(SaleId(4), Reminder, None, Some(UserId(1)), 2, true, 30)
            .await
            .expect("the only page")
    );
    store
        .record_campaign_deliveries(&[delivery(4, Reminder, 1, "push", true)])
        .await
        .expect("one");
    assert_eq!(
        store.campaigns_of_sale(SaleId(4)).await.expect("read")[0].finished_at_ms,
        None
    );
    store
        .record_campaign_deliveries(&[delivery(4, Reminder, 1, "email", false)])
        .await
        .expect("the other");
    let campaign = &store.campaigns_of_sale(SaleId(4)).await.expect("read")[0];
    assert_eq!((campaign.sent, campaign.failed), (1, 1));
    assert_eq!(campaign.finished_at_ms, Some(900));
}

/// A seller's orders hold only their lines, newest first; a payout of an order and seller
/// is written once (the first stands), and a seller's statement counts only theirs.
pub async fn sellers_see_their_orders_and_each_payout_once(store: Arc<Database>) {
    use engine::Money;
    use engine::payout::Payout;
    use persistence::{ReleasedPayout, SellerStore};

    let with_seller = |id: u64, seller: Option<u64>| WriteOp::PutProduct {
        product: Product {
            seller_id: seller.map(UserId),
            ..super::product(id)
        },
        stock_initial: 50,
        shelf_change: 50,
        at_ms: 1,
    };
    let mut two_sellers = order(3, 9, 1, 2, None);
    two_sellers.items.push(engine::order::OrderItem {
        product_id: ProductId(2),
        sale_id: None,
        quantity: 1,
        unit_price: Money(3_000),
    });
    two_sellers.total = Money(13_000);
    store
        .commit(&[
            with_seller(1, Some(70)),
            with_seller(2, Some(71)),
            with_seller(3, None),
            place(order(1, 9, 1, 1, None)),
            place(order(2, 9, 3, 1, None)),
            place(two_sellers),
        ])
        .await
        .expect("orders");
    let of_70 = store
        .seller_orders(UserId(70), 0, 10)
        .await
        .expect("orders");
    let ids: Vec<OrderId> = of_70.iter().map(|order| order.order_id).collect();
    assert_eq!(
        ids,
        [OrderId(Uuid::from_u128(3)), OrderId(Uuid::from_u128(1))],
        "newest first, only orders holding the seller's products"
    );
    assert_eq!(of_70[0].items.len(), 1, "only the seller's lines");
    assert_eq!(of_70[0].items[0].product_id, ProductId(1));
    assert_eq!(of_70[0].subtotal(), Money(10_000));
    assert_eq!(of_70[0].status, OrderStatus::PendingPayment);
    let second_page = store.seller_orders(UserId(70), 1, 10).await.expect("page");
    assert_eq!(second_page.len(), 1);
    assert_eq!(second_page[0].order_id, OrderId(Uuid::from_u128(1)));
    assert!(
        store
            .seller_orders(UserId(72), 0, 10)
            .await
            .expect("none")
            .is_empty()
    );

    let payout = |seller: u64, gross: u64, commission: u64| ReleasedPayout {
        payout: Payout {
            order_id: OrderId(Uuid::from_u128(3)),
            seller_id: UserId(seller),
            gross: Money(gross),
            commission: Money(commission),
            net: Money(gross - commission),
        },
        released_at_ms: 1_000,
    };
    store
        .commit(&[WriteOp::ReleasePayouts(vec![
            payout(70, 10_000, 1_000),
            payout(71, 3_000, 300),
        ])])
        .await
        .expect("released");
    // A replayed release (different figures, to tell them apart) changes nothing.
    store
        .commit(&[WriteOp::ReleasePayouts(vec![payout(70, 99, 9)])])
        .await
        .expect("replayed");
    let statement = store
        .seller_payouts(UserId(70), 0, 10)
        .await
        .expect("payouts");
    assert_eq!(statement.payouts, vec![payout(70, 10_000, 1_000)]);
    assert_eq!((statement.count, statement.net), (1, Money(9_000)));
    let statement = store
        .seller_payouts(UserId(71), 0, 10)
        .await
        .expect("payouts");
    assert_eq!(statement.payouts, vec![payout(71, 3_000, 300)]);
    let none = store
        .seller_payouts(UserId(72), 0, 10)
        .await
        .expect("payouts");
    assert_eq!((none.payouts.len(), none.count, none.net), (0, 0, Money(0)));
}

/// Each node's recommendation lists read back as saved; a later save of a product
/// replaces its list; other nodes' lists stay apart.
pub async fn recommendation_lists_are_saved_per_node(store: Arc<Database>) {
    use persistence::{Neighbour, NeighbourList, RecommendationStore};

    let list = |product: u64, neighbours: &[(u64, f64)]| NeighbourList {
        product_id: ProductId(product),
        neighbours: neighbours
            .iter()
            .map(|&(other, score)| Neighbour {
                product_id: ProductId(other),
                score,
                at_ms: 1_700_000_000_000,
            })
            .collect(),
    };
    store
        .save_neighbour_lists("a", &[list(1, &[(2, 3.5), (3, 1.0)]), list(2, &[(1, 3.5)])])
        .await
        .expect("saved");
    store
        .save_neighbour_lists("b", &[list(1, &[(4, 0.25)])])
        .await
        .expect("saved");
    store
        .save_neighbour_lists("a", &[list(1, &[(2, 6.5)])])
        .await
        .expect("replaced");
    let mut of_a = store.neighbour_lists("a").await.expect("read");
    of_a.sort_by_key(|list| list.product_id);
    assert_eq!(of_a, vec![list(1, &[(2, 6.5)]), list(2, &[(1, 3.5)])]);
    assert_eq!(
        store.neighbour_lists("b").await.expect("read"),
        vec![list(1, &[(4, 0.25)])]
    );
    assert!(store.neighbour_lists("c").await.expect("read").is_empty());
}
