//! One campaign message on one channel: the job that carries it, and its delivery
//! (skipped when recorded, rate-limited, sent, recorded).

use std::sync::Arc;

use async_trait::async_trait;
use engine::{SaleId, UserId};
use persistence::{CampaignDelivery, CampaignKind, CampaignMessage, CampaignPlan, CampaignStore};
use serde::Deserialize;

use crate::WorkflowError;
use crate::batcher::{BatchWriter, Batcher};
use crate::campaigns::CAMPAIGN_CHANNELS;
use crate::jobs::{Job, Sender, now_ms};
use crate::pacing::{SALE_SCHEDULED, SALE_STARTS_SOON};

/// The job kind of each campaign's messages (what `GET /notifications` shows).
pub fn job_kind(kind: CampaignKind) -> &'static str {
    match kind {
        CampaignKind::Announcement => SALE_SCHEDULED,
        CampaignKind::Reminder => SALE_STARTS_SOON,
    }
}

/// The campaign a job belongs to, read back from its data.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CampaignOfJob {
    sale_id: SaleId,
    campaign: String,
}

/// Builds a campaign's jobs: its message, parsed once, with the campaign named in it.
pub struct JobTemplate {
    sale_id: SaleId,
    kind: CampaignKind,
    data: serde_json::Map<String, serde_json::Value>,
}

impl JobTemplate {
    pub fn new(plan: &CampaignPlan) -> Result<Self, WorkflowError> {
        let mut data: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&plan.message).map_err(|error| {
                WorkflowError::Malformed(format!("campaign {} message: {error}", plan.sale_id.0))
            })?;
        data.insert("saleId".into(), plan.sale_id.0.into());
        data.insert("campaign".into(), plan.kind.as_str().into());
        Ok(Self {
            sale_id: plan.sale_id,
            kind: plan.kind,
            data,
        })
    }

    /// The message to one wisher, on every campaign channel. Its id is stable for the
    /// user, sale and kind: the provider's idempotency key.
    pub fn job(&self, user: UserId) -> Job {
        Job {
            id: format!("sale:{}:{}:{}", self.sale_id.0, self.kind.as_str(), user.0),
            kind: job_kind(self.kind).to_owned(),
            user_id: user,
            order_id: None,
            channels: CAMPAIGN_CHANNELS.iter().map(|&c| c.to_owned()).collect(),
            data: serde_json::Value::Object(self.data.clone()),
        }
    }
}

/// Recorded deliveries waiting for the writer at most.
const RECORD_QUEUE: usize = 8_192;
/// Deliveries recorded by one transaction at most.
const RECORD_BATCH_MAX: usize = 2_048;

/// Messages whose closed check waits for the checker at most.
const CHECK_QUEUE: usize = 8_192;
/// Messages checked by one query at most.
const CHECK_BATCH_MAX: usize = 1_024;

/// Sends campaign messages: shared by every worker of this node. The sender paces them
/// ([`crate::pacing`]). Whether a message is closed is asked, and its delivery recorded,
/// in batches shared by the workers.
pub struct CampaignMessages {
    sender: Arc<dyn Sender>,
    closed: Batcher<CampaignMessage, bool>,
    records: BatchWriter<CampaignDelivery>,
}

impl CampaignMessages {
    pub fn new(store: Arc<dyn CampaignStore>, sender: Arc<dyn Sender>) -> Arc<Self> {
        let checker = Arc::clone(&store);
        let closed = Batcher::start(
            "campaign message check",
            CHECK_QUEUE,
            CHECK_BATCH_MAX,
            move |messages: Vec<CampaignMessage>| {
                let store = Arc::clone(&checker);
                async move {
                    store
                        .campaign_messages_closed(&messages)
                        .await
                        .map_err(|error| error.to_string())
                }
            },
        );
        let recorder = Arc::clone(&store);
        let records = BatchWriter::start(
            "campaign delivery",
            RECORD_QUEUE,
            RECORD_BATCH_MAX,
            move |deliveries: Vec<CampaignDelivery>| {
                let store = Arc::clone(&recorder);
                async move {
                    store
                        .record_campaign_deliveries(&deliveries)
                        .await
                        .map(|_| ())
                        .map_err(|error| error.to_string())
                }
            },
        );
        Arc::new(Self {
            sender,
            closed,
            records,
        })
    }

    /// Sends `job` on `channel` unless that was done before or its campaign was cancelled,
    /// and records it. An error
    /// leaves it unrecorded: the caller tries again later.
    pub async fn deliver(&self, channel: &str, job: &Job) -> Result<(), WorkflowError> {
        let (sale, kind) = campaign_of(job)?;
        let message = CampaignMessage {
            sale_id: sale,
            kind,
            user_id: job.user_id,
            channel: channel.to_owned(),
        };
        if self.closed.ask(message).await? {
            return Ok(());
        }
        self.sender.send(channel, job).await?;
        self.record(sale, kind, channel, job, true).await
    }

    /// Records that `job` was given up on `channel` (after its attempts).
    pub async fn give_up(&self, channel: &str, job: &Job) -> Result<(), WorkflowError> {
        let (sale, kind) = campaign_of(job)?;
        self.record(sale, kind, channel, job, false).await
    }

    async fn record(
        &self,
        sale: SaleId,
        kind: CampaignKind,
        channel: &str,
        job: &Job,
        sent: bool,
    ) -> Result<(), WorkflowError> {
        self.records
            .write(CampaignDelivery {
                sale_id: sale,
                kind,
                user_id: job.user_id,
                channel: channel.to_owned(),
                sent,
                at_ms: now_ms(),
            })
            .await
    }
}

fn campaign_of(job: &Job) -> Result<(SaleId, CampaignKind), WorkflowError> {
    let campaign: CampaignOfJob = serde_json::from_value(job.data.clone())
        .map_err(|error| WorkflowError::Malformed(format!("campaign job {}: {error}", job.id)))?;
    let kind = CampaignKind::parse(&campaign.campaign).ok_or_else(|| {
        WorkflowError::Malformed(format!(
            "campaign job {}: kind {}",
            job.id, campaign.campaign
        ))
    })?;
    Ok((campaign.sale_id, kind))
}

/// A campaign channel's RabbitMQ worker: sends the messages of its channel.
pub struct CampaignWorker {
    pub channel: String,
    pub messages: Arc<CampaignMessages>,
}

impl CampaignWorker {
    fn job(payload: &[u8]) -> Result<Job, WorkflowError> {
        serde_json::from_slice(payload)
            .map_err(|error| WorkflowError::Malformed(format!("campaign job: {error}")))
    }
}

#[async_trait]
impl crate::rabbit::Handler for CampaignWorker {
    async fn handle(&self, payload: &[u8], _redelivered: bool) -> Result<(), WorkflowError> {
        let job = Self::job(payload)?;
        if job.channels.contains(&self.channel) {
            self.messages.deliver(&self.channel, &job).await?;
        }
        Ok(())
    }

    async fn gave_up(&self, payload: &[u8]) {
        let recorded = match Self::job(payload) {
            Ok(job) => self.messages.give_up(&self.channel, &job).await,
            Err(error) => Err(error),
        };
        if let Err(error) = recorded {
            tracing::warn!(channel = %self.channel, %error, "could not record a campaign message given up");
        }
    }
}
