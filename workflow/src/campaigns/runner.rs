//! Runs campaigns that fell due: the product's wishers, one keyset page at a time, each
//! page queued, then the cursor stored past it.

use std::sync::Arc;

use persistence::{Campaign, CampaignStore, WishlistStore};
use tokio::task::JoinHandle;

use crate::WorkflowError;
use crate::campaigns::messages::JobTemplate;
use crate::campaigns::queue::CampaignQueue;
use crate::campaigns::{CAMPAIGN_CHANNELS, CampaignSettings};
use crate::jobs::now_ms;
use crate::relay::RelayGate;

/// Campaigns looked at per poll at most.
const DUE_PER_POLL: u32 = 16;

pub struct CampaignRunner {
    pub campaigns: Arc<dyn CampaignStore>,
    pub wishlists: Arc<dyn WishlistStore>,
    pub queue: Arc<dyn CampaignQueue>,
    pub settings: CampaignSettings,
}

impl CampaignRunner {
    /// Polls for due campaigns while `gate` says this node runs them (on a cluster, the
    /// node that relays the outbox) and runs each to its end, one after the other.
    pub fn start(self, gate: RelayGate) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if gate()
                    && let Err(error) = self.run_due().await
                {
                    tracing::warn!(%error, "a campaign stopped; it continues at the next poll");
                }
                tokio::time::sleep(self.settings.poll_interval).await;
            }
        })
    }

    /// Runs the campaigns due now, each to its end.
    pub async fn run_due(&self) -> Result<(), WorkflowError> {
        for campaign in self.campaigns.due_campaigns(now_ms(), DUE_PER_POLL).await? {
            self.run(campaign).await?;
        }
        Ok(())
    }

    /// Queues the rest of a campaign's messages, from its stored cursor.
    async fn run(&self, campaign: Campaign) -> Result<(), WorkflowError> {
        let plan = &campaign.plan;
        let channels = CAMPAIGN_CHANNELS.len() as u64;
        if campaign.started_at_ms.is_none() {
            let wishers = self.wishlists.wishlist_count(plan.product_id).await?;
            self.campaigns
                .start_campaign(plan.sale_id, plan.kind, wishers * channels, now_ms())
                .await?;
            tracing::info!(
                sale = plan.sale_id.0,
                kind = plan.kind.as_str(),
                wishers,
                "campaign started"
            );
        }
        let template = JobTemplate::new(plan)?;
        let page_size = self.settings.page_size.max(1);
        let mut cursor = campaign.cursor;
        loop {
            let wishers = self
                .wishlists
                .wishers(plan.product_id, cursor, page_size)
                .await?;
            let last = wishers.len() < page_size as usize;
            let next = wishers.last().copied().or(cursor);
            let messages = wishers.len() as u64 * channels;
            self.queue
                .queue_page(wishers.iter().map(|user| template.job(*user)).collect())
                .await?;
            let moved = self
                .campaigns
                .advance_campaign(
                    plan.sale_id,
                    plan.kind,
                    cursor,
                    next,
                    messages,
                    last,
                    now_ms(),
                )
                .await?;
            if !moved {
                // Another runner moved it (a node that took over), and carries on; or the
                // sale was cancelled.
                tracing::info!(
                    sale = plan.sale_id.0,
                    kind = plan.kind.as_str(),
                    "campaign cursor moved elsewhere, or the campaign was cancelled"
                );
                return Ok(());
            }
            if last {
                tracing::info!(
                    sale = plan.sale_id.0,
                    kind = plan.kind.as_str(),
                    "campaign queued to the end"
                );
                return Ok(());
            }
            cursor = next;
        }
    }
}
