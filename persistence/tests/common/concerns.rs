//! The contracts of the concerns beside the ledger, run against each database: what one
//! writes, the next reads back the same, on SQLite and on PostgreSQL.

use std::sync::Arc;

use engine::order::{OrderEvent, OrderStatus};
use engine::{IdempotencyKey, OrderId, Product, ProductId, UserId};
use persistence::{
    CartItem, CartStore, CatalogStore, Database, Deliveries, Delivery, Event, ImportSummary,
    ImportedProduct, Notification, NotificationStore, OrderLedger, OrderLookup, Outbox, Review,
    ReviewStore, Shipment, StatusChange, StoreError, Topic, WriteOp,
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
            .remove_cart_items(user, &[ProductId(1), ProductId(7)])
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
    let message = |key: &str, user: u64, order: Option<u128>| Notification {
        dedup_key: key.into(),
        user_id: UserId(user),
        order_id: order.map(|n| OrderId(Uuid::from_u128(n))),
        kind: "order_confirmation".into(),
        channel: "email".into(),
        body: format!(r#"{{"key":"{key}"}}"#),
        sent_at_ms: 10,
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
    assert_eq!(keys, ["d", "b", "a"]);
    // The body is JSON (PostgreSQL keeps it as jsonb, which normalizes its spacing).
    let body: serde_json::Value = serde_json::from_str(&mine[2].body).expect("JSON body");
    assert_eq!(body, serde_json::json!({ "key": "a" }));
    let first = Notification {
        body: message("a", 1, Some(1)).body,
        ..mine[2].clone()
    };
    assert_eq!(first, message("a", 1, Some(1)));
    assert_eq!(
        store
            .notifications_for_user(UserId(1), 1)
            .await
            .expect("read")
            .len(),
        1
    );
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
    // The schema holds a key unique per user and scope whatever the engine does: a
    // second order with the same key fails its batch, and the first keeps the key.
    let mut again = order(2, 9, 1, 1, None);
    again.idempotency_key = key.clone();
    assert!(store.commit(&[place(again)]).await.is_err());
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
