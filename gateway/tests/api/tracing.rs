//! Request ids and traces (`request_trace.rs`, `telemetry.rs`), on the engine binary: a Buy
//! Now's id comes back in the answer and in its JSON log line, and its spans (request, shop
//! call, actor turn, commit) reach an OTLP/HTTP receiver started by the test.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use reqwest::StatusCode;
use serde_json::{Value, json};

use gateway::auth::Role;

use crate::helpers::{Server, eventually, free_port, serve_on_loopback, wait_ready};

/// An OTLP/HTTP receiver: keeps every JSON body posted to `/v1/traces`.
async fn otlp_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let bodies = Arc::clone(&received);
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let bodies = Arc::clone(&bodies);
            async move {
                let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                bodies.lock().expect("lock").push(value);
                axum::Json(json!({}))
            }
        }),
    );
    let address = serve_on_loopback(app).await;
    (format!("http://{address}"), received)
}

/// Every span the receiver got: (name, trace id, span id, parent span id, attributes).
fn spans(bodies: &[Value]) -> Vec<(String, String, String, String, Value)> {
    let mut spans = Vec::new();
    for body in bodies {
        for resource in body["resourceSpans"].as_array().into_iter().flatten() {
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    let text = |key: &str| span[key].as_str().unwrap_or_default().to_owned();
                    spans.push((
                        text("name"),
                        text("traceId"),
                        text("spanId"),
                        text("parentSpanId"),
                        span["attributes"].clone(),
                    ));
                }
            }
        }
    }
    spans
}

fn attribute<'a>(attributes: &'a Value, key: &str) -> Option<&'a Value> {
    attributes
        .as_array()?
        .iter()
        .find(|attribute| attribute["key"] == key)
        .map(|attribute| &attribute["value"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buy_nows_request_id_is_in_its_answer_its_json_log_and_its_exported_spans() {
    let (collector, received) = otlp_receiver().await;
    let data = tempfile::tempdir().expect("a temporary directory");
    let log_path = data.path().join("engine.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let port = free_port();
    let engine_server = Server::start_logging(
        &data.path().join("store"),
        port,
        &[
            ("FLASHCART_TELEMETRY__FORMAT", "json"),
            ("FLASHCART_TELEMETRY__ACCESS_LOG", "true"),
            ("FLASHCART_TELEMETRY__OTLP_ENDPOINT", &collector),
            // Export every 100 ms instead of every 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
        log,
    );
    let address = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_ready(&client, &address).await;

    let token = |user: u64, role: Role| engine_server.token(user, role);
    engine_server.create_product(&client, 1, 5).await;

    // The caller's id is kept and returned.
    let bought = client
        .post(format!("{address}/api/v1/buy-now"))
        .bearer_auth(token(7, Role::Customer))
        .header("Idempotency-Key", "traced")
        .header("X-Request-Id", "trace-me-1")
        .json(&json!({ "productId": 1, "quantity": 1 }))
        .send()
        .await
        .expect("sent");
    assert_eq!(bought.status(), StatusCode::CREATED);
    assert_eq!(bought.headers()["x-request-id"], "trace-me-1");
    // Without one (or with one unfit for a log line), the engine makes one.
    for given in [None, Some("has space")] {
        let mut request = client.get(format!("{address}/api/v1/inventory/1"));
        if let Some(given) = given {
            request = request.header("X-Request-Id", given);
        }
        let answer = request.send().await.expect("sent");
        let id = answer.headers()["x-request-id"].to_str().expect("ascii");
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    }

    // The JSON log line of the Buy Now carries the id.
    let line = eventually(Duration::from_secs(10), || async {
        let text = std::fs::read_to_string(&log_path).ok()?;
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| {
                line["fields"]["message"] == "answered"
                    && line["spans"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|span| span["request_id"] == "trace-me-1")
            })
    })
    .await;
    assert_eq!(line["fields"]["status"], 201, "{line}");
    let request_span = line["spans"][0].clone();
    assert_eq!(request_span["route"], "/api/v1/buy-now", "{line}");
    assert_eq!(request_span["method"], "POST", "{line}");

    // Its spans reach the collector: request -> shop call -> actor turn, and the commit.
    let exported = eventually(Duration::from_secs(20), || async {
        let bodies = received.lock().expect("lock").clone();
        let spans = spans(&bodies);
        let request = spans.iter().find(|(name, .., attributes)| {
            name == "request"
                && attribute(attributes, "request_id")
                    .is_some_and(|value| value["stringValue"] == "trace-me-1")
        })?;
        let trace = &request.1;
        let of_trace: Vec<_> = spans
            .iter()
            .filter(|span| &span.1 == trace)
            .cloned()
            .collect();
        ["shop.buy_now", "actor.turn", "commit"]
            .iter()
            .all(|name| of_trace.iter().any(|span| span.0 == *name))
            .then_some(of_trace)
    })
    .await;
    let find = |name: &str| {
        exported
            .iter()
            .find(|span| span.0 == name)
            .unwrap_or_else(|| panic!("{name} exported"))
    };
    let (request, shop, turn, commit) = (
        find("request"),
        find("shop.buy_now"),
        find("actor.turn"),
        find("commit"),
    );
    assert_eq!(shop.3, request.2, "the shop call is the request's child");
    assert_eq!(turn.3, shop.2, "the actor turn is the shop call's child");
    assert_eq!(
        commit.3, shop.2,
        "the commit is the first buyer's shop call's child"
    );
    // OTLP JSON carries 64-bit integers as strings (u64 fields as string values).
    let orders = attribute(&commit.4, "orders");
    assert!(
        orders.is_some_and(|value| value["stringValue"] == "1" || value["intValue"] == "1"),
        "one order in the commit: {}",
        commit.4
    );
}
