//! What the notification jobs sent (with the default sender, what they would have sent),
//! newest first: a customer's messages, and (for admins) what went to providers, the
//! payment requests.

use axum::extract::State;
use persistence::Notification;
use serde::{Deserialize, Serialize};

use crate::app::ApiContext;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::Query;

const LIMIT_MAX: u32 = 200;

use crate::api_doc::ErrorBody;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(provider_messages))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// How many, 1 to 200 (default 50).
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct NotificationBody {
    /// order_confirmed, payment_failed, shipped, review_request, sale_scheduled,
    /// sale_starts_soon, cart_reminder... (payment_request in the provider log).
    kind: String,
    /// email, sms or push (payment_provider in the provider log).
    channel: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, nullable = false)]
    order_id: Option<engine::OrderId>,
    /// What was sent, as the job rendered it.
    body: serde_json::Value,
    sent_at_ms: u64,
}

impl From<Notification> for NotificationBody {
    fn from(notification: Notification) -> Self {
        Self {
            kind: notification.kind,
            channel: notification.channel,
            order_id: notification.order_id,
            body: serde_json::from_str(&notification.body).unwrap_or(serde_json::Value::Null),
            sent_at_ms: notification.sent_at_ms,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(as = NotificationList)]
struct ListBody {
    notifications: Vec<NotificationBody>,
}

/// The caller's messages, newest first.
#[utoipa::path(
    get,
    path = "/notifications",
    tag = "orders",
    security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "The messages.", body = ListBody),
        (status = 422, description = "A bad `limit` (`invalid_field`).", body = ErrorBody),
    )
)]
async fn list(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<ListBody>, ApiError> {
    let limit = checked_limit(params.limit)?;
    let notifications = ctx
        .shop
        .notifications(caller.user_id, limit)
        .await?
        .into_iter()
        .map(NotificationBody::from)
        .collect();
    Ok(axum::Json(ListBody { notifications }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ProviderMessageBody {
    /// What the provider deduplicates on: the job and channel.
    dedup_key: String,
    user_id: u64,
    /// kind payment_request, channel payment_provider.
    #[serde(flatten)]
    message: NotificationBody,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ProviderMessageList)]
struct ProviderListBody {
    messages: Vec<ProviderMessageBody>,
}

/// What went to providers (the payment request of every order), newest first (admins).
/// A job delivered twice shows twice: it was sent twice.
#[utoipa::path(
    get,
    path = "/admin/provider-messages",
    tag = "orders",
    security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "The messages.", body = ProviderListBody),
        (status = 403, description = "Admins only (`forbidden`).", body = ErrorBody),
        (status = 422, description = "A bad `limit` (`invalid_field`).", body = ErrorBody),
    )
)]
async fn provider_messages(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<ProviderListBody>, ApiError> {
    caller.require(&[Role::Admin])?;
    let limit = checked_limit(params.limit)?;
    let messages = ctx
        .shop
        .provider_messages(limit)
        .await?
        .into_iter()
        .map(|message| ProviderMessageBody {
            dedup_key: message.dedup_key.clone(),
            user_id: message.user_id.0,
            message: NotificationBody::from(message),
        })
        .collect();
    Ok(axum::Json(ProviderListBody { messages }))
}

/// `limit`, 50 when absent, checked against its range.
fn checked_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=LIMIT_MAX).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {LIMIT_MAX}"),
        ));
    }
    Ok(limit)
}
