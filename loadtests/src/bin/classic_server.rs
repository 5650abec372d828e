//! The classic reference: Buy Now the way the platform description does it. Authenticate,
//! one Redis Lua script that checks and DECRBYs the stock, then one INSERT per order into
//! PostgreSQL, then answer. No batching, no in-memory owner of the stock.
//!
//! `classic-server 127.0.0.1:18082 postgres://... redis://... <jwt-secret>`. It also
//! answers the harness's setup and verification calls (products, sale, inventory).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use gateway::auth::JwtKeys;
use redis::aio::ConnectionManager;
use secrecy::SecretString;
use serde_json::{Value, json};

/// Check and decrement in one step: the atomic stock operation of the platform design.
const RESERVE: &str = r"
local left = tonumber(redis.call('GET', KEYS[1]) or '-1')
local quantity = tonumber(ARGV[1])
if left < quantity then return -1 end
return redis.call('DECRBY', KEYS[1], quantity)
";

struct Classic {
    redis: ConnectionManager,
    database: sqlx::PgPool,
    keys: JwtKeys,
    script: redis::Script,
    prefix: String,
    next_id: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(address), Some(database_url), Some(redis_url), Some(secret)) =
        (args.next(), args.next(), args.next(), args.next())
    else {
        anyhow::bail!("usage: classic-server ADDRESS DATABASE_URL REDIS_URL JWT_SECRET");
    };
    let database = sqlx::postgres::PgPoolOptions::new()
        .max_connections(64)
        .connect(&database_url)
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS classic_orders (
            id BIGSERIAL PRIMARY KEY, user_id BIGINT NOT NULL, product_id BIGINT NOT NULL,
            quantity INTEGER NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .execute(&database)
    .await?;
    let redis = ConnectionManager::new(redis::Client::open(redis_url.as_str())?).await?;
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let classic = Arc::new(Classic {
        redis,
        database,
        keys: JwtKeys::new(SecretString::from(secret)),
        script: redis::Script::new(RESERVE),
        prefix: format!("classic:{started}:"),
        next_id: AtomicU64::new(1),
    });
    let router = Router::new()
        .route("/api/v1/buy-now", post(buy_now))
        .route("/api/v1/products", post(create_product))
        .route("/api/v1/flash-sales", post(schedule_sale))
        .route("/api/v1/inventory/{id}", get(inventory))
        .route("/readyz", get(|| async { "ready" }))
        .with_state(classic);
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("classic server on {address}");
    axum::serve(listener, router).await?;
    Ok(())
}

fn error(status: StatusCode, code: &str) -> (StatusCode, axum::Json<Value>) {
    (
        status,
        axum::Json(json!({ "error": { "code": code, "message": code } })),
    )
}

async fn buy_now(
    State(classic): State<Arc<Classic>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> (StatusCode, axum::Json<Value>) {
    let token = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let Some(claims) = token.and_then(|token| classic.keys.decode(token, now_secs).ok()) else {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    };
    let (Some(product), Some(quantity)) = (body["productId"].as_u64(), body["quantity"].as_u64())
    else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    };
    let user: i64 = claims.sub.parse().unwrap_or(0);
    let mut redis = classic.redis.clone();
    let left: redis::RedisResult<i64> = classic
        .script
        .key(format!("{}stock:{product}", classic.prefix))
        .arg(quantity)
        .invoke_async(&mut redis)
        .await;
    match left {
        Ok(left) if left >= 0 => {}
        Ok(_) => return error(StatusCode::CONFLICT, "sold_out"),
        Err(_) => return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    }
    let inserted = sqlx::query_scalar::<_, i64>(
        "INSERT INTO classic_orders (user_id, product_id, quantity) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(user)
    .bind(product as i64)
    .bind(quantity as i32)
    .fetch_one(&classic.database)
    .await;
    match inserted {
        Ok(id) => (
            StatusCode::CREATED,
            axum::Json(json!({ "orderId": id.to_string(), "status": "PENDING_PAYMENT" })),
        ),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    }
}

async fn create_product(
    State(classic): State<Arc<Classic>>,
    axum::Json(body): axum::Json<Value>,
) -> (StatusCode, axum::Json<Value>) {
    let id = classic.next_id.fetch_add(1, Ordering::Relaxed);
    let stock = body["stock"].as_u64().unwrap_or(0);
    let mut redis = classic.redis.clone();
    let set: redis::RedisResult<()> = redis::cmd("SET")
        .arg(format!("{}stock:{id}", classic.prefix))
        .arg(stock)
        .query_async(&mut redis)
        .await;
    if set.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    }
    let _: redis::RedisResult<()> = redis::cmd("SET")
        .arg(format!("{}initial:{id}", classic.prefix))
        .arg(stock)
        .query_async(&mut redis)
        .await;
    (StatusCode::CREATED, axum::Json(json!({ "id": id })))
}

/// A sale here only caps the product's stock at the sale stock: the classic design has one
/// counter per product.
async fn schedule_sale(
    State(classic): State<Arc<Classic>>,
    axum::Json(body): axum::Json<Value>,
) -> (StatusCode, axum::Json<Value>) {
    let (Some(product), Some(stock)) = (body["productId"].as_u64(), body["stock"].as_u64()) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    };
    let mut redis = classic.redis.clone();
    for key in ["stock", "initial"] {
        let _: redis::RedisResult<()> = redis::cmd("SET")
            .arg(format!("{}{key}:{product}", classic.prefix))
            .arg(stock)
            .query_async(&mut redis)
            .await;
    }
    (StatusCode::CREATED, axum::Json(json!({ "id": product })))
}

async fn inventory(
    State(classic): State<Arc<Classic>>,
    Path(product): Path<u64>,
) -> axum::Json<Value> {
    let mut redis = classic.redis.clone();
    let read = |key: &str| format!("{}{key}:{product}", classic.prefix);
    let left: Option<u64> = redis::cmd("GET")
        .arg(read("stock"))
        .query_async(&mut redis)
        .await
        .unwrap_or(None);
    let initial: Option<u64> = redis::cmd("GET")
        .arg(read("initial"))
        .query_async(&mut redis)
        .await
        .unwrap_or(None);
    let sold = initial.unwrap_or(0).saturating_sub(left.unwrap_or(0));
    axum::Json(json!({ "sold": sold, "reserved": 0, "sale": { "sold": sold, "reserved": 0 } }))
}
