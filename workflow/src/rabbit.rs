//! RabbitMQ: the order workflow's exchanges, queues and workers.
//!
//! Topology (every name carries the configured prefix):
//! - `orders` (topic): order events as `order.<verb>.<userId>` (`order.created.42`,
//!   `order.paid.42`, ...). The saga's queue `workflow.orders` takes `order.#`.
//! - `payments` (direct): `initiate` asks the payment provider to collect an order's
//!   amount; its worker's queue is `payments.initiate`.
//! - `notifications` (fanout): every notification job reaches every channel's queue
//!   (`notifications.email`, `notifications.sms`); each worker sends the jobs naming it.
//! - `campaigns` (fanout): a sale campaign's messages, one per wisher, reach
//!   `campaigns.push` and `campaigns.email`. Queues of their own, so that a million
//!   "the sale starts" messages never wait in front of an order confirmation.
//!
//! Every message is persistent and published with confirms. Workers ack by hand after the
//! work is done, with a bounded prefetch. A failure goes to `<queue>.retry.<ms>` (a queue
//! whose TTL dead-letters the message back to `<queue>`) with exponential backoff; after
//! its last attempt it goes to `<queue>.dlq` and the queue keeps flowing. Delayed jobs wait
//! the same way in `notifications.delay.<ms>`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use persistence::OutboxRow;
use tokio::task::JoinHandle;

use crate::WorkflowError;
use crate::event::{EventBody, order_verb};
use crate::jobs::{Job, JobQueue, PAYMENT_PROVIDER, backoff};
use crate::relay::EventSink;

#[derive(Clone, Debug)]
pub struct RabbitSettings {
    /// `amqp://user:password@host:port/%2f`.
    pub url: String,
    /// Prepended to every exchange and queue name (tests, shared brokers).
    pub prefix: String,
    /// Unacknowledged messages per worker: its concurrency limit.
    pub prefetch: u16,
    /// Tries per message before it goes to the dead-letter queue.
    pub attempts: u32,
    /// First retry delay; each later one doubles.
    pub backoff: Duration,
}

const PERSISTENT: u8 = 2;
const ATTEMPT_HEADER: &str = "x-attempt";
const ERROR_HEADER: &str = "x-last-error";
/// How long an idle retry or delay queue outlives the longest wait in it.
const WAITING_QUEUE_GRACE_MS: u32 = 10 * 60 * 1_000;

/// Names of the topology, with the prefix applied.
#[derive(Clone, Debug)]
pub struct Names {
    pub orders: String,
    pub payments: String,
    pub notifications: String,
    pub campaigns: String,
    pub workflow_queue: String,
    pub payments_queue: String,
    prefix: String,
}

impl Names {
    fn new(prefix: &str) -> Self {
        Self {
            orders: format!("{prefix}orders"),
            payments: format!("{prefix}payments"),
            notifications: format!("{prefix}notifications"),
            campaigns: format!("{prefix}campaigns"),
            workflow_queue: format!("{prefix}workflow.orders"),
            payments_queue: format!("{prefix}payments.initiate"),
            prefix: prefix.to_owned(),
        }
    }

    pub fn channel_queue(&self, channel: &str) -> String {
        Self::channel_queue_of(&self.prefix, channel)
    }

    /// The queue of a notification channel's worker.
    pub fn channel_queue_of(prefix: &str, channel: &str) -> String {
        format!("{prefix}notifications.{channel}")
    }

    /// The queue of a campaign channel's worker.
    pub fn campaign_queue(&self, channel: &str) -> String {
        format!("{}campaigns.{channel}", self.prefix)
    }

    pub fn dead_letter_queue(queue: &str) -> String {
        format!("{queue}.dlq")
    }
}

/// One connection and a publishing channel in confirm mode.
#[derive(Clone)]
pub struct Rabbit {
    connection: Arc<Connection>,
    publisher: Channel,
    settings: RabbitSettings,
    names: Names,
    /// Retry and delay queues this connection declared (made on use; see `waiting_queue`).
    declared: Arc<Mutex<HashSet<String>>>,
}

impl Rabbit {
    /// Connects and declares the topology (idempotent: the same declarations every start).
    pub async fn connect(settings: RabbitSettings) -> Result<Self, WorkflowError> {
        let connection =
            Connection::connect(&settings.url, ConnectionProperties::default()).await?;
        let publisher = connection.create_channel().await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let names = Names::new(&settings.prefix);
        let rabbit = Self {
            connection: Arc::new(connection),
            publisher,
            settings,
            names,
            declared: Arc::default(),
        };
        rabbit.declare_topology().await?;
        Ok(rabbit)
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    pub fn settings(&self) -> &RabbitSettings {
        &self.settings
    }

    /// Closes the connection without acknowledging anything in flight: RabbitMQ gives
    /// unacknowledged messages to the next worker.
    pub async fn close(&self) {
        let _ = self.connection.close(320, "closing".into()).await;
    }

    /// Deletes every exchange and queue of this prefix: test teardown, or retiring a
    /// prefix. Messages in them are gone.
    pub async fn delete_topology(&self) -> Result<(), WorkflowError> {
        use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
        let names = &self.names;
        let mut queues: Vec<String> = self
            .declared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .cloned()
            .collect();
        for queue in [
            names.workflow_queue.clone(),
            names.payments_queue.clone(),
            names.channel_queue("email"),
            names.channel_queue("sms"),
        ]
        .into_iter()
        .chain(
            crate::campaigns::CAMPAIGN_CHANNELS
                .iter()
                .map(|channel| names.campaign_queue(channel)),
        ) {
            queues.push(Names::dead_letter_queue(&queue));
            queues.push(queue);
        }
        for queue in queues {
            self.publisher
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await?;
        }
        for exchange in [
            &names.orders,
            &names.payments,
            &names.notifications,
            &names.campaigns,
        ] {
            self.publisher
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await?;
        }
        Ok(())
    }

    async fn declare_topology(&self) -> Result<(), WorkflowError> {
        let names = &self.names;
        let channel = &self.publisher;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        for (exchange, kind) in [
            (&names.orders, ExchangeKind::Topic),
            (&names.payments, ExchangeKind::Direct),
            (&names.notifications, ExchangeKind::Fanout),
            (&names.campaigns, ExchangeKind::Fanout),
        ] {
            channel
                .exchange_declare(
                    exchange.as_str().into(),
                    kind,
                    durable,
                    FieldTable::default(),
                )
                .await?;
        }
        self.declare_work_queue(&names.workflow_queue).await?;
        self.bind(&names.workflow_queue, &names.orders, "order.#")
            .await?;
        self.declare_work_queue(&names.payments_queue).await?;
        self.bind(&names.payments_queue, &names.payments, "initiate")
            .await?;
        for channel_name in ["email", "sms"] {
            let queue = names.channel_queue(channel_name);
            self.declare_work_queue(&queue).await?;
            self.bind(&queue, &names.notifications, "").await?;
        }
        for channel_name in crate::campaigns::CAMPAIGN_CHANNELS {
            let queue = names.campaign_queue(channel_name);
            self.declare_work_queue(&queue).await?;
            self.bind(&queue, &names.campaigns, "").await?;
        }
        Ok(())
    }

    async fn declare_work_queue(&self, queue: &str) -> Result<(), WorkflowError> {
        let durable = QueueDeclareOptions::durable();
        self.publisher
            .queue_declare(queue.into(), durable, FieldTable::default())
            .await?;
        self.publisher
            .queue_declare(
                Names::dead_letter_queue(queue).as_str().into(),
                durable,
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }

    async fn bind(&self, queue: &str, exchange: &str, key: &str) -> Result<(), WorkflowError> {
        self.publisher
            .queue_bind(
                queue.into(),
                exchange.into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }

    /// A queue where messages wait `delay`, then go to `exchange` with `routing_key`.
    /// Declared before every use: the declaration resets its `x-expires`, so a waiting
    /// queue disappears only once it has been idle longer than any message waits in it.
    async fn waiting_queue(
        &self,
        name: String,
        delay: Duration,
        exchange: &str,
        routing_key: Option<&str>,
    ) -> Result<String, WorkflowError> {
        let mut arguments = FieldTable::default();
        let ttl = u32::try_from(delay.as_millis()).unwrap_or(u32::MAX);
        arguments.insert("x-message-ttl".into(), AMQPValue::LongUInt(ttl));
        let idle = ttl.saturating_add(WAITING_QUEUE_GRACE_MS);
        arguments.insert("x-expires".into(), AMQPValue::LongUInt(idle));
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(LongString::from(exchange)),
        );
        if let Some(key) = routing_key {
            arguments.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(LongString::from(key)),
            );
        }
        self.publisher
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions::durable(),
                arguments,
            )
            .await?;
        self.declared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(name.clone());
        Ok(name)
    }

    /// Publishes a persistent message and waits for the broker's confirm.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        headers: FieldTable,
    ) -> Result<(), WorkflowError> {
        let confirm = self.send(exchange, routing_key, payload, headers).await?;
        confirm.await
    }

    /// Hands a message to the broker; the returned future resolves on its confirm.
    pub(crate) async fn send(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        headers: FieldTable,
    ) -> Result<impl Future<Output = Result<(), WorkflowError>> + use<>, WorkflowError> {
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type("application/json".into())
            .with_headers(headers);
        let confirm = self
            .publisher
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                payload,
                properties,
            )
            .await?;
        let target = format!("{exchange}/{routing_key}");
        Ok(async move {
            match confirm.await? {
                confirmation if confirmation.is_ack() => Ok(()),
                _ => Err(WorkflowError::NotConfirmed(target)),
            }
        })
    }
}

fn header_text(key: &str, value: &str) -> FieldTable {
    let mut headers = FieldTable::default();
    headers.insert(key.into(), AMQPValue::LongString(LongString::from(value)));
    headers
}

/// The relay's sink for the order workflow: order events to the `orders` exchange.
pub struct RabbitSink {
    rabbit: Rabbit,
}

impl RabbitSink {
    pub fn new(rabbit: Rabbit) -> Self {
        Self { rabbit }
    }
}

#[async_trait]
impl EventSink for RabbitSink {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    async fn publish(&self, rows: &[OutboxRow]) -> Result<(), WorkflowError> {
        let mut confirms = Vec::new();
        for row in rows {
            let Some(verb) = order_verb(&row.event_type) else {
                continue;
            };
            // A body the engine wrote and cannot read back is a bug; it still goes out,
            // routed without a user, so the workflow's dead-letter queue shows it.
            let user = EventBody::of_row(row)
                .and_then(|body| body.order())
                .map_or_else(
                    |_| "unknown".to_owned(),
                    |order| order.user_id.0.to_string(),
                );
            let routing_key = format!("order.{verb}.{user}");
            let headers = header_text("type", &row.event_type);
            confirms.push(
                self.rabbit
                    .send(
                        &self.rabbit.names.orders,
                        &routing_key,
                        row.payload.as_bytes(),
                        headers,
                    )
                    .await?,
            );
        }
        for confirm in confirms {
            confirm.await?;
        }
        Ok(())
    }
}

/// Notification jobs over RabbitMQ: `notifications` (fanout) for messages to customers,
/// `payments` (direct, `initiate`) for payment requests, delay queues for later ones.
pub struct RabbitJobQueue {
    rabbit: Rabbit,
}

impl RabbitJobQueue {
    pub fn new(rabbit: Rabbit) -> Self {
        Self { rabbit }
    }
}

#[async_trait]
impl JobQueue for RabbitJobQueue {
    async fn enqueue(&self, job: Job, delay: Duration) -> Result<(), WorkflowError> {
        let payload =
            serde_json::to_vec(&job).map_err(|error| WorkflowError::Failed(error.to_string()))?;
        let names = &self.rabbit.names;
        let (exchange, routing_key) = if job
            .channels
            .iter()
            .any(|channel| channel == PAYMENT_PROVIDER)
        {
            (names.payments.as_str(), "initiate")
        } else {
            (names.notifications.as_str(), "")
        };
        if delay.is_zero() {
            return self
                .rabbit
                .publish(exchange, routing_key, &payload, FieldTable::default())
                .await;
        }
        let waiting = format!("{}.delay.{}ms", exchange, delay.as_millis());
        let waiting = self
            .rabbit
            .waiting_queue(waiting, delay, exchange, Some(routing_key))
            .await?;
        self.rabbit
            .publish("", &waiting, &payload, FieldTable::default())
            .await
    }
}

/// What a worker does with one message. An error retries it later.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, payload: &[u8], redelivered: bool) -> Result<(), WorkflowError>;

    /// Called once when a message is given up on, before it goes to the dead-letter queue.
    async fn gave_up(&self, _payload: &[u8]) {}
}

/// Consumes `queue` until the connection closes: manual acks, `prefetch` messages at a
/// time, retries with backoff, then the dead-letter queue.
pub async fn start_worker(
    rabbit: &Rabbit,
    queue: &str,
    handler: Arc<dyn Handler>,
) -> Result<JoinHandle<()>, WorkflowError> {
    start_worker_with_prefetch(rabbit, queue, handler, rabbit.settings.prefetch).await
}

/// [`start_worker`] with a prefetch of its own (a campaign's senders keep more messages
/// in flight than the order workflow's).
pub async fn start_worker_with_prefetch(
    rabbit: &Rabbit,
    queue: &str,
    handler: Arc<dyn Handler>,
    prefetch: u16,
) -> Result<JoinHandle<()>, WorkflowError> {
    let channel = rabbit.connection.create_channel().await?;
    let prefetch = prefetch.max(1);
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            queue.into(),
            ShortString::from(""),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let rabbit = rabbit.clone();
    let queue = queue.to_owned();
    Ok(tokio::spawn(async move {
        consumer
            .for_each_concurrent(usize::from(prefetch), |delivery| {
                let (rabbit, queue, handler) = (&rabbit, &queue, &handler);
                async move {
                    match delivery {
                        Ok(delivery) => work(rabbit, queue, handler.as_ref(), delivery).await,
                        Err(error) => tracing::warn!(%queue, %error, "consumer stopped"),
                    }
                }
            })
            .await;
    }))
}

async fn work(
    rabbit: &Rabbit,
    queue: &str,
    handler: &dyn Handler,
    delivery: lapin::message::Delivery,
) {
    let outcome = handler.handle(&delivery.data, delivery.redelivered).await;
    let settled = match outcome {
        Ok(()) => {
            crate::jobs::count_job(queue.to_owned(), "done");
            Ok(())
        }
        Err(error) => retry_or_dead_letter(rabbit, queue, handler, &delivery, &error).await,
    };
    let acked = match settled {
        Ok(()) => delivery.ack(BasicAckOptions::default()).await,
        // Not retried and not dead-lettered: hand it back to the queue as it was.
        Err(error) => {
            crate::jobs::count_job(queue.to_owned(), "requeued");
            tracing::warn!(%queue, %error, "could not reschedule a failed message; requeueing");
            delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await
        }
    };
    if let Err(error) = acked {
        // The channel is gone; RabbitMQ redelivers the message to the next worker.
        tracing::warn!(%queue, %error, "could not settle a message");
    }
}

async fn retry_or_dead_letter(
    rabbit: &Rabbit,
    queue: &str,
    handler: &dyn Handler,
    delivery: &lapin::message::Delivery,
    error: &WorkflowError,
) -> Result<(), WorkflowError> {
    let attempt = attempt_of(delivery);
    let mut headers = FieldTable::default();
    headers.insert(
        ERROR_HEADER.into(),
        AMQPValue::LongString(LongString::from(error.to_string().as_str())),
    );
    if attempt >= rabbit.settings.attempts {
        handler.gave_up(&delivery.data).await;
        crate::jobs::count_job(queue.to_owned(), "dead_lettered");
        tracing::warn!(%queue, attempt, %error, "message dead-lettered");
        headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(attempt));
        return rabbit
            .publish(
                "",
                &Names::dead_letter_queue(queue),
                &delivery.data,
                headers,
            )
            .await;
    }
    let delay = backoff(rabbit.settings.backoff, attempt);
    crate::jobs::count_job(queue.to_owned(), "retried");
    tracing::info!(%queue, attempt, %error, delay_ms = delay.as_millis() as u64, "message retried later");
    headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(attempt + 1));
    let waiting = format!("{queue}.retry.{}ms", delay.as_millis());
    let waiting = rabbit
        .waiting_queue(waiting, delay, "", Some(queue))
        .await?;
    rabbit.publish("", &waiting, &delivery.data, headers).await
}

/// Which attempt this delivery is (1 for a fresh message).
fn attempt_of(delivery: &lapin::message::Delivery) -> u32 {
    let value = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get(ATTEMPT_HEADER).cloned());
    match value {
        Some(AMQPValue::LongUInt(attempt)) => attempt.max(1),
        Some(AMQPValue::LongInt(attempt)) => u32::try_from(attempt).unwrap_or(1).max(1),
        Some(AMQPValue::LongLongInt(attempt)) => u32::try_from(attempt).unwrap_or(1).max(1),
        _ => 1,
    }
}

/// Messages waiting in a queue (tests and operators read dead-letter queues with it).
pub async fn queue_depth(rabbit: &Rabbit, queue: &str) -> Result<u32, WorkflowError> {
    let declared = rabbit
        .publisher
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::durable().passive(),
            FieldTable::default(),
        )
        .await?;
    Ok(declared.message_count())
}
