//! Plans a sale's campaigns when the relay hands over its `flash_sale_scheduled` event,
//! plans them again when it is rescheduled (`flash_sale_rescheduled`: a campaign not
//! started yet takes the new time and message), and stops them when it is cancelled
//! (`flash_sale_cancelled`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use engine::{Money, ProductId, SaleId};
use persistence::{CampaignKind, CampaignPlan, CampaignStore, OutboxRow};
use serde::Deserialize;

use crate::WorkflowError;
use crate::event::EventBody;
use crate::relay::EventSink;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CancelledSale {
    sale_id: SaleId,
    cancelled_at_ms: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScheduledSale {
    sale_id: SaleId,
    product_id: ProductId,
    /// Events written before the title was part of them have none.
    #[serde(default)]
    title: String,
    sale_price: Money,
    original_price: Money,
    start_ms: u64,
    end_ms: Option<u64>,
}

/// The relay's sink that turns scheduled sales into planned campaigns.
pub struct CampaignPlanner {
    store: Arc<dyn CampaignStore>,
    reminder_before: Duration,
}

impl CampaignPlanner {
    pub fn new(store: Arc<dyn CampaignStore>, reminder_before: Duration) -> Self {
        Self {
            store,
            reminder_before,
        }
    }
}

/// A sale's campaigns, as of when it was scheduled (`at_ms`): the announcement at once
/// unless the sale is over; the reminder `reminder_before` its start, unless that moment
/// has passed (a sale starting in five minutes is announced, not reminded of). A sale
/// `rescheduled` within `reminder_before` of its new start is reminded of at once: its
/// wishers were told the old time.
fn campaigns_of(
    sale: &ScheduledSale,
    at_ms: u64,
    reminder_before: Duration,
    rescheduled: bool,
) -> Vec<CampaignPlan> {
    if sale.end_ms.is_some_and(|end| end <= at_ms) {
        return Vec::new();
    }
    let message = serde_json::json!({
        "productId": sale.product_id,
        "title": sale.title,
        "salePrice": sale.sale_price,
        "originalPrice": sale.original_price,
        "startMs": sale.start_ms,
    })
    .to_string();
    let plan = |kind, due_at_ms| CampaignPlan {
        sale_id: sale.sale_id,
        kind,
        product_id: sale.product_id,
        due_at_ms,
        message: message.clone(),
    };
    let mut plans = vec![plan(CampaignKind::Announcement, at_ms)];
    let before = reminder_before.as_millis() as u64;
    let reminder_at = sale.start_ms.saturating_sub(before);
    if reminder_at > at_ms {
        plans.push(plan(CampaignKind::Reminder, reminder_at));
    } else if rescheduled {
        plans.push(plan(CampaignKind::Reminder, at_ms));
    }
    plans
}

#[async_trait]
impl EventSink for CampaignPlanner {
    fn name(&self) -> &'static str {
        "campaigns"
    }

    async fn publish(&self, rows: &[OutboxRow]) -> Result<(), WorkflowError> {
        let mut plans = Vec::new();
        for row in rows {
            if row.event_type == "flash_sale_cancelled" {
                // The plans so far go first: a sale rescheduled, then cancelled, in one
                // pack ends cancelled.
                if !plans.is_empty() {
                    self.store
                        .plan_campaigns(&std::mem::take(&mut plans))
                        .await?;
                }
                match EventBody::of_row(row).and_then(|body| body.data::<CancelledSale>()) {
                    Ok(sale) => {
                        self.store
                            .cancel_campaigns(sale.sale_id, sale.cancelled_at_ms)
                            .await?
                    }
                    Err(error) => tracing::warn!(seq = row.seq, %error, "a cancelled sale unread"),
                }
                continue;
            }
            if row.event_type != "flash_sale_scheduled"
                && row.event_type != "flash_sale_rescheduled"
            {
                continue;
            }
            let planned = EventBody::of_row(row).and_then(|body| {
                let sale: ScheduledSale = body.data()?;
                Ok(campaigns_of(
                    &sale,
                    body.occurred_at_ms,
                    self.reminder_before,
                    row.event_type == "flash_sale_rescheduled",
                ))
            });
            match planned {
                Ok(more) => plans.extend(more),
                // Retrying cannot fix a body; skipping keeps the rest flowing.
                Err(error) => tracing::warn!(seq = row.seq, %error, "no campaign for a sale"),
            }
        }
        if plans.is_empty() {
            return Ok(());
        }
        Ok(self.store.plan_campaigns(&plans).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN_MINUTES: Duration = Duration::from_secs(600);

    fn sale(start_ms: u64, end_ms: Option<u64>) -> ScheduledSale {
        ScheduledSale {
            sale_id: SaleId(7),
            product_id: ProductId(3),
            title: "Galaxy S24".into(),
            sale_price: Money(499),
            original_price: Money(999),
            start_ms,
            end_ms,
        }
    }

    fn kinds_and_times(plans: &[CampaignPlan]) -> Vec<(CampaignKind, u64)> {
        plans
            .iter()
            .map(|plan| (plan.kind, plan.due_at_ms))
            .collect()
    }

    #[test]
    fn a_sale_is_announced_now_and_reminded_of_before_it_starts() {
        let plans = campaigns_of(&sale(3_600_000, None), 1_000, TEN_MINUTES, false);
        assert_eq!(
            kinds_and_times(&plans),
            [
                (CampaignKind::Announcement, 1_000),
                (CampaignKind::Reminder, 3_000_000)
            ]
        );
        let message: serde_json::Value = serde_json::from_str(&plans[0].message).expect("json");
        assert_eq!(message["title"], "Galaxy S24");
        assert_eq!(message["startMs"], 3_600_000);
    }

    #[test]
    fn a_sale_starting_within_the_reminder_time_is_only_announced() {
        let plans = campaigns_of(&sale(300_000, None), 1_000, TEN_MINUTES, false);
        assert_eq!(
            kinds_and_times(&plans),
            [(CampaignKind::Announcement, 1_000)]
        );
    }

    #[test]
    fn a_sale_already_over_has_no_campaign() {
        assert!(campaigns_of(&sale(0, Some(500)), 1_000, TEN_MINUTES, false).is_empty());
    }

    #[test]
    fn a_sale_moved_close_to_its_start_is_reminded_of_at_once() {
        let plans = campaigns_of(&sale(300_000, None), 1_000, TEN_MINUTES, true);
        assert_eq!(
            kinds_and_times(&plans),
            [
                (CampaignKind::Announcement, 1_000),
                (CampaignKind::Reminder, 1_000)
            ]
        );
        let later = campaigns_of(&sale(7_200_000, None), 1_000, TEN_MINUTES, true);
        assert_eq!(later[1].due_at_ms, 6_600_000);
    }
}
