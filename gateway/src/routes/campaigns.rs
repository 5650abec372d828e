//! A sale campaign's progress (admin): how many messages its announcement, and its
//! reminder, have to send, have queued, sent and given up on. The campaigns themselves
//! run in the workflow (`workflow/src/campaigns/`).

use axum::extract::State;
use engine::SaleId;
use persistence::{Campaign, CampaignKind};
use serde::Serialize;

use crate::app::ApiContext;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::Path;
use crate::time_format::format_rfc3339_ms;

use crate::api_doc::ErrorBody;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(show))
}

/// One campaign's counts, in messages (one per wisher and channel: push and email).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CampaignProgress {
    /// When it runs (the announcement: when the sale was scheduled).
    due_at: String,
    /// Messages to send: wishers when it started, times channels (absent before).
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    enqueued: u64,
    sent: u64,
    /// Given up on after their attempts (in the dead-letter queue with RabbitMQ).
    failed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    /// Every wisher's messages queued, and each sent or given up on; or cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
    /// The sale was cancelled: nothing more was queued or sent from then.
    #[serde(skip_serializing_if = "Option::is_none")]
    cancelled_at: Option<String>,
}

impl From<&Campaign> for CampaignProgress {
    fn from(campaign: &Campaign) -> Self {
        Self {
            due_at: format_rfc3339_ms(campaign.plan.due_at_ms),
            total: campaign.total,
            enqueued: campaign.enqueued,
            sent: campaign.sent,
            failed: campaign.failed,
            started_at: campaign.started_at_ms.map(format_rfc3339_ms),
            finished_at: campaign.finished_at_ms.map(format_rfc3339_ms),
            cancelled_at: campaign.cancelled_at_ms.map(format_rfc3339_ms),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SaleCampaign {
    sale_id: u64,
    product_id: u64,
    /// The announcement, sent when the sale was scheduled.
    #[serde(flatten)]
    announcement: CampaignProgress,
    /// The reminder before the start; absent when the sale was scheduled too close to its
    /// start for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    reminder: Option<CampaignProgress>,
}

/// A sale's campaign: its announcement's progress, and its reminder's (admins).
#[utoipa::path(
    get,
    path = "/admin/campaigns/{sale_id}",
    tag = "sales",
    security(("bearer" = [])),
    params(("sale_id" = u64, Path, description = "The sale's id.")),
    responses(
        (status = 200, description = "The campaign's progress.", body = SaleCampaign),
        (status = 403, description = "Admins only (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No campaign for this sale (yet: it is planned moments after the sale is scheduled) (`not_found`).", body = ErrorBody),
    )
)]
async fn show(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(sale_id): Path<u64>,
) -> Result<axum::Json<SaleCampaign>, ApiError> {
    caller.require(&[Role::Admin])?;
    let campaigns = ctx
        .campaigns
        .campaigns_of_sale(SaleId(sale_id))
        .await
        .map_err(|error| ApiError::Unavailable(error.to_string()))?;
    let of_kind = |kind| campaigns.iter().find(|campaign| campaign.plan.kind == kind);
    let announcement = of_kind(CampaignKind::Announcement)
        .ok_or_else(|| ApiError::NotFound(format!("no campaign for sale {sale_id}")))?;
    Ok(axum::Json(SaleCampaign {
        sale_id,
        product_id: announcement.plan.product_id.0,
        announcement: CampaignProgress::from(announcement),
        reminder: of_kind(CampaignKind::Reminder).map(CampaignProgress::from),
    }))
}
