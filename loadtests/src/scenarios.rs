//! The goose scenarios. Each transaction reads the shared [`Plan`](crate::plan::Plan).

use std::time::Instant;

use goose::prelude::*;
use serde_json::{Value, json};

use crate::plan::plan;

/// Per goose user: a small PRNG (no shared state, no dependency) and the orders placed.
#[derive(Clone)]
struct Shopper {
    random: u64,
    /// Orders placed, with the shopper (token) who placed them.
    orders: Vec<(String, usize)>,
}

impl Shopper {
    fn next(&mut self) -> u64 {
        // xorshift64*: plenty for picking products.
        self.random ^= self.random >> 12;
        self.random ^= self.random << 25;
        self.random ^= self.random >> 27;
        self.random.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

async fn start(user: &mut GooseUser) -> TransactionResult {
    let seed = (user.weighted_users_index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    user.set_session_data(Shopper {
        random: seed | 1,
        orders: Vec::new(),
    });
    Ok(())
}

fn random(user: &mut GooseUser) -> u64 {
    match user.get_session_data_mut::<Shopper>() {
        Some(shopper) => shopper.next(),
        None => 0,
    }
}

async fn buy_now(user: &mut GooseUser) -> TransactionResult {
    let plan = plan();
    let product = plan.pick_product(random(user));
    let shopper_index = plan.next_shopper();
    let builder = user
        .get_request_builder(&GooseMethod::Post, "/api/v1/buy-now")?
        .bearer_auth(plan.token(shopper_index))
        .header("Idempotency-Key", plan.next_idempotency_key())
        .json(&json!({ "productId": product, "quantity": plan.quantity }));
    let request = GooseRequest::builder()
        .name("buy-now")
        .set_request_builder(builder)
        .expect_status_code(201)
        .build();
    let started = Instant::now();
    let goose = user.request(request).await?;
    let status = goose
        .response
        .as_ref()
        .map_or(0, |response| response.status().as_u16());
    plan.stats.record(started.elapsed(), status, plan.quantity);
    if let Some(wait) = goose.response.as_ref().ok().and_then(retry_after) {
        back_off(user, wait).await;
        return Ok(());
    }
    if status == 201
        && let Ok(response) = goose.response
        && let Ok(body) = response.json::<Value>().await
        && let Some(order_id) = body["orderId"].as_str()
        && let Some(shopper) = user.get_session_data_mut::<Shopper>()
    {
        // Keep a few for the order-status checks of the mixed scenario.
        if shopper.orders.len() < 16 {
            shopper.orders.push((order_id.to_owned(), shopper_index));
        }
    }
    Ok(())
}

/// The wait a shed answer (429/503) asks for, in seconds, if it asks for one.
fn retry_after(response: &reqwest::Response) -> Option<u64> {
    if !matches!(response.status().as_u16(), 429 | 503) {
        return None;
    }
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// What the shop's app does with a shed answer: wait out Retry-After, spread between half
/// and one and a half times it so that the shed shoppers do not all come back in the same
/// instant. With `--ignore-retry-after` the shopper presses again at once instead.
async fn back_off(user: &mut GooseUser, seconds: u64) {
    if !plan().honor_retry_after {
        return;
    }
    let base_ms = seconds.min(30) * 1_000;
    let spread_ms = base_ms / 2 + random(user) % (base_ms + 1);
    tokio::time::sleep(std::time::Duration::from_millis(spread_ms)).await;
}

async fn browse_category(user: &mut GooseUser) -> TransactionResult {
    let plan = plan();
    let random = random(user);
    let category = &plan.categories[(random % plan.categories.len() as u64) as usize];
    let sort = if random & 1 == 0 {
        "popularity"
    } else {
        "price"
    };
    let path = if random & 2 == 0 {
        format!("/api/v1/products?category={category}&sort={sort}&pageSize=20")
    } else {
        format!(
            "/api/v1/products?category={category}&sort={sort}&priceMin=10000&priceMax=200000&pageSize=20"
        )
    };
    let request = GooseRequest::builder()
        .path(path.as_str())
        .name("list-products")
        .build();
    user.request(request).await?;
    Ok(())
}

async fn product_page(user: &mut GooseUser) -> TransactionResult {
    let product = plan().pick_product(random(user));
    let path = format!("/api/v1/products/{product}");
    let request = GooseRequest::builder()
        .path(path.as_str())
        .name("product-page")
        .build();
    user.request(request).await?;
    let path = format!("/api/v1/inventory/{product}");
    let request = GooseRequest::builder()
        .path(path.as_str())
        .name("inventory")
        .build();
    user.request(request).await?;
    Ok(())
}

async fn order_status(user: &mut GooseUser) -> TransactionResult {
    let order = user
        .get_session_data::<Shopper>()
        .and_then(|shopper| shopper.orders.last().cloned());
    let Some((order, shopper_index)) = order else {
        return Ok(());
    };
    // As the shopper who placed it: only owners may read an order.
    let path = format!("/api/v1/orders/{order}");
    let builder = user
        .get_request_builder(&GooseMethod::Get, &path)?
        .bearer_auth(plan().token(shopper_index));
    let request = GooseRequest::builder()
        .name("order-status")
        .set_request_builder(builder)
        .build();
    user.request(request).await?;
    Ok(())
}

/// Adds a product to this goose user's cart, then checks the cart out as one order.
async fn cart_checkout(user: &mut GooseUser) -> TransactionResult {
    let plan = plan();
    let product = plan.pick_product(random(user));
    let token = plan.cart_token(user.weighted_users_index).to_owned();
    let builder = user
        .get_request_builder(&GooseMethod::Post, "/api/v1/cart/items")?
        .bearer_auth(&token)
        .json(&json!({ "productId": product, "quantity": plan.quantity }));
    let request = GooseRequest::builder()
        .name("cart-add")
        .set_request_builder(builder)
        .expect_status_code(201)
        .build();
    user.request(request).await?;
    let builder = user
        .get_request_builder(&GooseMethod::Post, "/api/v1/orders")?
        .bearer_auth(&token)
        .header("Idempotency-Key", plan.next_idempotency_key())
        .json(&json!({ "addressId": "load-home", "paymentMethod": "UPI" }));
    let request = GooseRequest::builder()
        .name("checkout")
        .set_request_builder(builder)
        .expect_status_code(201)
        .build();
    let goose = user.request(request).await?;
    let Ok(response) = goose.response else {
        return Ok(());
    };
    let status = response.status().as_u16();
    if let Some(wait) = retry_after(&response) {
        back_off(user, wait).await;
        return Ok(());
    }
    let Ok(body) = response.json::<Value>().await else {
        return Ok(());
    };
    if status == 409 {
        // As a shopper would: take out the lines that cannot be had, keep the rest.
        let refused: Vec<u64> = body["error"]["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|line| line["productId"].as_u64())
            .collect();
        for product in refused {
            let path = format!("/api/v1/cart/items/{product}");
            let builder = user
                .get_request_builder(&GooseMethod::Delete, &path)?
                .bearer_auth(&token);
            let request = GooseRequest::builder()
                .name("cart-remove")
                .set_request_builder(builder)
                .build();
            user.request(request).await?;
        }
    }
    if status == 201 {
        let units: u64 = body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item["quantity"].as_u64())
            .sum();
        plan.stats
            .checkouts_placed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        plan.stats
            .checkout_units
            .fetch_add(units, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(())
}

pub fn flash_sale() -> Result<Scenario, GooseError> {
    Ok(scenario!("flash-sale")
        .register_transaction(transaction!(start).set_on_start())
        .register_transaction(transaction!(buy_now).set_name("buy-now")))
}

pub fn browse() -> Result<Scenario, GooseError> {
    Ok(scenario!("browse")
        .register_transaction(transaction!(start).set_on_start())
        .register_transaction(
            transaction!(browse_category)
                .set_name("list")
                .set_weight(3)?,
        )
        .register_transaction(
            transaction!(product_page)
                .set_name("product")
                .set_weight(2)?,
        ))
}

/// Shoppers as a shop sees them: mostly browsing, some buying now, some through the cart,
/// a few checking an order.
pub fn mixed() -> Result<Scenario, GooseError> {
    Ok(scenario!("mixed")
        .register_transaction(transaction!(start).set_on_start())
        .register_transaction(
            transaction!(browse_category)
                .set_name("list")
                .set_weight(6)?,
        )
        .register_transaction(
            transaction!(product_page)
                .set_name("product")
                .set_weight(4)?,
        )
        .register_transaction(transaction!(buy_now).set_name("buy-now").set_weight(3)?)
        .register_transaction(
            transaction!(cart_checkout)
                .set_name("cart-checkout")
                .set_weight(1)?,
        )
        .register_transaction(
            transaction!(order_status)
                .set_name("order-status")
                .set_weight(1)?,
        ))
}

/// How long one watcher session lasts before it reconnects (a shopper's page view).
const WATCH_SESSION: std::time::Duration = std::time::Duration::from_secs(5);

/// A shopper's screen watching the hot product's stock: connect, get the snapshot, take
/// updates for a page view, leave. Timed by hand (goose has no WebSocket client):
/// `ws-snapshot` is connect-to-first-message, `ws-update` the gap between updates.
async fn watch_stock(user: &mut GooseUser) -> TransactionResult {
    use gateway::feed_client::StockFeedClient;
    let plan = plan();
    let started = Instant::now();
    let base = user.base_url.as_str().to_owned();
    let Ok(mut feed) =
        StockFeedClient::connect(&base, &[engine::ProductId(plan.hot_product)]).await
    else {
        user.record_custom_request_duration(
            "WS",
            "ws-snapshot",
            started.elapsed(),
            false,
            None,
            Some("connect failed"),
        )
        .await?;
        return Ok(());
    };
    let mut last = None::<Instant>;
    while started.elapsed() < WATCH_SESSION {
        let remaining = WATCH_SESSION.saturating_sub(started.elapsed());
        let Ok(Ok(_view)) = tokio::time::timeout(remaining, feed.next()).await else {
            break;
        };
        match last {
            None => {
                user.record_custom_request_duration(
                    "WS",
                    "ws-snapshot",
                    started.elapsed(),
                    true,
                    None,
                    None,
                )
                .await?;
            }
            Some(previous) => {
                user.record_custom_request_duration(
                    "WS",
                    "ws-update",
                    previous.elapsed(),
                    true,
                    None,
                    None,
                )
                .await?;
            }
        }
        plan.stats
            .watch_messages
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        last = Some(Instant::now());
    }
    Ok(())
}

/// Screens watching the hot product while buyers press Buy Now on it.
pub fn watchers() -> Result<Scenario, GooseError> {
    Ok(scenario!("watchers")
        .register_transaction(transaction!(start).set_on_start())
        .register_transaction(transaction!(watch_stock).set_name("watch")))
}

#[cfg(test)]
mod tests {
    use super::retry_after;

    fn answer(status: u16, retry_after: Option<&str>) -> reqwest::Response {
        let mut builder = axum::http::Response::builder().status(status);
        if let Some(value) = retry_after {
            builder = builder.header("retry-after", value);
        }
        reqwest::Response::from(builder.body("").expect("a valid response"))
    }

    #[test]
    fn only_shed_answers_ask_for_a_wait() {
        assert_eq!(retry_after(&answer(503, Some("1"))), Some(1));
        assert_eq!(retry_after(&answer(429, Some(" 2 "))), Some(2));
        assert_eq!(retry_after(&answer(503, None)), None);
        // An HTTP date or garbage is not a number of seconds: no wait rather than a guess.
        assert_eq!(
            retry_after(&answer(503, Some("Wed, 21 Oct 2026 07:28:00 GMT"))),
            None
        );
        assert_eq!(retry_after(&answer(201, Some("1"))), None);
    }
}
