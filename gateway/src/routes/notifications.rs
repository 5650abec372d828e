//! A customer's messages: what the notification jobs sent (with the default sender, what
//! they would have sent), newest first.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::app::ApiContext;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Query;

const LIMIT_MAX: u32 = 200;

pub fn router() -> Router<ApiContext> {
    Router::new().route("/notifications", get(list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<u32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NotificationBody {
    kind: String,
    channel: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_id: Option<engine::OrderId>,
    body: serde_json::Value,
    sent_at_ms: u64,
}

#[derive(Serialize)]
struct ListBody {
    notifications: Vec<NotificationBody>,
}

async fn list(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<ListBody>, ApiError> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=LIMIT_MAX).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {LIMIT_MAX}"),
        ));
    }
    let notifications = ctx
        .shop
        .notifications(caller.user_id, limit)
        .await?
        .into_iter()
        .map(|notification| NotificationBody {
            kind: notification.kind,
            channel: notification.channel,
            order_id: notification.order_id,
            body: serde_json::from_str(&notification.body).unwrap_or(serde_json::Value::Null),
            sent_at_ms: notification.sent_at_ms,
        })
        .collect();
    Ok(axum::Json(ListBody { notifications }))
}
