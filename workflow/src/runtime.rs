//! Starts the relay, analytics and the workflow with whatever is configured: Kafka and
//! RabbitMQ when their settings are given, the in-process equivalents otherwise.

use std::sync::Arc;
use std::time::Duration;

use persistence::{CampaignStore, Deliveries, Outbox, RecommendationStore, WishlistStore};
use tokio::task::JoinHandle;

use crate::WorkflowError;
use crate::analytics::Analytics;
use crate::campaigns::messages::{CampaignMessages, CampaignWorker};
use crate::campaigns::planner::CampaignPlanner;
use crate::campaigns::queue::{CampaignQueue, LocalCampaignQueue, RabbitCampaignQueue};
use crate::campaigns::runner::CampaignRunner;
use crate::campaigns::{CAMPAIGN_CHANNELS, CampaignSettings};
use crate::cart_reminders::cart_reminders;
use crate::jobs::{ChannelWorker, JobQueue, PAYMENT_PROVIDER, Sender};
use crate::kafka::{KafkaSettings, KafkaSink, create_topics, start_analytics_consumer};
use crate::local::{AnalyticsSink, LocalJobQueue, SagaSink};
use crate::pacing::PacedSender;
use crate::payout_notices::payout_notices;
use crate::rabbit::{
    Rabbit, RabbitJobQueue, RabbitSettings, RabbitSink, start_worker, start_worker_with_prefetch,
};
use crate::relay::{EventSink, RelayGate, start_relay};
use crate::saga::{OrderSaga, SagaSettings};

#[derive(Clone, Debug)]
pub struct WorkflowSettings {
    pub kafka: Option<KafkaSettings>,
    pub rabbit: Option<RabbitSettings>,
    pub saga: SagaSettings,
    /// Jobs sent at once by the in-process queue (RabbitMQ workers use their prefetch).
    pub local_concurrency: usize,
    /// Tries and first backoff of the in-process queue.
    pub local_attempts: u32,
    pub local_backoff: Duration,
    /// How far back trending products look.
    pub trending_window: Duration,
    pub campaigns: CampaignSettings,
    /// Whose recommendation counts this node saves and reloads (its cluster node id).
    pub node: String,
    /// How often the recommendation lists that changed are saved (a crash loses at most
    /// this much counting).
    pub save_recommendations_every: Duration,
}

/// What the workflow reads and writes: the outbox it relays, the delivery partners the
/// saga assigns, and the campaigns it runs for the wishers of a product.
#[derive(Clone)]
pub struct WorkflowStores {
    pub outbox: Arc<dyn Outbox>,
    pub deliveries: Arc<dyn Deliveries>,
    pub campaigns: Arc<dyn CampaignStore>,
    pub wishlists: Arc<dyn WishlistStore>,
    pub recommendations: Arc<dyn RecommendationStore>,
}

pub struct Workflow {
    analytics: Arc<Analytics>,
    rabbit: Option<Rabbit>,
    tasks: Vec<JoinHandle<()>>,
    recommendations: Arc<dyn RecommendationStore>,
    node: String,
}

impl Workflow {
    /// Starts everything; `sender` sends notifications (the default records them).
    pub async fn start(
        settings: WorkflowSettings,
        stores: WorkflowStores,
        sender: Arc<dyn Sender>,
    ) -> Result<Self, WorkflowError> {
        Self::start_gated(settings, stores, sender, Arc::new(|| true)).await
    }

    /// [`Workflow::start`] for a node of a cluster: it relays the outbox only while `gate`
    /// says so (see [`RelayGate`]).
    pub async fn start_gated(
        settings: WorkflowSettings,
        stores: WorkflowStores,
        sender: Arc<dyn Sender>,
        gate: RelayGate,
    ) -> Result<Self, WorkflowError> {
        let analytics = Arc::new(Analytics::new(settings.trending_window.as_millis() as u64));
        // Before any event is counted: counts since are summed into what was saved.
        match stores.recommendations.neighbour_lists(&settings.node).await {
            Ok(lists) => analytics.restore_together(lists),
            Err(error) => {
                tracing::warn!(%error, "recommendations start over: the saved lists are unreadable")
            }
        }
        let mut sinks: Vec<Arc<dyn EventSink>> = vec![Arc::new(CampaignPlanner::new(
            Arc::clone(&stores.campaigns),
            settings.campaigns.reminder_before,
        ))];
        let mut tasks = Vec::new();
        let sender: Arc<dyn Sender> = Arc::new(PacedSender::new(
            sender,
            settings.campaigns.send_rate_per_second,
        ));
        let campaign_messages =
            CampaignMessages::new(Arc::clone(&stores.campaigns), Arc::clone(&sender));
        let campaign_queue: Arc<dyn CampaignQueue>;
        match &settings.kafka {
            Some(kafka) => {
                // A broker that is down now is the relay's business: it retries.
                if let Err(error) = create_topics(kafka).await {
                    tracing::warn!(%error, "could not create the Kafka topics yet");
                }
                sinks.push(Arc::new(KafkaSink::new(kafka.clone())?));
                tasks.push(start_analytics_consumer(kafka, Arc::clone(&analytics))?);
            }
            None => sinks.push(Arc::new(AnalyticsSink {
                analytics: Arc::clone(&analytics),
            })),
        }
        let rabbit = match &settings.rabbit {
            Some(rabbit_settings) => {
                let rabbit = Rabbit::connect(rabbit_settings.clone()).await?;
                let jobs: Arc<dyn JobQueue> = Arc::new(RabbitJobQueue::new(rabbit.clone()));
                sinks.push(Arc::new(cart_reminders(Arc::clone(&jobs))));
                sinks.push(Arc::new(payout_notices(Arc::clone(&jobs))));
                let saga = Arc::new(OrderSaga::new(
                    Arc::clone(&stores.deliveries),
                    jobs,
                    settings.saga.clone(),
                ));
                sinks.push(Arc::new(RabbitSink::new(rabbit.clone())));
                let names = rabbit.names().clone();
                tasks.push(start_worker(&rabbit, &names.workflow_queue, saga).await?);
                let workers = [
                    (names.payments_queue.clone(), PAYMENT_PROVIDER),
                    (names.channel_queue("email"), "email"),
                    (names.channel_queue("sms"), "sms"),
                ];
                for (queue, channel) in workers {
                    let worker = Arc::new(ChannelWorker {
                        channel: channel.to_owned(),
                        sender: Arc::clone(&sender),
                    });
                    tasks.push(start_worker(&rabbit, &queue, worker).await?);
                }
                for channel in CAMPAIGN_CHANNELS {
                    let worker = Arc::new(CampaignWorker {
                        channel: channel.to_owned(),
                        messages: Arc::clone(&campaign_messages),
                    });
                    let queue = names.campaign_queue(channel);
                    let prefetch = settings.campaigns.concurrency;
                    tasks
                        .push(start_worker_with_prefetch(&rabbit, &queue, worker, prefetch).await?);
                }
                campaign_queue = Arc::new(RabbitCampaignQueue::new(rabbit.clone()));
                Some(rabbit)
            }
            None => {
                campaign_queue = Arc::new(LocalCampaignQueue::new(
                    campaign_messages,
                    usize::from(settings.campaigns.concurrency),
                    settings.local_attempts,
                    settings.local_backoff,
                ));
                let jobs: Arc<dyn JobQueue> = Arc::new(LocalJobQueue::new(
                    sender,
                    settings.local_concurrency,
                    settings.local_attempts,
                    settings.local_backoff,
                ));
                sinks.push(Arc::new(cart_reminders(Arc::clone(&jobs))));
                sinks.push(Arc::new(payout_notices(Arc::clone(&jobs))));
                let saga = Arc::new(OrderSaga::new(
                    Arc::clone(&stores.deliveries),
                    jobs,
                    settings.saga.clone(),
                ));
                sinks.push(Arc::new(SagaSink { saga }));
                None
            }
        };
        let runner = CampaignRunner {
            campaigns: stores.campaigns,
            wishlists: stores.wishlists,
            queue: campaign_queue,
            settings: settings.campaigns,
        };
        tasks.push(runner.start(Arc::clone(&gate)));
        tasks.push(start_relay(stores.outbox, sinks, gate));
        tasks.push(start_recommendation_saver(
            Arc::clone(&analytics),
            Arc::clone(&stores.recommendations),
            settings.node.clone(),
            settings.save_recommendations_every,
        ));
        Ok(Self {
            analytics,
            rabbit,
            tasks,
            recommendations: stores.recommendations,
            node: settings.node,
        })
    }

    /// Saves the recommendation lists counted since the last save (a graceful stop calls
    /// it while the store still takes writes).
    pub async fn save_recommendations(&self) {
        if let Err(error) = self
            .analytics
            .save_together(self.recommendations.as_ref(), &self.node)
            .await
        {
            tracing::warn!(%error, "the last recommendation counts were not saved");
        }
    }

    pub fn analytics(&self) -> Arc<Analytics> {
        Arc::clone(&self.analytics)
    }

    pub fn rabbit(&self) -> Option<&Rabbit> {
        self.rabbit.as_ref()
    }

    /// Stops at once, as a crash would: unacknowledged messages go back to RabbitMQ and
    /// unrelayed events stay in the outbox.
    pub async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(rabbit) = &self.rabbit {
            rabbit.close().await;
        }
    }
}

/// Saves the recommendation lists that changed, every `every`.
fn start_recommendation_saver(
    analytics: Arc<Analytics>,
    store: Arc<dyn RecommendationStore>,
    node: String,
    every: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if let Err(error) = analytics.save_together(store.as_ref(), &node).await {
                tracing::warn!(%error, "recommendation counts not saved; trying again");
            }
        }
    })
}
