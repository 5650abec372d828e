//! Starts the relay, analytics and the workflow with whatever is configured: Kafka and
//! RabbitMQ when their settings are given, the in-process equivalents otherwise.

use std::sync::Arc;
use std::time::Duration;

use persistence::{CampaignStore, Deliveries, Outbox, WishlistStore};
use tokio::task::JoinHandle;

use crate::WorkflowError;
use crate::analytics::Analytics;
use crate::campaigns::messages::{CampaignMessages, CampaignWorker};
use crate::campaigns::planner::CampaignPlanner;
use crate::campaigns::queue::{CampaignQueue, LocalCampaignQueue, RabbitCampaignQueue};
use crate::campaigns::runner::CampaignRunner;
use crate::campaigns::{CAMPAIGN_CHANNELS, CampaignSettings};
use crate::cart_reminders::CartReminders;
use crate::jobs::{ChannelWorker, JobQueue, Sender};
use crate::kafka::{KafkaSettings, KafkaSink, create_topics, start_analytics_consumer};
use crate::local::{AnalyticsSink, LocalJobQueue, SagaSink};
use crate::pacing::PacedSender;
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
}

/// What the workflow reads and writes: the outbox it relays, the delivery partners the
/// saga assigns, and the campaigns it runs for the wishers of a product.
#[derive(Clone)]
pub struct WorkflowStores {
    pub outbox: Arc<dyn Outbox>,
    pub deliveries: Arc<dyn Deliveries>,
    pub campaigns: Arc<dyn CampaignStore>,
    pub wishlists: Arc<dyn WishlistStore>,
}

pub struct Workflow {
    analytics: Arc<Analytics>,
    rabbit: Option<Rabbit>,
    tasks: Vec<JoinHandle<()>>,
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
                sinks.push(Arc::new(CartReminders::new(Arc::clone(&jobs))));
                let saga = Arc::new(OrderSaga::new(
                    Arc::clone(&stores.deliveries),
                    jobs,
                    settings.saga.clone(),
                ));
                sinks.push(Arc::new(RabbitSink::new(rabbit.clone())));
                let names = rabbit.names().clone();
                tasks.push(start_worker(&rabbit, &names.workflow_queue, saga).await?);
                let workers = [
                    (names.payments_queue.clone(), "payment_provider"),
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
                sinks.push(Arc::new(CartReminders::new(Arc::clone(&jobs))));
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
        Ok(Self {
            analytics,
            rabbit,
            tasks,
        })
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
