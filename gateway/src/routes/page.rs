//! The page a new user sees at `/`: a live flash-sale board and an order tracker, one
//! self-contained file (no build step), talking to the public API and the two feeds.
//! With `serve --demo`, `/demo/token` hands the page a token for a fresh demo shopper.

use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use serde::Serialize;

use crate::app::ApiContext;
use crate::auth::{Claims, Role};
use crate::error::ApiError;

const PAGE: &str = include_str!("../page/index.html");
/// Demo shoppers get ids from here up, clear of seeded and admin users.
const DEMO_USER_BASE: u64 = 1_000_000;

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/", get(page))
        .route("/demo/token", get(demo_token))
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DemoToken {
    token: String,
    user_id: u64,
}

/// Only in demo mode: a customer token for a new shopper, valid for a day.
async fn demo_token(State(ctx): State<ApiContext>) -> Result<axum::Json<DemoToken>, ApiError> {
    if !ctx.limits.demo {
        return Err(ApiError::NotFound(
            "demo tokens exist only with `serve --demo`".into(),
        ));
    }
    let mut random = [0u8; 4];
    getrandom::fill(&mut random).map_err(|error| ApiError::Unavailable(error.to_string()))?;
    let user_id = DEMO_USER_BASE + u64::from(u32::from_le_bytes(random));
    let claims = Claims {
        sub: user_id.to_string(),
        role: Role::Customer,
        exp: actors::clock::now_ms() / 1_000 + 24 * 3_600,
    };
    Ok(axum::Json(DemoToken {
        token: ctx.keys.encode(&claims),
        user_id,
    }))
}
