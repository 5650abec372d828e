//! Changing a scheduled sale: an admin moves it before it starts (its campaign's reminder
//! follows the new start) or cancels it, scheduled or live (its leftover goes back to the
//! shelf, its campaign stops midway, and a restart keeps it cancelled).

use std::time::Duration;

use gateway::auth::Role;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, eventually, rfc3339, spawn_app_in, spawn_app_with};

const PRODUCT: u64 = 5;
const HOUR_MS: u64 = 3_600_000;

/// Schedules a sale of `stock` units of `PRODUCT` for an hour from `starts_in_ms` from now.
async fn schedule(app: &TestApp, starts_in_ms: u64, stock: u64) -> Value {
    let start_ms = actors::clock::now_ms() + starts_in_ms;
    app.schedule_sale(PRODUCT, (start_ms, start_ms + HOUR_MS), stock, 1)
        .await
}

async fn move_sale(app: &TestApp, sale: u64, token: &str, body: Value) -> Response {
    app.client
        .patch(app.url(&format!("/api/v1/flash-sales/{sale}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("sent")
}

async fn cancel_sale(app: &TestApp, sale: u64, token: &str) -> Response {
    app.client
        .delete(app.url(&format!("/api/v1/flash-sales/{sale}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
}

async fn listed_sales(app: &TestApp) -> Vec<u64> {
    let body: Value = app
        .get("/api/v1/flash-sales")
        .await
        .json()
        .await
        .expect("json");
    body.as_array()
        .expect("a list")
        .iter()
        .filter_map(|sale| sale["id"].as_u64())
        .collect()
}

async fn campaign(app: &TestApp, sale: u64) -> Option<Value> {
    let response = app
        .get_as(&format!("/api/v1/admin/campaigns/{sale}"), &app.admin())
        .await;
    (response.status() == StatusCode::OK).then_some(response.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_moves_before_it_starts_and_a_cancelled_one_gives_its_stock_back() {
    let dir = tempfile::tempdir().expect("a directory");
    let app = spawn_app_in(dir.path(), |_| {}).await;
    let admin = app.admin();
    app.create_product(PRODUCT, 99_900, 10).await;
    let sale = schedule(&app, HOUR_MS, 4).await;
    let id = sale["id"].as_u64().expect("an id");
    assert_eq!(app.inventory(PRODUCT).await["regularAvailable"], 6);

    // Moved two hours later, open-ended.
    let start_ms = actors::clock::now_ms() + 2 * HOUR_MS;
    let moved = move_sale(&app, id, &admin, json!({"startTime": rfc3339(start_ms)})).await;
    assert_eq!(moved.status(), StatusCode::OK);
    let moved: Value = moved.json().await.expect("json");
    assert_eq!(moved["startTime"], rfc3339(start_ms));
    assert!(moved["endTime"].is_null(), "{moved}");
    assert_eq!(
        (moved["stock"].clone(), moved["id"].clone()),
        (json!(4), json!(id))
    );

    // Refused: customers, nonsense, unknown sales.
    let customer = app.token(7, Role::Customer);
    let forbidden = move_sale(&app, id, &customer, json!({"startTime": rfc3339(start_ms)})).await;
    assert_eq!(
        error_code(forbidden).await,
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
    let cases = [
        json!({"startTime": "tomorrow"}),
        json!({"startTime": rfc3339(start_ms), "endTime": rfc3339(start_ms - 1_000)}),
    ];
    for body in cases {
        let refused = move_sale(&app, id, &admin, body).await;
        assert_eq!(
            error_code(refused).await,
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field".into())
        );
    }
    let unknown = cancel_sale(&app, 999, &admin).await;
    assert_eq!(
        error_code(unknown).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    let forbidden = cancel_sale(&app, id, &customer).await;
    assert_eq!(error_code(forbidden).await.0, StatusCode::FORBIDDEN);
    assert_eq!(listed_sales(&app).await, [id]);

    // Cancelled: off the board, its four units back on the shelf, and final.
    let cancelled = cancel_sale(&app, id, &admin).await;
    let status = cancelled.status();
    let cancelled: Value = cancelled.json().await.expect("json");
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert!(cancelled["cancelledAt"].is_string(), "{cancelled}");
    assert_eq!(cancelled["startTime"], rfc3339(start_ms));
    let inventory = app.inventory(PRODUCT).await;
    assert_eq!(inventory["regularAvailable"], 10, "{inventory}");
    assert!(listed_sales(&app).await.is_empty());
    let again = cancel_sale(&app, id, &admin).await;
    assert_eq!(
        error_code(again).await,
        (StatusCode::CONFLICT, "sale_refused".into())
    );
    let moved_after = move_sale(&app, id, &admin, json!({"startTime": rfc3339(start_ms)})).await;
    assert_eq!(error_code(moved_after).await.0, StatusCode::CONFLICT);

    // A live sale cannot move, but can be cancelled: what it sold stays sold.
    let live = app.start_sale(PRODUCT, 3, 1).await;
    let live_id = live["id"].as_u64().expect("an id");
    let bought = app.buy(8, PRODUCT, 1, "live-sale-buy").await;
    assert_eq!(bought.status(), StatusCode::CREATED);
    let refused = move_sale(
        &app,
        live_id,
        &admin,
        json!({"startTime": rfc3339(start_ms)}),
    )
    .await;
    assert_eq!(
        error_code(refused).await,
        (StatusCode::CONFLICT, "sale_refused".into())
    );
    let cancelled = cancel_sale(&app, live_id, &admin).await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    let inventory = app.inventory(PRODUCT).await;
    assert_eq!(inventory["regularAvailable"], 9, "{inventory}");
    assert_eq!(inventory["sale"]["phase"], "ended", "{inventory}");
    // Units of the cancelled sale are sold at the regular price now.
    let after = app.buy(9, PRODUCT, 1, "after-cancel").await;
    let after: Value = after.json().await.expect("json");
    assert_eq!(after["unitPrice"], 99_900, "{after}");

    // A restart keeps it cancelled.
    app.stop().await;
    let app = spawn_app_in(dir.path(), |_| {}).await;
    let inventory = app.inventory(PRODUCT).await;
    assert_eq!(inventory["sale"]["phase"], "ended", "{inventory}");
    assert_eq!(inventory["regularAvailable"], 8, "{inventory}");
    assert!(listed_sales(&app).await.is_empty());
    app.stop().await;
}

/// Sent messages of a campaign, as the admin endpoint counts them.
fn sent(campaign: &Value) -> u64 {
    campaign["sent"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_sale_re_times_its_reminder_and_a_cancelled_one_stops_its_campaign() {
    const WISHERS: u64 = 60;
    // 20 messages a second: the announcement's 120 messages take six seconds.
    let app = spawn_app_with(|settings| {
        settings.campaigns.send_rate_per_second = 20;
        settings.campaigns.page_size = 10;
        settings.campaigns.reminder_before_secs = 600;
    })
    .await;
    app.create_product(PRODUCT, 99_900, 10).await;
    for user in 100..100 + WISHERS {
        let added = app.add_to_wishlist(user, PRODUCT).await;
        assert_eq!(added.status(), StatusCode::CREATED);
    }
    let id = schedule(&app, 2 * HOUR_MS, 5).await["id"]
        .as_u64()
        .expect("an id");
    let started = eventually(Duration::from_secs(20), || async {
        campaign(&app, id)
            .await
            .filter(|campaign| sent(campaign) > 0)
    })
    .await;
    assert_eq!(started["total"], WISHERS * 2);

    let start_ms = actors::clock::now_ms() + 3 * HOUR_MS;
    let moved = move_sale(
        &app,
        id,
        &app.admin(),
        json!({"startTime": rfc3339(start_ms)}),
    )
    .await;
    assert_eq!(moved.status(), StatusCode::OK);
    let retimed = eventually(Duration::from_secs(20), || async {
        campaign(&app, id)
            .await
            .filter(|campaign| campaign["reminder"]["dueAt"] == rfc3339(start_ms - 600_000))
    })
    .await;
    assert!(retimed["reminder"]["startedAt"].is_null(), "{retimed}");

    let cancelled = cancel_sale(&app, id, &app.admin()).await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    let stopped = eventually(Duration::from_secs(20), || async {
        campaign(&app, id)
            .await
            .filter(|campaign| campaign["cancelledAt"].is_string())
    })
    .await;
    assert!(stopped["reminder"]["cancelledAt"].is_string(), "{stopped}");
    // What was being sent at the cancel settles; then nothing more goes out.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = sent(&campaign(&app, id).await.expect("the campaign"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let last = campaign(&app, id).await.expect("the campaign");
    assert_eq!(sent(&last), settled, "{last}");
    assert!(settled < WISHERS * 2, "stopped midway: {last}");
    assert!(last["finishedAt"].is_string(), "{last}");
    let mut delivered = 0;
    for user in 100..100 + WISHERS {
        delivered += app
            .notifications(user)
            .await
            .iter()
            .filter(|message| message["body"]["saleId"] == id)
            .count() as u64;
    }
    assert_eq!(delivered, settled, "every message sent was counted once");
    app.stop().await;
}
