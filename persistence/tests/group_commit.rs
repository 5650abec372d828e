//! The group committer against a database slower than its commit timeout: writers are
//! told the outcome is unknown at the timeout, but a barrier gathered into the same batch
//! passes only once the transaction is over, so a reader behind it sees what it wrote.
//! How a batch gathers: a wait shorter than the timer's tick takes what the tasks that
//! are ready submit, without sleeping, and what queued while a batch committed goes next
//! at once, before that batch's writers are told. A commit that panics is an unknown
//! outcome, and the committer goes on.

// Only its order helpers are used here; its contracts run in the backends' test files.
#[allow(dead_code, unused_imports)]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{order, place, put_product};
use engine::order::Order;
use engine::{OrderId, ProductId};
use persistence::{
    CommitOutcome, Database, GroupCommitSettings, GroupCommitter, IdHighWater, InventoryLevel,
    OrderLedger, OrderLookup, ProductState, StoreError, WriteOp,
};
use uuid::Uuid;

/// A ledger whose commits take `delay` longer than the database's own, and which notes
/// how many writes each batch carried, in a log the test can add its own lines to.
struct SlowLedger {
    inner: Arc<Database>,
    delay: Duration,
    batches: Mutex<Vec<usize>>,
    log: Mutex<Vec<String>>,
    /// The next commit panics before it writes anything.
    panic_next: AtomicBool,
}

impl SlowLedger {
    fn new(inner: Arc<Database>, delay: Duration) -> Self {
        Self {
            inner,
            delay,
            batches: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            panic_next: AtomicBool::new(false),
        }
    }

    fn batches(&self) -> Vec<usize> {
        self.batches.lock().expect("not poisoned").clone()
    }

    fn note(&self, line: String) {
        self.log.lock().expect("not poisoned").push(line);
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().expect("not poisoned").clone()
    }
}

#[async_trait]
impl OrderLedger for SlowLedger {
    async fn commit(&self, ops: &[WriteOp]) -> Result<(), StoreError> {
        self.batches.lock().expect("not poisoned").push(ops.len());
        self.note(format!("commit of {} writes begins", ops.len()));
        if self.panic_next.swap(false, Ordering::SeqCst) {
            panic!("a bug in the store's code (this test's)");
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.inner.commit(ops).await
    }

    async fn load_product(
        &self,
        id: ProductId,
        lines_since_ms: u64,
    ) -> Result<Option<ProductState>, StoreError> {
        self.inner.load_product(id, lines_since_ms).await
    }

    async fn pending_orders(&self) -> Result<Vec<Order>, StoreError> {
        self.inner.pending_orders().await
    }

    async fn inventory_levels(&self) -> Result<Vec<InventoryLevel>, StoreError> {
        self.inner.inventory_levels().await
    }

    async fn id_high_water(&self) -> Result<IdHighWater, StoreError> {
        self.inner.id_high_water().await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        OrderLedger::ping(&*self.inner).await
    }
}

/// A fresh SQLite file holding product 1 with `stock` units (the directory lives as long
/// as the returned guard).
async fn database_with_product_1(stock: u64) -> (tempfile::TempDir, Arc<Database>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = Arc::new(Database::open(dir.path()).await.expect("open"));
    database
        .commit(&[put_product(1, stock)])
        .await
        .expect("product");
    (dir, database)
}

#[tokio::test]
async fn a_barrier_waits_for_a_transaction_whose_writers_were_told_unknown() {
    let (_dir, database) = database_with_product_1(10).await;
    let slow = Arc::new(SlowLedger::new(
        Arc::clone(&database),
        Duration::from_millis(400),
    ));
    let settings = GroupCommitSettings {
        batch_size_max: 64,
        // Long enough for the barrier to join the write's batch.
        batch_delay: Duration::from_millis(20),
        queue_capacity: 64,
        commit_timeout: Duration::from_millis(100),
        abandon_after: Duration::from_secs(10),
    };
    let (committer, _task) = GroupCommitter::start(slow, settings);
    let (told, outcome) = tokio::sync::oneshot::channel();
    committer.submit(vec![place(order(1, 1, 1, 1, None))], move |outcome| {
        let _ = told.send(outcome);
    });
    let barrier = committer.barrier();
    let (outcome, passed) = tokio::join!(outcome, barrier);
    assert!(
        matches!(outcome, Ok(CommitOutcome::Unknown(_))),
        "the writer could not wait: {outcome:?}"
    );
    passed.expect("the barrier passes");
    // Behind the barrier, the slow transaction is over: its order is there.
    let stored = database
        .order(OrderId(Uuid::from_u128(1)))
        .await
        .expect("read");
    assert!(
        stored.is_some(),
        "a reader behind the barrier sees the write"
    );
}

/// A committer with the given gather wait, on a fresh database holding product 1, and the
/// ledger that notes its batches.
async fn committer_on_a_product(
    batch_delay: Duration,
) -> (tempfile::TempDir, Arc<SlowLedger>, GroupCommitter) {
    let (dir, database) = database_with_product_1(100).await;
    let ledger = Arc::new(SlowLedger::new(database, Duration::ZERO));
    let settings = GroupCommitSettings {
        batch_delay,
        ..GroupCommitSettings::default()
    };
    let (committer, _task) = GroupCommitter::start(Arc::clone(&ledger) as _, settings);
    (dir, ledger, committer)
}

/// Ten writers on one thread: one submits, nine more are ready to run. Returns the writes
/// per batch the committer made of them.
async fn batches_of_ten_writers(batch_delay: Duration) -> Vec<usize> {
    let (_dir, ledger, committer) = committer_on_a_product(batch_delay).await;
    let mut outcomes = Vec::new();
    for n in 1..=10u128 {
        let (told, outcome) = tokio::sync::oneshot::channel();
        outcomes.push(outcome);
        let write = vec![place(order(n, n as u64, 1, 1, None))];
        if n == 1 {
            committer.submit(write, move |outcome| {
                let _ = told.send(outcome);
            });
        } else {
            // Spawned: runs only when this thread yields, after the committer took the
            // first write.
            let committer = committer.clone();
            tokio::spawn(async move {
                committer.submit(write, move |outcome| {
                    let _ = told.send(outcome);
                });
            });
        }
    }
    for outcome in outcomes {
        assert_eq!(outcome.await.expect("told"), CommitOutcome::Committed);
    }
    ledger.batches()
}

#[tokio::test]
async fn a_wait_shorter_than_a_timer_tick_takes_what_ready_writers_submit() {
    // 500 µs: the committer yields to the nine ready writers and commits all ten at once.
    let gathered = batches_of_ten_writers(Duration::from_micros(500)).await;
    assert_eq!(gathered, vec![10], "one batch of every write");
    // No wait: the first write goes alone, the other nine follow in the next batch.
    let alone = batches_of_ten_writers(Duration::ZERO).await;
    assert_eq!(alone.first(), Some(&1), "the first write alone: {alone:?}");
    assert_eq!(alone.iter().sum::<usize>(), 10);
}

#[tokio::test]
async fn a_wait_shorter_than_a_timer_tick_does_not_sleep_for_writers_not_ready() {
    let (_dir, ledger, committer) = committer_on_a_product(Duration::from_micros(500)).await;
    let (first_told, first) = tokio::sync::oneshot::channel();
    committer.submit(vec![place(order(1, 1, 1, 1, None))], move |outcome| {
        let _ = first_told.send(outcome);
    });
    // A writer that is still busy when the committer has yielded (it yields twice itself,
    // whichever order the runtime wakes yielded tasks in): a timed wait would have slept
    // long enough to take it, the committer does not.
    let (second_told, second) = tokio::sync::oneshot::channel();
    let late = committer.clone();
    tokio::spawn(async move {
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        late.submit(vec![place(order(2, 2, 1, 1, None))], move |outcome| {
            let _ = second_told.send(outcome);
        });
    });
    assert_eq!(first.await.expect("told"), CommitOutcome::Committed);
    assert_eq!(second.await.expect("told"), CommitOutcome::Committed);
    assert_eq!(ledger.batches(), vec![1, 1], "each write in its own batch");
}

/// A writer that notes in the ledger's log when it is told, and hands the outcome back.
fn submit_noting(
    committer: &GroupCommitter,
    ledger: &Arc<SlowLedger>,
    n: u128,
    name: &'static str,
) -> tokio::sync::oneshot::Receiver<CommitOutcome> {
    let (told, outcome) = tokio::sync::oneshot::channel();
    let log = Arc::clone(ledger);
    committer.submit(
        vec![place(order(n, n as u64, 1, 1, None))],
        move |outcome| {
            log.note(format!("{name} told"));
            let _ = told.send(outcome);
        },
    );
    outcome
}

#[tokio::test]
async fn what_queued_during_a_commit_goes_next_before_that_commits_writers_are_told() {
    let (_dir, database) = database_with_product_1(10).await;
    let ledger = Arc::new(SlowLedger::new(database, Duration::from_millis(200)));
    let settings = GroupCommitSettings {
        // A gather wait the second batch would sit out if it gathered again.
        batch_delay: Duration::from_millis(600),
        ..GroupCommitSettings::default()
    };
    let (committer, _task) = GroupCommitter::start(Arc::clone(&ledger) as _, settings);
    let first = submit_noting(&committer, &ledger, 1, "first");
    // The first batch forms after the gather wait (600 ms), then commits for 200 ms: the
    // second writer comes while it does.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(ledger.batches(), vec![1], "the first batch is committing");
    let queued_at = tokio::time::Instant::now();
    let second = submit_noting(&committer, &ledger, 2, "second");
    assert_eq!(first.await.expect("told"), CommitOutcome::Committed);
    assert_eq!(second.await.expect("told"), CommitOutcome::Committed);
    assert_eq!(
        ledger.log(),
        vec![
            "commit of 1 writes begins",
            "commit of 1 writes begins",
            "first told",
            "second told",
        ],
        "the second batch was handed over before the first one's writer was told"
    );
    // It waited for the first commit to end (~100 ms) and its own (~200 ms), not for a
    // gather wait (600 ms) besides.
    assert!(
        queued_at.elapsed() < Duration::from_millis(600),
        "the second batch gathered again: {:?}",
        queued_at.elapsed()
    );
}

#[tokio::test]
async fn a_commit_that_panics_is_an_unknown_outcome_and_the_committer_goes_on() {
    let (_dir, database) = database_with_product_1(10).await;
    let ledger = Arc::new(SlowLedger::new(Arc::clone(&database), Duration::ZERO));
    ledger.panic_next.store(true, Ordering::SeqCst);
    let (committer, _task) =
        GroupCommitter::start(Arc::clone(&ledger) as _, GroupCommitSettings::default());
    let outcome = submit_noting(&committer, &ledger, 1, "first")
        .await
        .expect("told");
    assert!(
        matches!(&outcome, CommitOutcome::Unknown(reason) if reason.contains("panicked")),
        "{outcome:?}"
    );
    let outcome = submit_noting(&committer, &ledger, 2, "second")
        .await
        .expect("told");
    assert_eq!(outcome, CommitOutcome::Committed);
    committer.barrier().await.expect("the committer still runs");
    let stored = database
        .order(OrderId(Uuid::from_u128(2)))
        .await
        .expect("read");
    assert!(stored.is_some(), "the write after the panic is stored");
    let stored = database
        .order(OrderId(Uuid::from_u128(1)))
        .await
        .expect("read");
    assert!(stored.is_none(), "the panicking commit wrote nothing");
}
