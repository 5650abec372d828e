//! Engines as one cluster (issue 15), on one PostgreSQL and the Kafka-protocol broker: the
//! shards group spreads the product shards over them, each sells only from its own shards
//! (fenced by its leases), and any one answers any request, forwarding it to the product's
//! owner. A node that leaves, dies or pauses loses its shards to the others, which sell on;
//! an operator moves a shard or drains a node under load; the ops CLI reports all of it.
//! A cart whose products live on several nodes is shown, checked out, paid and
//! cancelled through any node, every line moving with the order or none.

use std::collections::HashSet;
use std::time::Duration;

use engine::ProductId;
use futures_util::StreamExt;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::Value;
use workflow::test_support::{kafka_brokers, unique_prefix};

use actors::StockStatus;
use gateway::auth::Role;
use gateway::feed_client::{FeedError, OrderFeedClient, StockFeedClient};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::{
    Server, TestApp, WEBHOOK_SECRET, eventually, free_port, spawn_app_with, wait_ready,
};

const SHARDS: u32 = 8;
const WAIT: Duration = Duration::from_secs(40);

/// The default: with it, tansu needs the nodes' own nudge to hand a dead node's shards
/// over (`cluster::Rejoin`), so the tests below exercise that path too.
const SESSION_TIMEOUT_MS: u64 = 6_000;

async fn node(database_url: &str, prefix: &str, id: &str) -> TestApp {
    node_with(database_url, prefix, id, |_| {}).await
}

async fn node_with(
    database_url: &str,
    prefix: &str,
    id: &str,
    configure: impl FnOnce(&mut gateway::settings::Settings),
) -> TestApp {
    let (database_url, prefix, id) = (database_url.to_owned(), prefix.to_owned(), id.to_owned());
    spawn_app_with(move |settings| {
        settings.store.database_url = Some(SecretString::from(database_url));
        settings.kafka.brokers = Some(kafka_brokers());
        settings.kafka.prefix = prefix;
        settings.kafka.partitions = 2;
        settings.shop.shard_count = SHARDS;
        settings.cluster.node_id = Some(id);
        settings.cluster.internal_listen = "127.0.0.1:0".parse().expect("address");
        settings.cluster.session_timeout_ms = SESSION_TIMEOUT_MS;
        configure(settings);
    })
    .await
}

/// The same node as a `flashcart serve` process (what SIGKILL and SIGSTOP need).
fn node_process(
    database_url: &str,
    prefix: &str,
    id: &str,
    reservation_ttl_secs: u64,
    data_dir: &std::path::Path,
) -> Server {
    let env = [
        ("FLASHCART_STORE__DATABASE_URL", database_url.to_owned()),
        ("FLASHCART_KAFKA__BROKERS", kafka_brokers()),
        ("FLASHCART_KAFKA__PREFIX", prefix.to_owned()),
        ("FLASHCART_KAFKA__PARTITIONS", "2".to_owned()),
        ("FLASHCART_SHOP__SHARD_COUNT", SHARDS.to_string()),
        (
            "FLASHCART_SHOP__RESERVATION_TTL_SECS",
            reservation_ttl_secs.to_string(),
        ),
        ("FLASHCART_CLUSTER__NODE_ID", id.to_owned()),
        (
            "FLASHCART_CLUSTER__INTERNAL_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        ),
        (
            "FLASHCART_CLUSTER__SESSION_TIMEOUT_MS",
            SESSION_TIMEOUT_MS.to_string(),
        ),
        (
            "FLASHCART_PAYMENTS__WEBHOOK_SECRET",
            WEBHOOK_SECRET.to_owned(),
        ),
        // An operator's shell has the CLI's token exported; the engine must still start.
        ("FLASHCART_TOKEN", "an-operator-token".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env
        .iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect();
    Server::start_with(data_dir, free_port(), &env)
}

/// Shards whose lease `node` holds, as PostgreSQL says.
async fn leased_to(database_url: &str, node: &str) -> usize {
    let pool = sqlx::PgPool::connect(database_url)
        .await
        .expect("connect to the test database");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM shard_leases WHERE owner_node = $1")
        .bind(node)
        .fetch_one(&pool)
        .await
        .expect("count leases");
    pool.close().await;
    usize::try_from(count).expect("a count")
}

/// Waits until `survivor` and the process node `other` split the shards between them.
async fn shards_split_with_process(database_url: &str, survivor: &TestApp, other: &str) {
    eventually(WAIT, || async {
        let mine = survivor.shop.shard_leases().len();
        let theirs = leased_to(database_url, other).await;
        (mine > 0 && theirs > 0 && mine + theirs == SHARDS as usize).then_some(())
    })
    .await;
}

/// Buys until the engine answers (201 or 409), retrying a 503 with the same key, as a
/// shopper's app does. The order id if placed.
async fn buy_until_answered(through: &TestApp, user: u64, product: u64) -> Option<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, status, body) = buy(through, user, product).await;
        match status {
            StatusCode::CREATED => {
                return Some(body["orderId"].as_str().expect("order id").to_owned());
            }
            StatusCode::CONFLICT => {
                assert_eq!(body["error"]["code"], "sold_out", "{body}");
                return None;
            }
            StatusCode::SERVICE_UNAVAILABLE if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("user {user}: {other} {body}"),
        }
    }
}

/// Waits until `nodes` own every shard between them, each shard once, each node some.
async fn shards_spread_over(nodes: &[&TestApp]) {
    eventually(WAIT, || async {
        let owned: Vec<Vec<u32>> = nodes
            .iter()
            .map(|node| {
                node.shop
                    .shard_leases()
                    .iter()
                    .map(|lease| lease.shard)
                    .collect()
            })
            .collect();
        let all: HashSet<u32> = owned.iter().flatten().copied().collect();
        let total: usize = owned.iter().map(Vec::len).sum();
        let every_node_some = owned.iter().all(|shards| !shards.is_empty());
        (all.len() == SHARDS as usize && total == SHARDS as usize && every_node_some).then_some(())
    })
    .await;
}

async fn buy(through: &TestApp, user: u64, product: u64) -> (u64, StatusCode, Value) {
    let response = through.buy(user, product, 1, &format!("sale-{user}")).await;
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    (user, status, body)
}

/// The first product id whose shard `node` serves.
fn product_served_by(node: &TestApp, after: u64) -> u64 {
    (after + 1..after + 1_000)
        .find(|id| node.shop.serves(ProductId(*id)))
        .expect("some id maps to one of the node's shards")
}

/// Three nodes, one sale of 1,000 units, 3,000 shoppers spread over the nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_sell_a_sale_exactly_and_any_node_answers_any_shopper() {
    const UNITS: u64 = 1_000;
    const SHOPPERS: u64 = 3_000;
    let database = persistence::test_support::TestDatabase::create().await;
    let prefix = unique_prefix();
    let n1 = node(&database.url, &prefix, "n1").await;
    let n2 = node(&database.url, &prefix, "n2").await;
    let n3 = node(&database.url, &prefix, "n3").await;
    let nodes = [&n1, &n2, &n3];
    shards_spread_over(&nodes).await;

    // One sale of 1,000 units on a product of n1, scheduled through n2 (forwarded).
    let on_n1 = product_served_by(&n1, 0);
    n1.create_product(on_n1, 99_900, UNITS).await;
    n2.start_sale(on_n1, UNITS, 1).await;
    // A stock screen on each node; n2's and n3's follow the product through n1's feed.
    let mut screens = Vec::new();
    for node in nodes {
        let mut screen = StockFeedClient::connect(&node.address, &[ProductId(on_n1)])
            .await
            .expect("the screen connects");
        let first = screen.next().await.expect("the current stock");
        assert_eq!(first.left, UNITS);
        screens.push(screen);
    }

    // 3,000 shoppers: the first ten through n2 one by one (forwarded), then the rest 96 at
    // a time, spread over the three nodes. Exactly 1,000 orders.
    let mut answers = Vec::new();
    for user in 1..=10u64 {
        answers.push(buy(&n2, user, on_n1).await);
    }
    let rest: Vec<_> = futures_util::stream::iter(11..=SHOPPERS)
        .map(|user| buy(nodes[(user % 3) as usize], user, on_n1))
        .buffer_unordered(96)
        .collect()
        .await;
    answers.extend(rest);
    let mut placed = Vec::new();
    let mut sold_out = 0;
    for (user, status, body) in answers {
        match status {
            StatusCode::CREATED => placed.push((user, body["orderId"].clone())),
            StatusCode::CONFLICT => {
                assert_eq!(body["error"]["code"], "sold_out", "{body}");
                sold_out += 1;
            }
            other => panic!("user {user}: {other} {body}"),
        }
    }
    assert_eq!(placed.len() as u64, UNITS);
    assert_eq!(sold_out, SHOPPERS - UNITS);
    assert_eq!(n1.stored_orders(on_n1).await.len() as u64, UNITS);
    assert!(
        placed.iter().any(|(user, _)| *user <= 10),
        "orders were placed through a node that does not own the product"
    );

    // The outbox is relayed once for the cluster: each order is placed once on Kafka.
    let topic = format!("{prefix}order-events");
    let placed_events = eventually(WAIT, || async {
        let tail = cluster::ops::Tail {
            brokers: kafka_brokers(),
            topic: topic.clone(),
            from_beginning: true,
            max: None,
            idle: Some(Duration::from_secs(2)),
        };
        let keys = tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            cluster::ops::tail(&tail, |event| {
                if event.payload.contains("\"order_placed\"") {
                    keys.push(event.key);
                }
            })
            .map(|_| keys)
        })
        .await
        .expect("the tail ends")
        .ok()?;
        (keys.len() as u64 >= UNITS).then_some(keys)
    })
    .await;
    let distinct: HashSet<&String> = placed_events.iter().collect();
    assert_eq!(distinct.len() as u64, UNITS);
    assert_eq!(
        placed_events.len(),
        distinct.len(),
        "an order placed twice on Kafka"
    );

    // A retry of a key on another node answers the same order.
    for (user, order_id) in placed.iter().take(12) {
        let other = nodes[((user + 1) % 3) as usize];
        let response = other.buy(*user, on_n1, 1, &format!("sale-{user}")).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(
            response
                .headers()
                .get("idempotent-replayed")
                .map(|value| value.as_bytes()),
            Some(&b"true"[..])
        );
        let body: Value = response.json().await.expect("json");
        assert_eq!(&body["orderId"], order_id);
    }
    // Every node shows the owner's counts, and every screen sees the sale sell out.
    for node in nodes {
        let inventory = node.inventory(on_n1).await;
        assert_eq!(inventory["sale"]["left"], 0, "{inventory}");
        assert_eq!(inventory["reserved"], UNITS, "{inventory}");
    }
    for screen in &mut screens {
        tokio::time::timeout(WAIT, async {
            while screen.next().await.expect("a stock value").status != StockStatus::SoldOut {}
        })
        .await
        .expect("the screen sees the sale sell out");
    }

    // Paying and cancelling through a node that does not own the product: the owner moves
    // the stock (a cancelled unit goes back to the sale for everyone).
    let (paid_user, paid_order) = placed.first().cloned().expect("an order");
    let order_id = paid_order.as_str().expect("an order id").to_owned();
    let verdict = serde_json::json!({
        "orderId": order_id, "status": "SUCCESS", "transactionId": format!("txn-{paid_user}")
    });
    let response = n2.payment_webhook(&verdict, Some(WEBHOOK_SECRET)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "PAID", "{body}");
    let (cancelling_user, cancelled_order) = placed.get(1).cloned().expect("another order");
    let cancelled_order = cancelled_order.as_str().expect("an order id").to_owned();
    let response = n3
        .post(
            &format!("/api/v1/orders/{cancelled_order}/cancel"),
            &n3.token(cancelling_user, Role::Customer),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let inventory = n2.inventory(on_n1).await;
    assert_eq!(
        (
            &inventory["sale"]["left"],
            &inventory["sold"],
            &inventory["reserved"]
        ),
        (&Value::from(1), &Value::from(1), &Value::from(UNITS - 2)),
        "{inventory}"
    );

    // n1 leaves: the others take its shards and sell its products on, its orders counted.
    let other_on_n1 = product_served_by(&n1, on_n1);
    n1.create_product(other_on_n1, 10_000, 3).await;
    n1.stop().await;
    shards_spread_over(&[&n2, &n3]).await;
    let response = n2.buy(5_000, other_on_n1, 1, "after-n1").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let inventory = n3.inventory(on_n1).await;
    assert_eq!(
        inventory["reserved"],
        UNITS - 2,
        "the new owner loaded n1's orders: {inventory}"
    );
    let response = n3.buy(5_001, on_n1, 1, "after-n1").await;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "the cancelled unit sells again"
    );
    let response = n2.buy(5_002, on_n1, 1, "after-n1-sold-out").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);

    n2.stop().await;
    n3.stop().await;
    database.drop_database().await;
}

/// Creates a product through `address` (any node: the owner creates it), retrying while
/// the owner is still loading the shard it just took.
async fn create_product_at(app: &TestApp, address: &str, id: u64, stock: u64) {
    eventually(WAIT, || async {
        let response = app
            .client
            .post(format!("{address}/api/v1/products"))
            .bearer_auth(app.admin())
            .json(&serde_json::json!({
                "id": id, "title": format!("Phone {id}"), "brand": "Acme",
                "category": "mobiles", "price": 10_000, "stock": stock
            }))
            .send()
            .await
            .expect("request sent");
        match response.status() {
            StatusCode::CREATED => Some(()),
            StatusCode::SERVICE_UNAVAILABLE => None,
            other => panic!("creating product {id}: {other}"),
        }
    })
    .await;
}

/// `kill -9` of a node in the middle of a sale of one of its products. Every shopper
/// buys through the survivor (forwarded to the owner while it lives) and retries a 503
/// with the same key. The survivor takes the dead node's shards: no acknowledged order is
/// lost, none is invented, nothing is oversold, and the dead node's unpaid reservations
/// still expire on the survivor and return their stock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_no_acknowledged_order_and_its_shards_sell_on() {
    const STOCK: u64 = 60;
    const TTL_SECS: u64 = 12;
    let database = persistence::test_support::TestDatabase::create().await;
    let prefix = unique_prefix();
    let survivor = node_with(&database.url, &prefix, "n1", |settings| {
        settings.shop.reservation_ttl_secs = TTL_SECS;
    })
    .await;
    let victim_dir = tempfile::tempdir().expect("tempdir");
    let mut victim = node_process(&database.url, &prefix, "n2", TTL_SECS, victim_dir.path());
    wait_ready(&survivor.client, &victim.address).await;
    shards_split_with_process(&database.url, &survivor, "n2").await;
    let product = (1..1_000)
        .find(|id| !survivor.shop.serves(ProductId(*id)))
        .expect("some id maps to the victim's shards");
    create_product_at(&survivor, &survivor.address, product, STOCK).await;

    // Ten shoppers at a time, 150 in all, through the survivor.
    let placed = std::sync::Mutex::new(Vec::new());
    let killed_at = std::sync::Mutex::new(None::<std::time::Instant>);
    let first_after_kill = std::sync::Mutex::new(None::<Duration>);
    let lanes = (0..10u64).map(|lane| {
        let (placed, killed_at, first_after_kill) = (&placed, &killed_at, &first_after_kill);
        let survivor = &survivor;
        async move {
            for user in (lane * 15 + 1)..=(lane * 15 + 15) {
                if let Some(order) = buy_until_answered(survivor, user, product).await {
                    let mut placed = placed.lock().expect("not poisoned");
                    placed.push(order);
                    if let Some(at) = *killed_at.lock().expect("not poisoned") {
                        first_after_kill
                            .lock()
                            .expect("not poisoned")
                            .get_or_insert(at.elapsed());
                    }
                }
            }
        }
    });
    let killer = async {
        eventually(WAIT, || async {
            (placed.lock().expect("not poisoned").len() >= 15).then_some(())
        })
        .await;
        victim.kill_9();
        *killed_at.lock().expect("not poisoned") = Some(std::time::Instant::now());
    };
    tokio::join!(futures_util::future::join_all(lanes), killer);

    let placed = placed.into_inner().expect("not poisoned");
    let stored = survivor.stored_orders(product).await;
    let stored_ids: HashSet<String> = stored.iter().map(|(id, ..)| id.clone()).collect();
    let acknowledged: HashSet<String> = placed.iter().cloned().collect();
    assert_eq!(placed.len(), STOCK as usize, "the stock sells out, exactly");
    assert_eq!(acknowledged.len(), placed.len(), "one order per shopper");
    assert_eq!(
        stored_ids, acknowledged,
        "every acknowledged order is stored, and only those"
    );
    let after_kill = first_after_kill
        .into_inner()
        .expect("not poisoned")
        .expect("orders were placed after the kill");
    eprintln!("kill -9 to the first 201 on the dead node's shard: {after_kill:?}");
    assert_eq!(survivor.shop.shard_leases().len(), SHARDS as usize);

    // Nobody pays: every reservation expires on the survivor and the stock comes back.
    eventually(Duration::from_secs(TTL_SECS + 30), || async {
        let inventory = survivor.inventory(product).await;
        (inventory["left"] == STOCK && inventory["reserved"] == 0).then_some(())
    })
    .await;

    survivor.stop().await;
    database.drop_database().await;
}

fn signal(server: &Server, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &server.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// A stale owner: a node is paused (SIGSTOP) past the session timeout while a shopper's
/// request waits in its socket. The survivor takes its shards and sells the product out.
/// When the paused node wakes, it still believes it owns the product and has units in
/// memory; its batch is fenced (nothing is written), it drops the shard and re-routes the
/// waiting request to the new owner, which answers sold out. Then it rejoins and serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_owner_commits_nothing_for_shards_it_lost_then_serves_again() {
    const STOCK: u64 = 10;
    let database = persistence::test_support::TestDatabase::create().await;
    let prefix = unique_prefix();
    let survivor = node(&database.url, &prefix, "n1").await;
    let paused_dir = tempfile::tempdir().expect("tempdir");
    let paused = node_process(&database.url, &prefix, "n2", 600, paused_dir.path());
    wait_ready(&survivor.client, &paused.address).await;
    shards_split_with_process(&database.url, &survivor, "n2").await;
    let product = (1..1_000)
        .find(|id| !survivor.shop.serves(ProductId(*id)))
        .expect("some id maps to the paused node's shards");
    create_product_at(&survivor, &paused.address, product, STOCK).await;
    // The owner has the product in memory, with its stock.
    let inventory = survivor.inventory(product).await;
    assert_eq!(inventory["left"], STOCK);

    signal(&paused, "-STOP");
    // A request that reached the paused node before it could read it.
    let late = {
        let client = survivor.client.clone();
        let url = format!("{}/api/v1/buy-now", paused.address);
        let token = survivor.token(999, gateway::auth::Role::Customer);
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "late-999")
                .json(&serde_json::json!({ "productId": product, "quantity": 1 }))
                .send()
                .await
        })
    };
    // Meanwhile the survivor takes the shards and sells the product out.
    eventually(WAIT, || async {
        (survivor.shop.shard_leases().len() == SHARDS as usize).then_some(())
    })
    .await;
    let mut sold = 0;
    for user in 1..=(STOCK + 5) {
        if buy_until_answered(&survivor, user, product).await.is_some() {
            sold += 1;
        }
    }
    assert_eq!(sold, STOCK);

    signal(&paused, "-CONT");
    let late = late
        .await
        .expect("the request task ends")
        .expect("the woken node answers");
    let status = late.status();
    let body: Value = late.json().await.expect("json");
    assert!(
        status == StatusCode::CONFLICT || status == StatusCode::SERVICE_UNAVAILABLE,
        "the stale owner must not sell: {status} {body}"
    );
    let stored = survivor.stored_orders(product).await;
    assert_eq!(
        stored.len(),
        STOCK as usize,
        "nothing sold twice: {stored:?}"
    );
    assert!(stored.iter().all(|(_, user, ..)| *user != 999));

    // It rejoins and serves again: the shards are split anew and it sells its own.
    shards_split_with_process(&database.url, &survivor, "n2").await;
    let fresh = (1..1_000)
        .find(|id| *id != product && !survivor.shop.serves(ProductId(*id)))
        .expect("some id maps to the woken node's shards");
    create_product_at(&survivor, &paused.address, fresh, 3).await;
    let response = survivor.buy(1_000, fresh, 1, "after-wake").await;
    assert_eq!(response.status(), StatusCode::CREATED);

    survivor.stop().await;
    database.drop_database().await;
}

/// `flashcart cluster ...` as an operator runs it; (exit success, stdout, stderr).
async fn flashcart(args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_flashcart"))
            .args(&args)
            .env_remove("FLASHCART_TOKEN")
            .output()
            .expect("the flashcart binary runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .expect("the command ends")
}

async fn flashcart_json(node: &TestApp, command: &[&str]) -> Value {
    let mut args: Vec<String> = vec!["cluster".into()];
    args.extend(command.iter().map(|arg| (*arg).to_owned()));
    args.extend([
        "--server".into(),
        node.address.clone(),
        "--token".into(),
        node.admin(),
        "--json".into(),
    ]);
    let (ok, stdout, stderr) = flashcart(args).await;
    assert!(ok, "flashcart {command:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

/// The ops CLI against a running two-node cluster, each command's `--json` checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ops_cli_reports_and_acts_on_a_running_cluster() {
    let database = persistence::test_support::TestDatabase::create().await;
    let prefix = unique_prefix();
    let n1 = node(&database.url, &prefix, "n1").await;
    let n2 = node(&database.url, &prefix, "n2").await;
    shards_spread_over(&[&n1, &n2]).await;
    let on_n2 = product_served_by(&n2, 0);
    create_product_at(&n1, &n1.address, on_n2, 20).await;

    // status: both nodes alive, every shard leased once, the group stable with both.
    let status = eventually(WAIT, || async {
        let status = flashcart_json(&n1, &["status"]).await;
        // tansu 0.6 does not list consumer groups; a broker that does says Stable.
        let stable = status["group"]["state"] == "Stable"
            || status["group"]["state"] == cluster::ops::NOT_LISTED;
        let nodes = status["nodes"].as_array().cloned().unwrap_or_default();
        let alive = nodes.iter().filter(|node| node["alive"] == true).count();
        (stable && alive == 2).then_some(status)
    })
    .await;
    assert_eq!(status["answeredBy"], "n1");
    let nodes = status["nodes"].as_array().expect("nodes");
    let leased: usize = nodes
        .iter()
        .map(|node| node["shards"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(leased, SHARDS as usize);
    for node in nodes {
        assert!(node["figures"]["ordersPerSecond"].is_number(), "{node}");
    }
    if status["group"]["state"] == "Stable" {
        assert_eq!(status["group"]["members"], serde_json::json!(["n1", "n2"]));
    }

    // where and inspect, asked of the node that does not own the product.
    let place = flashcart_json(&n1, &["where", "--product", &on_n2.to_string()]).await;
    assert_eq!(place["node"], "n2", "{place}");
    assert_eq!(place["shard"], n1.shop.shard_of(ProductId(on_n2)));
    let response = n1.buy(7, on_n2, 2, "cli-7").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let inspected = flashcart_json(&n1, &["inspect", "--product", &on_n2.to_string()]).await;
    assert_eq!(inspected["node"], "n2", "{inspected}");
    assert_eq!(inspected["wasLive"], true, "{inspected}");
    assert_eq!(
        (&inspected["reserved"], &inspected["left"]),
        (&Value::from(2), &Value::from(18)),
        "{inspected}"
    );

    // sales: created through n1 (forwarded to the owner), listed by the owner.
    let now_ms = actors::clock::now_ms();
    let start = crate::helpers::rfc3339(now_ms - 60_000);
    let end = crate::helpers::rfc3339(now_ms + 3_600_000);
    let product = on_n2.to_string();
    let created = flashcart_json(
        &n1,
        &[
            "sales",
            "create",
            "--product",
            &product,
            "--sale-price",
            "5000",
            "--original-price",
            "10000",
            "--start",
            &start,
            "--end",
            &end,
            "--stock",
            "5",
            "--per-user-limit",
            "1",
        ],
    )
    .await;
    assert_eq!(created["productId"], on_n2, "{created}");
    let listed = flashcart_json(&n2, &["sales", "list"]).await;
    let sale_id = created["id"].to_string();
    let lists_it = |listed: &Value| {
        listed
            .as_array()
            .is_some_and(|sales| sales.iter().any(|sale| sale["id"] == created["id"]))
    };
    assert!(lists_it(&listed), "{listed}");
    // Cancelled through n1 (forwarded to the owner) once n1 follows the sale (within a
    // second or so of its creation), and off the owner's board.
    let cancelled = eventually(Duration::from_secs(20), || async {
        let admin = n1.admin();
        let args = [
            "cluster",
            "sales",
            "cancel",
            "--sale",
            &sale_id,
            "--server",
            &n1.address,
            "--token",
            &admin,
            "--json",
        ];
        let (ok, stdout, _) = flashcart(args.into_iter().map(String::from).collect()).await;
        ok.then(|| serde_json::from_str::<Value>(&stdout).expect("json"))
    })
    .await;
    assert!(cancelled["cancelledAt"].is_string(), "{cancelled}");
    let listed = flashcart_json(&n2, &["sales", "list"]).await;
    assert!(!lists_it(&listed), "{listed}");

    // events tail: the order placed above, from the beginning of order-events.
    let (ok, stdout, stderr) = flashcart(vec![
        "cluster".into(),
        "events".into(),
        "tail".into(),
        "--topic".into(),
        "order-events".into(),
        "--from-beginning".into(),
        "--brokers".into(),
        kafka_brokers(),
        "--prefix".into(),
        prefix.clone(),
        "--max".into(),
        "1".into(),
        "--idle-secs".into(),
        "20".into(),
        "--json".into(),
    ])
    .await;
    assert!(ok, "{stderr}");
    let event: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert!(
        event["event"]
            .as_str()
            .is_some_and(|text| text.contains("order_placed")),
        "{event}"
    );

    // A refusal is one line on stderr and a failing exit.
    let (ok, stdout, stderr) = flashcart(vec![
        "cluster".into(),
        "status".into(),
        "--server".into(),
        n1.address.clone(),
    ])
    .await;
    assert!(!ok);
    assert!(stdout.is_empty());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("admin token"), "{stderr}");

    n1.stop().await;
    n2.stop().await;
    database.drop_database().await;
}

/// `move` and `drain` under load: shoppers keep buying one product through both nodes
/// while its shard moves to the other node, and then that node drains. Every answer is a
/// 201 (the stock is ample), and every one of them is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_moves_and_a_node_drains_under_load_without_a_failed_request() {
    let database = persistence::test_support::TestDatabase::create().await;
    let prefix = unique_prefix();
    let n1 = node(&database.url, &prefix, "n1").await;
    let n2 = node(&database.url, &prefix, "n2").await;
    shards_spread_over(&[&n1, &n2]).await;
    let product = product_served_by(&n2, 0);
    let shard = n2.shop.shard_of(ProductId(product));
    create_product_at(&n1, &n1.address, product, 1_000_000).await;

    let stop = std::sync::atomic::AtomicBool::new(false);
    let answers = std::sync::Mutex::new(Vec::new());
    let lanes = (0..6u64).map(|lane| {
        let (stop, answers, n1, n2) = (&stop, &answers, &n1, &n2);
        async move {
            let mut user = lane * 100_000;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                user += 1;
                let through = if user % 2 == 0 { n1 } else { n2 };
                let (_, status, body) = buy(through, user, product).await;
                answers.lock().expect("not poisoned").push((status, body));
            }
        }
    });
    // An operator reads and edits the product meanwhile, through either node.
    let admin_answers = std::sync::Mutex::new(Vec::new());
    let admin_lane = async {
        let mut round = 0u64;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            round += 1;
            let through = if round.is_multiple_of(2) { &n1 } else { &n2 };
            let read = through
                .get(&format!("/api/v1/inventory/{product}"))
                .await
                .status();
            let edited = through
                .client
                .put(through.url(&format!("/api/v1/products/{product}")))
                .bearer_auth(through.admin())
                .json(&serde_json::json!({
                    "title": format!("Phone {product} rev {round}"), "brand": "Acme",
                    "category": "mobiles", "description": "", "price": 10_000
                }))
                .send()
                .await
                .expect("request sent")
                .status();
            admin_answers
                .lock()
                .expect("not poisoned")
                .extend([("inventory", read), ("replace", edited)]);
        }
    };
    let operator = async {
        let placed = || answers.lock().expect("not poisoned").len();
        eventually(WAIT, || async { (placed() >= 50).then_some(()) }).await;
        let moved =
            flashcart_json(&n1, &["move", "--shard", &shard.to_string(), "--to", "n1"]).await;
        assert_eq!(moved["node"], "n1", "{moved}");
        assert!(n1.shop.serves(ProductId(product)));
        let before = placed();
        eventually(WAIT, || async { (placed() >= before + 50).then_some(()) }).await;
        let drained = flashcart_json(&n1, &["drain", "--node", "n1", "--wait"]).await;
        assert_eq!(drained["drained"], true, "{drained}");
        assert!(n1.shop.shard_leases().is_empty());
        let before = placed();
        eventually(WAIT, || async { (placed() >= before + 50).then_some(()) }).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    tokio::join!(futures_util::future::join_all(lanes), operator, admin_lane);
    let admin_answers = admin_answers.into_inner().expect("not poisoned");
    none_failed(&admin_answers, |(_, status)| *status == StatusCode::OK);
    let answers = answers.into_inner().expect("not poisoned");
    none_failed(&answers, |(status, _)| *status == StatusCode::CREATED);
    let stored = n2.stored_orders(product).await;
    assert_eq!(
        stored.len(),
        answers.len(),
        "every 201 is stored, and only those"
    );
    eprintln!(
        "move and drain under load: {} orders, none failed",
        answers.len()
    );

    n1.stop().await;
    n2.stop().await;
    database.drop_database().await;
}

fn none_failed<T: std::fmt::Debug>(answers: &[T], succeeded: impl Fn(&T) -> bool) {
    let failed: Vec<&T> = answers.iter().filter(|answer| !succeeded(answer)).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        answers.len()
    );
}

async fn add_to_cart(through: &TestApp, user: u64, product: u64, quantity: u32) {
    let response = through
        .post(
            "/api/v1/cart/items",
            &through.token(user, Role::Customer),
            serde_json::json!({"productId": product, "quantity": quantity}),
        )
        .await;
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, StatusCode::CREATED, "adding {product}: {body}");
}

async fn check_out(through: &TestApp, user: u64, key: &str) -> reqwest::Response {
    through
        .client
        .post(through.url("/api/v1/orders"))
        .bearer_auth(through.token(user, Role::Customer))
        .header("Idempotency-Key", key)
        .json(&serde_json::json!({"addressId": "home", "paymentMethod": "UPI"}))
        .send()
        .await
        .expect("request sent")
}

/// (sold, reserved, left) of a product, asked through `through` (forwarded to its owner).
async fn counts(through: &TestApp, product: u64) -> (u64, u64, u64) {
    let inventory = through.inventory(product).await;
    let count = |name: &str| inventory[name].as_u64().expect(name);
    (count("sold"), count("reserved"), count("left"))
}

async fn next_view(feed: &mut OrderFeedClient) -> actors::TrackingView {
    tokio::time::timeout(WAIT, feed.next())
        .await
        .expect("the feed moves on")
        .expect("the feed stays open")
}

fn lines_of(order: &Value) -> Vec<u64> {
    order["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["productId"].as_u64().expect("productId"))
        .collect()
}

/// One product on each of three nodes, shown by all three. A cart of products of two nodes, checked out
/// through the third: placed by the first line's node, which holds the other line on its
/// node; a cart of all three, checked out through one of them. Paid and cancelled through
/// yet other nodes, every line moves; a retry on another node answers the same order;
/// the buyer watches the order through a node that is not its own; every node's
/// analytics count the orders.
const SELLER_OF_P2: u64 = 702;
const SELLER_OF_P3: u64 = 703;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_spanning_nodes_is_ordered_paid_and_cancelled_through_any_node() {
    let database = persistence::test_support::TestDatabase::create().await;
    let prefix = unique_prefix();
    let n1 = node(&database.url, &prefix, "n1").await;
    let n2 = node(&database.url, &prefix, "n2").await;
    let n3 = node(&database.url, &prefix, "n3").await;
    let nodes = [&n1, &n2, &n3];
    shards_spread_over(&nodes).await;
    let (p1, p2, p3) = (
        product_served_by(&n1, 0),
        product_served_by(&n2, 0),
        product_served_by(&n3, 0),
    );
    for (owner, product) in [(&n1, p1), (&n2, p2), (&n3, p3)] {
        owner.create_product(product, 1_000, 10).await;
    }
    // p2 and p3 belong to marketplace sellers, set through n1 (their owners write it).
    for (product, seller) in [(p2, SELLER_OF_P2), (p3, SELLER_OF_P3)] {
        let replaced = n1
            .client
            .put(n1.url(&format!("/api/v1/products/{product}")))
            .bearer_auth(n1.admin())
            .json(&serde_json::json!({
                "title": format!("Phone {product}"), "brand": "Acme", "category": "mobiles",
                "price": 1_000, "sellerId": seller,
            }))
            .send()
            .await
            .expect("sent");
        assert_eq!(replaced.status(), StatusCode::OK);
    }
    // Every node shows every node's products (browse, search) and sales, soon after.
    let on_sale = product_served_by(&n1, p1);
    n1.create_product(on_sale, 99_900, 10).await;
    n1.start_sale(on_sale, 5, 1).await;
    let created = std::time::Instant::now();
    for node in nodes {
        eventually(WAIT, || async {
            let ids = |body: &Value, field: &str| -> Vec<u64> {
                body.as_array()
                    .or_else(|| body["items"].as_array())
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(|item| item[field].as_u64())
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let listed: Value = node
                .get("/api/v1/products?pageSize=50")
                .await
                .json()
                .await
                .ok()?;
            let found: Value = node.get("/api/v1/search?q=phone").await.json().await.ok()?;
            let sales: Value = node.get("/api/v1/flash-sales").await.json().await.ok()?;
            let everywhere = [p1, p2, p3, on_sale]
                .iter()
                .all(|id| ids(&listed, "id").contains(id) && ids(&found, "id").contains(id));
            (everywhere && ids(&sales, "productId").contains(&on_sale)).then_some(())
        })
        .await;
    }
    println!(
        "every node listed, found and showed the sale of the new products {} ms after they were created",
        created.elapsed().as_millis()
    );

    // User 1: products of n2 and n3, added through n1, shown whole by n1.
    add_to_cart(&n1, 1, p2, 2).await;
    add_to_cart(&n1, 1, p3, 1).await;
    let cart: Value = n1
        .get_as("/api/v1/cart/items", &n1.token(1, Role::Customer))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(cart["total"], 3_000, "{cart}");
    // Checked out through n1, which serves neither: placed by n2 (the first line's).
    let placed = check_out(&n1, 1, "span-1").await;
    let status = placed.status();
    let first: Value = placed.json().await.expect("json");
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(lines_of(&first), vec![p2, p3], "{first}");
    assert_eq!(counts(&n1, p2).await, (0, 2, 8));
    assert_eq!(counts(&n1, p3).await, (0, 1, 9));

    // The buyer watches the order through n1; its node is n2, whose feed n1 relays. A
    // stranger is turned away by n1 as n2 would.
    let first_id = engine::OrderId(
        first["orderId"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("an order id"),
    );
    let mut tracking =
        OrderFeedClient::connect(&n1.address, first_id, &n1.token(1, Role::Customer))
            .await
            .expect("the tracking feed connects");
    let view = next_view(&mut tracking).await;
    assert_eq!(view.status, engine::order::OrderStatus::PendingPayment);
    let mut stranger =
        OrderFeedClient::connect(&n1.address, first_id, &n1.token(99, Role::Customer))
            .await
            .expect("the socket opens");
    let refused = tokio::time::timeout(WAIT, stranger.next()).await;
    assert!(
        matches!(refused, Ok(Err(FeedError::Closed(Some(CloseCode::Policy))))),
        "only the owner watches: {refused:?}"
    );

    // User 2: one unit of each, through n2; checked out through n3, whose line comes first.
    for product in [p1, p2, p3] {
        add_to_cart(&n2, 2, product, 1).await;
    }
    let placed = check_out(&n3, 2, "span-2").await;
    let status = placed.status();
    let second: Value = placed.json().await.expect("json");
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(lines_of(&second), vec![p3, p1, p2], "{second}");
    assert_eq!(counts(&n2, p1).await, (0, 1, 9));
    assert_eq!(counts(&n2, p2).await, (0, 3, 7));
    assert_eq!(counts(&n2, p3).await, (0, 2, 8));
    // The retry on another node, the cart emptied meanwhile: the same order.
    let retried = check_out(&n1, 2, "span-2").await;
    assert_eq!(retried.status(), StatusCode::CREATED);
    assert_eq!(retried.headers()["idempotent-replayed"], "true");
    let retried: Value = retried.json().await.expect("json");
    assert_eq!(retried["orderId"], second["orderId"]);

    // The first order paid through n3: both lines sold, on their own nodes.
    let verdict = serde_json::json!({
        "orderId": first["orderId"], "status": "SUCCESS", "transactionId": "span-txn-1"
    });
    let paid = n3.payment_webhook(&verdict, Some(WEBHOOK_SECRET)).await;
    assert_eq!(paid.status(), StatusCode::OK);
    assert_eq!(paid.json::<Value>().await.expect("json")["status"], "PAID");
    assert_eq!(counts(&n3, p2).await, (2, 1, 7));
    assert_eq!(counts(&n3, p3).await, (1, 1, 8));
    // Shipped through n3: n1's screen sees it.
    let shipped = n3
        .post(
            &format!("/api/v1/orders/{first_id}/ship"),
            &n3.admin(),
            serde_json::json!({"trackingId": "TRK-1", "estimatedDelivery": "2030-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(shipped.status(), StatusCode::OK);
    let view = next_view(&mut tracking).await;
    assert_eq!(view.status, engine::order::OrderStatus::Shipped);
    assert_eq!(view.tracking_id.as_deref(), Some("TRK-1"));
    // Delivered through n3 (the order is n2's): each seller is paid their lines less 10%,
    // and sees it through any node.
    let delivered = n3
        .post(
            &format!("/api/v1/deliveries/{first_id}/complete"),
            &n3.admin(),
            serde_json::json!({"signature": "S", "photoUrl": "https://photos.example/p.jpg"}),
        )
        .await;
    assert_eq!(delivered.status(), StatusCode::OK);
    for (node, seller, net) in [(&n1, SELLER_OF_P2, 1_800), (&n2, SELLER_OF_P3, 900)] {
        let statement: Value = node
            .get_as("/api/v1/seller/payouts", &node.token(seller, Role::Seller))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(statement["total"], 1, "{statement}");
        assert_eq!(statement["payouts"][0]["orderId"], first["orderId"]);
        assert_eq!(statement["payouts"][0]["net"], net, "{statement}");
    }
    // Analytics through any node count the whole cluster's events, though each node's
    // consumer reads only its share of the partitions.
    for node in nodes {
        eventually(WAIT, || async {
            let path = format!("/api/v1/analytics/sales/{p2}");
            let body: Value = node.get_as(&path, &node.admin()).await.json().await.ok()?;
            (body["unitsSold"] == 2 && body["ordersPlaced"] == 2).then_some(())
        })
        .await;
        // Bought with p2: p3 in both orders, p1 in the second; summed over the nodes.
        eventually(WAIT, || async {
            let path = format!("/api/v1/products/{p2}/recommendations");
            let body: Value = node.get(&path).await.json().await.ok()?;
            let ids: Vec<u64> = body["items"]
                .as_array()?
                .iter()
                .filter_map(|item| item["productId"].as_u64())
                .collect();
            (ids == [p3, p1] && body["source"] == "together").then_some(())
        })
        .await;
    }

    // The second cancelled through n1: its three lines go back.
    let order_id = second["orderId"].as_str().expect("orderId");
    let cancelled = n1
        .post(
            &format!("/api/v1/orders/{order_id}/cancel"),
            &n1.token(2, Role::Customer),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    assert_eq!(
        cancelled.json::<Value>().await.expect("json")["status"],
        "CANCELLED"
    );
    assert_eq!(counts(&n1, p1).await, (0, 0, 10));
    assert_eq!(counts(&n1, p2).await, (2, 0, 8));
    assert_eq!(counts(&n1, p3).await, (1, 0, 9));
    // What the store holds agrees: every line of both orders, under their statuses.
    for (product, expected) in [(p1, 1), (p2, 2), (p3, 2)] {
        assert_eq!(
            n1.stored_orders(product).await.len(),
            expected,
            "product {product}"
        );
    }

    n1.stop().await;
    n2.stop().await;
    n3.stop().await;
    database.drop_database().await;
}
