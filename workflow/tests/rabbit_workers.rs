//! RabbitMQ workers against the real broker and a real PostgreSQL store: a crash
//! mid-message is redelivered and done once, a poison message ends in the dead-letter
//! queue and the queue keeps flowing, failures back off and retry, delayed jobs wait.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use engine::{OrderId, UserId};
use persistence::test_support::TestDatabase;
use persistence::{Database, NotificationStore, PostgresSettings};
use tokio::sync::Notify;
use workflow::WorkflowError;
use workflow::jobs::{ChannelWorker, Job, JobQueue, RecordingSender, Sender};
use workflow::rabbit::{
    Handler, Names, Rabbit, RabbitJobQueue, RabbitSettings, queue_depth, start_worker,
};
use workflow::test_support::{rabbit_url, unique_prefix};

fn settings(prefix: &str) -> RabbitSettings {
    RabbitSettings {
        url: rabbit_url(),
        prefix: prefix.to_owned(),
        prefetch: 4,
        attempts: 3,
        backoff: Duration::from_millis(50),
    }
}

async fn store(database: &TestDatabase) -> Arc<Database> {
    let settings = PostgresSettings {
        url: database.url.clone(),
        max_connections: 4,
        timeout: Duration::from_secs(5),
        connection_lifetime: PostgresSettings::CONNECTION_LIFETIME,
    };
    Arc::new(Database::connect(&settings).await.expect("postgres"))
}

fn job(user: u64, kind: &str) -> Job {
    Job {
        id: format!("{}:{kind}", uuid::Uuid::now_v7()),
        kind: kind.to_owned(),
        user_id: UserId(user),
        order_id: Some(OrderId(uuid::Uuid::now_v7())),
        channels: vec!["email".into()],
        data: serde_json::json!({"hello": user}),
    }
}

async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn recorded(store: &Arc<Database>, user: u64) -> Vec<String> {
    store
        .notifications_for_user(UserId(user), 100)
        .await
        .expect("notifications")
        .into_iter()
        .map(|notification| notification.dedup_key)
        .collect()
}

/// Records the job, then hangs: the worker "crashes" before it acknowledges.
struct HangingSender {
    inner: RecordingSender,
    reached: Arc<Notify>,
}

#[async_trait]
impl Sender for HangingSender {
    async fn send(&self, channel: &str, job: &Job) -> Result<(), WorkflowError> {
        self.inner.send(channel, job).await?;
        self.reached.notify_one();
        std::future::pending().await
    }
}

/// Notes whether each delivery was a redelivery, then does the real work.
struct Watching {
    inner: ChannelWorker,
    redelivered: Arc<Mutex<Vec<bool>>>,
}

#[async_trait]
impl Handler for Watching {
    async fn handle(&self, payload: &[u8], redelivered: bool) -> Result<(), WorkflowError> {
        self.redelivered.lock().expect("lock").push(redelivered);
        self.inner.handle(payload, redelivered).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_crashing_mid_message_gets_it_redelivered_and_it_is_done_once() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let prefix = unique_prefix();
    let queue = Names::channel_queue_of(&prefix, "email");

    let first = Rabbit::connect(settings(&prefix)).await.expect("rabbitmq");
    let reached = Arc::new(Notify::new());
    let hanging = ChannelWorker {
        channel: "email".into(),
        sender: Arc::new(HangingSender {
            inner: RecordingSender::new(store.clone()),
            reached: Arc::clone(&reached),
        }),
    };
    let crashed_worker = start_worker(&first, &queue, Arc::new(hanging))
        .await
        .expect("worker");
    let sent = job(1, "order_confirmation");
    RabbitJobQueue::new(first.clone())
        .enqueue(sent.clone(), Duration::ZERO)
        .await
        .expect("enqueue");
    tokio::time::timeout(Duration::from_secs(20), reached.notified())
        .await
        .expect("the worker took the message");
    // The crash: the process dies with the message taken and not acknowledged.
    crashed_worker.abort();
    first.close().await;

    let second = Rabbit::connect(settings(&prefix)).await.expect("rabbitmq");
    let redelivered = Arc::new(Mutex::new(Vec::new()));
    let watching = Watching {
        inner: ChannelWorker {
            channel: "email".into(),
            sender: Arc::new(RecordingSender::new(store.clone())),
        },
        redelivered: Arc::clone(&redelivered),
    };
    let worker = start_worker(&second, &queue, Arc::new(watching))
        .await
        .expect("worker");
    eventually("the redelivery", async || {
        (!redelivered.lock().expect("lock").is_empty()).then_some(())
    })
    .await;
    eventually("the queue to drain", async || {
        (queue_depth(&second, &queue).await.expect("depth") == 0).then_some(())
    })
    .await;
    assert_eq!(
        *redelivered.lock().expect("lock"),
        [true],
        "RabbitMQ redelivered it once"
    );
    assert_eq!(
        recorded(&store, 1).await,
        [sent.dedup_key("email")],
        "sent once in effect"
    );
    worker.abort();
    second.delete_topology().await.expect("teardown");
    second.close().await;
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_ends_in_the_dead_letter_queue_and_the_queue_keeps_flowing() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let prefix = unique_prefix();
    let rabbit = Rabbit::connect(settings(&prefix)).await.expect("rabbitmq");
    let queue = Names::channel_queue_of(&prefix, "email");
    let attempts = Arc::new(AtomicU32::new(0));
    struct Counting {
        inner: ChannelWorker,
        attempts: Arc<AtomicU32>,
    }
    #[async_trait]
    impl Handler for Counting {
        async fn handle(&self, payload: &[u8], redelivered: bool) -> Result<(), WorkflowError> {
            if payload.starts_with(b"poison") {
                self.attempts.fetch_add(1, Ordering::SeqCst);
            }
            self.inner.handle(payload, redelivered).await
        }
    }
    let worker = Counting {
        inner: ChannelWorker {
            channel: "email".into(),
            sender: Arc::new(RecordingSender::new(store.clone())),
        },
        attempts: Arc::clone(&attempts),
    };
    let worker = start_worker(&rabbit, &queue, Arc::new(worker))
        .await
        .expect("worker");
    rabbit
        .publish("", &queue, b"poison: not a job", Default::default())
        .await
        .expect("publish");
    let dead_letters = Names::dead_letter_queue(&queue);
    eventually("the dead-letter queue", async || {
        (queue_depth(&rabbit, &dead_letters).await.expect("depth") == 1).then_some(())
    })
    .await;
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "tried as often as configured"
    );

    let good = job(2, "payment_success");
    RabbitJobQueue::new(rabbit.clone())
        .enqueue(good.clone(), Duration::ZERO)
        .await
        .expect("enqueue");
    let keys = eventually("the next job", async || {
        let keys = recorded(&store, 2).await;
        (!keys.is_empty()).then_some(keys)
    })
    .await;
    assert_eq!(keys, [good.dedup_key("email")]);
    assert_eq!(queue_depth(&rabbit, &dead_letters).await.expect("depth"), 1);
    worker.abort();
    rabbit.delete_topology().await.expect("teardown");
    rabbit.close().await;
    database.drop_database().await;
}

/// Fails the first `failures` sends, then sends for real.
struct Flaky {
    failures: u32,
    calls: AtomicU32,
    inner: RecordingSender,
}

#[async_trait]
impl Sender for Flaky {
    async fn send(&self, channel: &str, job: &Job) -> Result<(), WorkflowError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
            return Err(WorkflowError::Failed("the SMS gateway is down".into()));
        }
        self.inner.send(channel, job).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_send_is_retried_with_backoff_and_a_delayed_job_waits() {
    let database = TestDatabase::create().await;
    let store = store(&database).await;
    let prefix = unique_prefix();
    let rabbit = Rabbit::connect(settings(&prefix)).await.expect("rabbitmq");
    let queue = Names::channel_queue_of(&prefix, "email");
    let flaky = Arc::new(Flaky {
        failures: 2,
        calls: AtomicU32::new(0),
        inner: RecordingSender::new(store.clone()),
    });
    let worker = ChannelWorker {
        channel: "email".into(),
        sender: Arc::clone(&flaky) as Arc<dyn Sender>,
    };
    let worker = start_worker(&rabbit, &queue, Arc::new(worker))
        .await
        .expect("worker");
    let jobs = RabbitJobQueue::new(rabbit.clone());
    let retried = job(3, "shipping_label");
    jobs.enqueue(retried.clone(), Duration::ZERO)
        .await
        .expect("enqueue");
    eventually("the retried job", async || {
        (!recorded(&store, 3).await.is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        flaky.calls.load(Ordering::SeqCst),
        3,
        "two failures, then the send"
    );
    let dead_letters = Names::dead_letter_queue(&queue);
    assert_eq!(queue_depth(&rabbit, &dead_letters).await.expect("depth"), 0);

    let later = job(4, "review_request");
    jobs.enqueue(later.clone(), Duration::from_millis(1_500))
        .await
        .expect("enqueue");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        recorded(&store, 4).await.is_empty(),
        "not sent before its delay"
    );
    eventually("the delayed job", async || {
        (!recorded(&store, 4).await.is_empty()).then_some(())
    })
    .await;
    assert_eq!(recorded(&store, 4).await, [later.dedup_key("email")]);
    worker.abort();
    rabbit.delete_topology().await.expect("teardown");
    rabbit.close().await;
    database.drop_database().await;
}
