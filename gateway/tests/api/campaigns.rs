//! Sale campaigns: scheduling a sale tells every customer who wishlisted its product, on
//! push and email, once each, and reminds them before the start; the admins follow the
//! campaign's counts. In process on the embedded store, and over RabbitMQ on PostgreSQL
//! with a `kill -9` of the engine halfway through.

use std::collections::HashMap;
use std::time::Duration;

use gateway::auth::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Server, TestApp, error_code, eventually, free_port, rfc3339, spawn_app_with, wait_ready,
};

const PRODUCT: u64 = 5;

/// Schedules a sale of `PRODUCT` starting `starts_in` from now; its id.
async fn schedule_sale(
    client: &reqwest::Client,
    address: &str,
    admin: &str,
    starts_in: Duration,
) -> u64 {
    let start_ms = actors::clock::now_ms() + starts_in.as_millis() as u64;
    let response = client
        .post(format!("{address}/api/v1/flash-sales"))
        .bearer_auth(admin)
        .json(&json!({
            "productId": PRODUCT, "salePrice": 49_900, "originalPrice": 99_900,
            "startTime": rfc3339(start_ms), "endTime": rfc3339(start_ms + 3_600_000),
            "stock": 5, "perUserLimit": 1
        }))
        .send()
        .await
        .expect("sent");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_u64().expect("a sale id")
}

async fn campaign(
    client: &reqwest::Client,
    address: &str,
    admin: &str,
    sale: u64,
) -> Option<Value> {
    let response = client
        .get(format!("{address}/api/v1/admin/campaigns/{sale}"))
        .bearer_auth(admin)
        .send()
        .await
        .ok()?;
    if response.status() != StatusCode::OK {
        return None;
    }
    response.json().await.ok()
}

/// The counts of a campaign, as the admin endpoint gives them.
fn counts(campaign: &Value) -> [u64; 4] {
    ["total", "enqueued", "sent", "failed"].map(|field| campaign[field].as_u64().unwrap_or(0))
}

/// The sale messages a user was sent: (kind, channel) -> how many.
async fn sale_messages(app: &TestApp, user: u64, sale: u64) -> HashMap<(String, String), u32> {
    let mut seen = HashMap::new();
    for message in app.notifications(user).await {
        if message["body"]["saleId"] != sale {
            continue;
        }
        let kind = message["kind"].as_str().unwrap_or_default().to_owned();
        let channel = message["channel"].as_str().unwrap_or_default().to_owned();
        *seen.entry((kind, channel)).or_default() += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_is_announced_to_every_wisher_once_and_reminded_of_before_it_starts() {
    const WISHERS: u64 = 40;
    let app = spawn_app_with(|settings| {
        settings.campaigns.reminder_before_secs = 600;
        settings.campaigns.page_size = 7;
    })
    .await;
    app.create_product(PRODUCT, 99_900, 10).await;
    app.create_product(6, 1_000, 10).await;
    for user in 100..100 + WISHERS {
        let added = app.add_to_wishlist(user, PRODUCT).await;
        assert_eq!(added.status(), StatusCode::CREATED);
    }
    // Someone who wants another product hears nothing of this sale.
    let other = app.add_to_wishlist(99, 6).await;
    assert_eq!(other.status(), StatusCode::CREATED);

    let admin = app.admin();
    // The reminder is due 3 s from now.
    let sale = schedule_sale(&app.client, &app.address, &admin, Duration::from_secs(603)).await;
    let done = eventually(Duration::from_secs(30), || async {
        let campaign = campaign(&app.client, &app.address, &admin, sale).await?;
        let finished =
            campaign["finishedAt"].is_string() && campaign["reminder"]["finishedAt"].is_string();
        finished.then_some(campaign)
    })
    .await;
    let messages = WISHERS * 2;
    assert_eq!(counts(&done), [messages, messages, messages, 0], "{done}");
    assert_eq!(
        counts(&done["reminder"]),
        [messages, messages, messages, 0],
        "{done}"
    );
    assert_eq!(done["productId"], PRODUCT);
    assert!(done["startedAt"].is_string());

    let expected: HashMap<(String, String), u32> = [
        ("sale_scheduled", "push"),
        ("sale_scheduled", "email"),
        ("sale_starts_soon", "push"),
        ("sale_starts_soon", "email"),
    ]
    .into_iter()
    .map(|(kind, channel)| ((kind.to_owned(), channel.to_owned()), 1))
    .collect();
    for user in 100..100 + WISHERS {
        assert_eq!(
            sale_messages(&app, user, sale).await,
            expected,
            "user {user}"
        );
    }
    assert!(sale_messages(&app, 99, sale).await.is_empty());
    let response = app
        .get_as("/api/v1/notifications", &app.token(100, Role::Customer))
        .await;
    let body: Value = response.json().await.expect("json");
    let announcement = body["notifications"]
        .as_array()
        .expect("list")
        .iter()
        .find(|message| message["kind"] == "sale_scheduled")
        .expect("the announcement");
    assert_eq!(announcement["body"]["title"], "Phone 5");
    assert_eq!(announcement["body"]["salePrice"], 49_900);

    // The admins' view: customers may not look; a sale without a campaign is not found.
    let customer = app.token(100, Role::Customer);
    let refused = app
        .get_as(&format!("/api/v1/admin/campaigns/{sale}"), &customer)
        .await;
    assert_eq!(
        error_code(refused).await,
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
    let unknown = app.get_as("/api/v1/admin/campaigns/987654", &admin).await;
    assert_eq!(
        error_code(unknown).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    let bad = app.get_as("/api/v1/admin/campaigns/abc", &admin).await;
    assert_eq!(
        error_code(bad).await,
        (StatusCode::BAD_REQUEST, "invalid_path".into())
    );
    app.stop().await;
}

/// 20,000 wishers, RabbitMQ and PostgreSQL, the real binary: killed with SIGKILL when
/// about a quarter of the announcement went out, started again; every wisher ends with
/// exactly one push and one email of the announcement and of the reminder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_to_20000_wishers_over_rabbitmq_survives_a_kill_9() {
    use persistence::test_support::TestDatabase;
    use workflow::test_support::{rabbit_url, unique_prefix};

    const WISHERS: i64 = 20_000;
    let database = TestDatabase::create().await;
    let prefix = unique_prefix();
    let rabbit = rabbit_url();
    let env = [
        ("FLASHCART_STORE__DATABASE_URL", database.url.as_str()),
        ("FLASHCART_RABBITMQ__URL", rabbit.as_str()),
        ("FLASHCART_RABBITMQ__PREFIX", prefix.as_str()),
        ("FLASHCART_CAMPAIGNS__SEND_RATE_PER_SECOND", "4000"),
        ("FLASHCART_CAMPAIGNS__REMINDER_BEFORE_SECS", "600"),
    ];
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let mut server = Server::start_with(dir.path(), port, &env);
    wait_ready(&client, &server.address).await;
    server.create_product(&client, PRODUCT, 10).await;

    // The wishers, written straight to the store (20,000 API calls would be the test).
    let pool = sqlx::PgPool::connect(&database.url)
        .await
        .expect("postgres");
    sqlx::query(
        "INSERT INTO wishlist_items (user_id, product_id, added_at_ms) \
         SELECT user_id, $1, 0 FROM generate_series(1001, 1000 + $2) AS user_id",
    )
    .bind(PRODUCT as i64)
    .bind(WISHERS)
    .execute(&pool)
    .await
    .expect("wishers");
    sqlx::query("INSERT INTO wishlist_counts (product_id, wishers) VALUES ($1, $2)")
        .bind(PRODUCT as i64)
        .bind(WISHERS)
        .execute(&pool)
        .await
        .expect("count");

    let admin = server.token(1, Role::Admin);
    // The reminder falls due 25 s from now: after the announcement, restart included.
    let sale = schedule_sale(&client, &server.address, &admin, Duration::from_secs(625)).await;
    let messages = 2 * WISHERS as u64;
    let at_kill = eventually(Duration::from_secs(60), || async {
        let campaign = campaign(&client, &server.address, &admin, sale).await?;
        (campaign["sent"].as_u64()? >= messages / 4).then_some(campaign)
    })
    .await;
    server.kill_9();
    assert!(
        at_kill["finishedAt"].is_null(),
        "the kill came mid-campaign: {at_kill}"
    );

    let server = Server::start_with(dir.path(), port, &env);
    wait_ready(&client, &server.address).await;
    let done = eventually(Duration::from_secs(120), || async {
        let campaign = campaign(&client, &server.address, &admin, sale).await?;
        let finished =
            campaign["finishedAt"].is_string() && campaign["reminder"]["finishedAt"].is_string();
        finished.then_some(campaign)
    })
    .await;
    assert_eq!(counts(&done), [messages, messages, messages, 0], "{done}");
    assert_eq!(
        counts(&done["reminder"]),
        [messages, messages, messages, 0],
        "{done}"
    );

    // What went out, per user: each (kind, channel) exactly once, nobody left out.
    let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
        "SELECT user_id, kind, channel, count(*) FROM notifications \
         WHERE kind IN ('sale_scheduled', 'sale_starts_soon') \
         GROUP BY user_id, kind, channel",
    )
    .fetch_all(&pool)
    .await
    .expect("notifications");
    assert_eq!(
        rows.len() as i64,
        4 * WISHERS,
        "every wisher, every kind and channel"
    );
    assert!(rows.iter().all(|row| row.3 == 1), "each once");
    assert!(
        rows.iter()
            .all(|row| (1001..=1000 + WISHERS).contains(&row.0)),
        "only wishers"
    );
    let deliveries: (i64,) = sqlx::query_as("SELECT count(*) FROM campaign_deliveries")
        .fetch_one(&pool)
        .await
        .expect("deliveries");
    assert_eq!(deliveries.0, 4 * WISHERS);
    drop(server);
    pool.close().await;
    let teardown = workflow::rabbit::Rabbit::connect(workflow::rabbit::RabbitSettings {
        url: rabbit,
        prefix,
        prefetch: 1,
        attempts: 1,
        backoff: Duration::from_millis(100),
    })
    .await
    .expect("rabbitmq");
    teardown.delete_topology().await.expect("teardown");
    teardown.close().await;
    database.drop_database().await;
}
