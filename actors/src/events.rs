//! Which events each change of the shop emits, and what they say. Written to the outbox in
//! the change's own transaction (see `persistence::event`).

use engine::order::{Order, OrderEvent, OrderItem, OrderStatus};
use engine::{FlashSale, Money, OrderId, ProductId, SaleId, UserId};
use persistence::{Event, Topic};
use serde::Serialize;
use serde_json::json;

/// The `data` of every order event. A typed struct rather than `json!`: one is written on
/// every Buy Now, on the actor's turn, so it goes straight to JSON text.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrderData<'a> {
    order_id: OrderId,
    user_id: UserId,
    status: OrderStatus,
    total: Money,
    #[serde(serialize_with = "item_data")]
    items: &'a [OrderItem],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemData {
    product_id: ProductId,
    sale_id: Option<SaleId>,
    quantity: u32,
    unit_price: Money,
}

fn item_data<S: serde::Serializer>(items: &&[OrderItem], out: S) -> Result<S::Ok, S::Error> {
    out.collect_seq(items.iter().map(|item| ItemData {
        product_id: item.product_id,
        sale_id: item.sale_id,
        quantity: item.quantity,
        unit_price: item.unit_price,
    }))
}

fn order_event(order: &Order, event_type: &'static str, at_ms: u64) -> Event {
    let data = OrderData {
        order_id: order.id,
        user_id: order.user_id,
        status: order.status,
        total: order.total,
        items: &order.items,
    };
    Event::new(Topic::OrderEvents, event_type, order.id, at_ms, &data)
}

pub fn order_placed(order: &Order) -> Event {
    order_event(order, "order_placed", order.created_at_ms)
}

/// The events of an order moving from `from` to `order.status` because of `cause`.
pub fn order_moved(order: &Order, from: OrderStatus, cause: OrderEvent, at_ms: u64) -> Vec<Event> {
    let types: &[&'static str] = match (from, order.status, cause) {
        (OrderStatus::PendingPayment, OrderStatus::Paid, _) => {
            &["payment_completed", "order_confirmed"]
        }
        (OrderStatus::PendingPayment, OrderStatus::Cancelled, OrderEvent::PaymentFailed) => {
            &["payment_failed", "order_cancelled"]
        }
        (OrderStatus::PendingPayment, OrderStatus::Cancelled, _) => &["order_cancelled"],
        (OrderStatus::PendingPayment, OrderStatus::Expired, _) => &["order_expired"],
        (OrderStatus::Paid, OrderStatus::Shipped, _) => &["order_shipped"],
        (OrderStatus::Shipped, OrderStatus::Delivered, _) => &["order_delivered"],
        _ => &[],
    };
    types
        .iter()
        .map(|event_type| order_event(order, event_type, at_ms))
        .collect()
}

/// `title` is the product's: a sale's campaign tells wishers of it by name.
pub fn flash_sale_scheduled(sale: &FlashSale, title: &str, at_ms: u64) -> Event {
    let body = sale_body(sale, title);
    Event::new(
        Topic::ProductEvents,
        "flash_sale_scheduled",
        sale.product_id,
        at_ms,
        &body,
    )
}

/// What `flash_sale_scheduled` says of a sale (and `flash_sale_rescheduled`, which plans
/// its campaign again from it).
fn sale_body(sale: &FlashSale, title: &str) -> serde_json::Value {
    json!({
        "saleId": sale.id, "productId": sale.product_id, "title": title, "salePrice": sale.sale_price,
        "originalPrice": sale.original_price, "startMs": sale.start_ms, "endMs": sale.end_ms,
        "stock": sale.stock, "perUserLimit": sale.per_user_limit,
    })
}

/// A sale an admin cancelled: it ended at `cancelledAtMs`; its campaign stops.
pub fn flash_sale_cancelled(sale: &FlashSale, at_ms: u64) -> Event {
    Event::new(
        Topic::ProductEvents,
        "flash_sale_cancelled",
        sale.product_id,
        at_ms,
        &json!({
            "saleId": sale.id, "productId": sale.product_id, "startMs": sale.start_ms,
            "endMs": sale.end_ms, "cancelledAtMs": sale.cancelled_at_ms,
        }),
    )
}

/// A sale moved to another window before it started: the body of `flash_sale_scheduled`
/// (its campaign is planned again from it) and where it started before.
pub fn flash_sale_rescheduled(
    sale: &FlashSale,
    title: &str,
    previous_start_ms: u64,
    at_ms: u64,
) -> Event {
    let mut body = sale_body(sale, title);
    body["previousStartMs"] = previous_start_ms.into();
    Event::new(
        Topic::ProductEvents,
        "flash_sale_rescheduled",
        sale.product_id,
        at_ms,
        &body,
    )
}

pub fn flash_sale_stock_out(sale: &FlashSale, at_ms: u64) -> Event {
    Event::new(
        Topic::ProductEvents,
        "flash_sale_stock_out",
        sale.product_id,
        at_ms,
        &json!({ "saleId": sale.id, "productId": sale.product_id, "stock": sale.stock }),
    )
}

pub fn product_viewed(product_id: ProductId, user: Option<engine::UserId>, at_ms: u64) -> Event {
    Event::new(
        Topic::ProductEvents,
        "product_viewed",
        product_id,
        at_ms,
        &json!({ "productId": product_id, "userId": user }),
    )
}

pub fn delivery_location_updated(view: &crate::TrackingView, at_ms: u64) -> Event {
    Event::new(
        Topic::OrderEvents,
        "delivery_location_updated",
        view.order_id,
        at_ms,
        &json!({ "orderId": view.order_id, "trackingId": view.tracking_id, "location": view.location }),
    )
}

pub fn cart_item_added(
    user: engine::UserId,
    product_id: ProductId,
    quantity: u32,
    cart_quantity: u32,
    at_ms: u64,
) -> Event {
    Event::new(
        Topic::UserEvents,
        "cart_item_added",
        user,
        at_ms,
        &json!({
            "userId": user, "productId": product_id, "quantity": quantity,
            "cartQuantity": cart_quantity,
        }),
    )
}

/// A cart left unchanged since `touched_at_ms`: the workflow sends its one reminder.
pub fn cart_abandoned(
    user: engine::UserId,
    lines: &[persistence::CartItem],
    touched_at_ms: u64,
    at_ms: u64,
) -> Event {
    Event::new(
        Topic::UserEvents,
        "cart_abandoned",
        user,
        at_ms,
        &json!({
            "userId": user,
            "touchedAt": touched_at_ms,
            "items": lines.iter().map(|line| json!({
                "productId": line.product_id, "quantity": line.quantity,
            })).collect::<Vec<_>>(),
        }),
    )
}

pub fn wishlist_item_added(user: engine::UserId, product_id: ProductId, at_ms: u64) -> Event {
    Event::new(
        Topic::UserEvents,
        "wishlist_item_added",
        user,
        at_ms,
        &json!({ "userId": user, "productId": product_id }),
    )
}

/// `user` when the searcher is signed in; anonymous searches are keyed by their text.
pub fn search_performed(
    user: Option<engine::UserId>,
    query: &str,
    results: u64,
    at_ms: u64,
) -> Event {
    let key = user.map_or_else(|| format!("anonymous:{query}"), |user| user.to_string());
    Event::new(
        Topic::UserEvents,
        "search_performed",
        key,
        at_ms,
        &json!({ "userId": user, "query": query, "results": results }),
    )
}

/// A seller was paid for a delivered order (keyed by the order, so it follows the
/// order's own events); the workflow tells the seller.
pub fn payout_released(released: &persistence::ReleasedPayout) -> Event {
    let payout = &released.payout;
    Event::new(
        Topic::OrderEvents,
        "payout_released",
        payout.order_id,
        released.released_at_ms,
        &json!({
            "orderId": payout.order_id, "sellerId": payout.seller_id,
            "gross": payout.gross, "commission": payout.commission, "net": payout.net,
            "status": persistence::ReleasedPayout::STATUS,
            "releasedAt": released.released_at_ms,
        }),
    )
}
