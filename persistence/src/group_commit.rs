//! Group commit: writes from many actors, one transaction per batch.
//!
//! One committer task owns the ledger's write path. Submissions queue in a bounded channel;
//! the task takes whatever is waiting (up to `batch_size_max` writes, waiting at most
//! `batch_delay` for more), commits it in one transaction, and tells every submitter.
//! While a batch commits, the next one gathers, so under load batches grow by themselves
//! and the cost of a commit (an fsync, a round trip) is shared by every order in it. The
//! moment a batch ends, what gathered goes to the database, and only then are the ended
//! batch's writers told: the database never waits for the answers to go out, and the work
//! they wake (actors, responses, the next requests) runs while it writes.
//!
//! Batches commit strictly one after another. That is what makes [`GroupCommitter::barrier`]
//! mean something: when a barrier's turn comes, every earlier write has finished, one way or
//! the other, so reading the store then sees all of them.
//! It is also the faster way, measured on PostgreSQL (issue 14, `loadtests/cost.sh postgres
//! 10 64`, alternated runs): two committers taking turns gave 11.8-12.2K orders/s against
//! 19.5-19.6K with one; with the hot product's inventory row left out of the batches, so
//! that they shared no row, still 13.8-14.7K against 18.1-18.2K. Half-size batches pay the
//! database's cost per statement and per commit twice as often (its CPU per order rose
//! from 26-28 to 42-44 µs) and the commits got no shorter; with the row in, the second
//! batch also waits on the first's lock until that one has flushed.
//! Measured again as a pipeline (a later session, a machine with a third of its CPU idle
//! at 64 connections and a WAL sync of ~550 µs under load, `cost.sh postgres 8 64`,
//! alternated): a second batch handed to a second connection while the first commits,
//! once N writes had gathered, with the statement's inserts ordered ahead of its inventory
//! update so that they ran during the first one's WAL sync: 12.6-16.4K orders/s (N = 4, 12,
//! 24) against 18.6-19.0K one after another, PostgreSQL's CPU per order 33-47 µs against
//! 21-22, commits 2.3-3.1 ms against 1.6. Overlapping transactions cost the server more
//! than the sync they hide.
//!
//! Failure stays bounded: a full queue refuses at once, a submission that waited past its
//! deadline is refused without being written, and a commit that takes longer than
//! `commit_timeout` is answered `Unknown` (the transaction keeps running; the next batch
//! starts only when it ends, so nothing overtakes it, or after `abandon_after`). A barrier
//! gathered into that same batch is answered only when the transaction ends too: a reader
//! behind it must see what the transaction did.
//!
//! A clustered node's writes carry shard leases (`shard_leases.rs`). One stale lease makes
//! the store refuse the whole transaction; the committer then reads the current leases,
//! tells the writers holding stale ones `NotWritten` (true: nothing was written), reports
//! those leases lost, and commits the others again. So a shard that moved costs its own
//! writers their batch, never the other shards' writers.

use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::FutureExt;

use tokio::sync::mpsc::{self, error::TryRecvError, error::TrySendError};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::StoreError;
use crate::ledger::OrderLedger;
use crate::shard_leases::ShardLease;
use crate::write::WriteOp;

#[derive(Clone, Debug)]
pub struct GroupCommitSettings {
    /// Writes in one transaction at most. Large enough that a 10K orders/s peak fits in a
    /// handful of commits per second, small enough that one batch stays well under a second.
    pub batch_size_max: usize,
    /// How long a batch that is not full waits for more writes, when it starts a busy spell
    /// (what queued while the batch before committed goes at once). Zero: take what is there.
    /// Under a millisecond (tokio's timer tick) it is not slept: the committer yields to
    /// the tasks that are ready and takes what they submit, while that brings more.
    /// The right wait depends on the store: [`GroupCommitSettings::POSTGRES_BATCH_DELAY`],
    /// [`GroupCommitSettings::SQLITE_BATCH_DELAY`].
    pub batch_delay: Duration,
    /// Submissions that may wait for the committer; past this, refused at once.
    pub queue_capacity: usize,
    /// How long a submitter waits for its commit before it is told `Unknown`.
    pub commit_timeout: Duration,
    /// How long the committer keeps waiting for a transaction whose submitters were told
    /// `Unknown` before it drops the connection and moves on. A database that vanished
    /// (no reset, no answer) would otherwise stall the committer for TCP's own timeouts.
    /// The server aborts what it did not commit (`idle_in_transaction_session_timeout`).
    pub abandon_after: Duration,
}

impl GroupCommitSettings {
    /// PostgreSQL: none. A commit is a round trip to another process, and the next batch
    /// gathers by itself while it runs; waiting after it only leaves the server idle. On
    /// 2 cores under wrk (issue 14), 500 µs -> 0 took Buy Now from 11.1K to 12.8K orders/s
    /// at 64 connections (the idle time between commits fell from 1.58 ms to 0.11 ms), and
    /// from 16.8-17.9K to 18.5-21.6K at 256, with a lower p99.
    pub const POSTGRES_BATCH_DELAY: Duration = Duration::ZERO;
    /// SQLite: 500 µs, that is, while the ready tasks bring more (see `batch_delay`). Each
    /// commit is an fsync and WAL growth in this process, and commits run on SQLite's own
    /// thread while the runtime answers and takes orders: a batch that takes what the
    /// runtime is about to submit commits fewer, larger batches than no wait, and never
    /// leaves the writer idle on a timer. Issue 14, `loadtests/cost.sh embedded 8 64`
    /// alternating: a timed 500 µs wait (1-2 ms in practice, the timer's tick) left the
    /// writer idle 1.7-1.9 ms between commits, 14.1-18.7K orders/s; no wait 20.9-24.0K
    /// (p99 13.4-16.4 ms, 62.7 once); yielding 22.2-26.2K (p99 12.2-12.7 ms).
    pub const SQLITE_BATCH_DELAY: Duration = Duration::from_micros(500);
}

impl Default for GroupCommitSettings {
    fn default() -> Self {
        Self {
            batch_size_max: 4_096,
            batch_delay: Self::SQLITE_BATCH_DELAY,
            queue_capacity: 4_096,
            commit_timeout: Duration::from_secs(2),
            abandon_after: Duration::from_secs(10),
        }
    }
}

/// How one submission ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed,
    /// Nothing was written: the queue was full or the deadline passed first.
    NotWritten(Arc<str>),
    /// The commit failed or timed out; it may or may not have happened.
    Unknown(Arc<str>),
}

impl CommitOutcome {
    pub fn is_committed(&self) -> bool {
        *self == CommitOutcome::Committed
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the committer has stopped")]
    Stopped,
}

type OnDone = Box<dyn FnOnce(CommitOutcome) + Send>;

struct Submission {
    ops: Vec<WriteOp>,
    /// `None` for barriers, which never expire.
    deadline: Option<Instant>,
    on_done: OnDone,
}

/// A handle to the committer task. Cheap to clone; the task ends (after committing what
/// is queued) when every handle is dropped.
#[derive(Clone)]
pub struct GroupCommitter {
    queue: mpsc::Sender<Submission>,
    settings: Arc<GroupCommitSettings>,
}

impl GroupCommitter {
    pub fn start(
        ledger: Arc<dyn OrderLedger>,
        settings: GroupCommitSettings,
    ) -> (Self, JoinHandle<()>) {
        Self::start_fenced(ledger, settings, None)
    }

    /// A committer for a clustered node: every shard lease the store refuses (another node
    /// took the shard) is sent to `lost_leases`, so the node drops that shard.
    pub fn start_fenced(
        ledger: Arc<dyn OrderLedger>,
        settings: GroupCommitSettings,
        lost_leases: Option<mpsc::UnboundedSender<ShardLease>>,
    ) -> (Self, JoinHandle<()>) {
        assert!(settings.batch_size_max > 0);
        assert!(settings.queue_capacity > 0);
        let (queue, submissions) = mpsc::channel(settings.queue_capacity);
        let settings = Arc::new(settings);
        let task = tokio::spawn(run(ledger, submissions, Arc::clone(&settings), lost_leases));
        (Self { queue, settings }, task)
    }

    /// Queues `ops` for the next batch; `on_done` runs exactly once with the outcome, on the
    /// committer's task (keep it short: send a message, answer a channel).
    pub fn submit(&self, ops: Vec<WriteOp>, on_done: impl FnOnce(CommitOutcome) + Send + 'static) {
        let submission = Submission {
            ops,
            deadline: Some(Instant::now() + self.settings.commit_timeout),
            on_done: Box::new(on_done),
        };
        if let Err(error) = self.queue.try_send(submission) {
            let (submission, reason) = match error {
                TrySendError::Full(submission) => (submission, "the commit queue is full"),
                TrySendError::Closed(submission) => (submission, "the committer has stopped"),
            };
            (submission.on_done)(CommitOutcome::NotWritten(reason.into()));
        }
    }

    /// Waits until every write submitted before this call has finished. Used before
    /// reading state back from the store, so the read cannot miss a write still in flight.
    pub async fn barrier(&self) -> Result<(), SubmitError> {
        let (done, finished) = tokio::sync::oneshot::channel();
        let submission = Submission {
            ops: Vec::new(),
            deadline: None,
            on_done: Box::new(move |_| {
                let _ = done.send(());
            }),
        };
        self.queue
            .send(submission)
            .await
            .map_err(|_| SubmitError::Stopped)?;
        finished.await.map_err(|_| SubmitError::Stopped)
    }

    /// Submissions waiting right now (for metrics and tests).
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }
}

async fn run(
    ledger: Arc<dyn OrderLedger>,
    mut submissions: mpsc::Receiver<Submission>,
    settings: Arc<GroupCommitSettings>,
    lost_leases: Option<mpsc::UnboundedSender<ShardLease>>,
) {
    let mut batch: Vec<Submission> = Vec::new();
    // What the last batch's writers and barriers are told: once the next batch is in the
    // database's hands, or before the committer waits for work.
    let mut answers = Answers::default();
    // False only until the first batch: a committer that was idle gathers as configured.
    let mut committed = false;
    loop {
        // What queued while the last batch committed goes next, at once, without the
        // gather's wait: the database would idle while the answers go out and more comes.
        if committed {
            take_waiting(&mut submissions, &mut batch, settings.batch_size_max);
        }
        if batch.is_empty() {
            answers.tell();
            let Some(first) = submissions.recv().await else {
                break;
            };
            batch.push(first);
            gather(&mut submissions, &mut batch, &settings).await;
        }
        commit(
            &ledger,
            &mut batch,
            &settings,
            lost_leases.as_ref(),
            &mut answers,
        )
        .await;
        assert!(batch.is_empty());
        committed = true;
        ledger.between_batches().await;
    }
    answers.tell();
    tracing::debug!("group committer stopped: every handle dropped, queue drained");
}

/// Adds what is queued right now to `batch`, up to the size bound, without waiting.
fn take_waiting(
    submissions: &mut mpsc::Receiver<Submission>,
    batch: &mut Vec<Submission>,
    batch_size_max: usize,
) {
    let mut ops: usize = batch.iter().map(|s| s.ops.len()).sum();
    while ops < batch_size_max {
        let Ok(submission) = submissions.try_recv() else {
            return;
        };
        ops += submission.ops.len();
        batch.push(submission);
    }
}

/// tokio's timer counts whole milliseconds: a shorter timeout sleeps until the next tick,
/// 1-2 ms in practice (issue 14: a 500 µs gather left SQLite's writer idle 1.7-1.9 ms
/// between commits).
const TIMER_TICK: Duration = Duration::from_millis(1);

/// Adds whatever is waiting to `batch`, up to the size bound, waiting at most the delay
/// (a delay under [`TIMER_TICK`]: as long as yielding to the ready tasks brings more).
async fn gather(
    submissions: &mut mpsc::Receiver<Submission>,
    batch: &mut Vec<Submission>,
    settings: &GroupCommitSettings,
) {
    let mut ops: usize = batch.iter().map(|s| s.ops.len()).sum();
    let gather_until = Instant::now() + settings.batch_delay;
    while ops < settings.batch_size_max {
        let next = match submissions.try_recv() {
            Ok(submission) => submission,
            Err(TryRecvError::Disconnected) => return,
            Err(TryRecvError::Empty) => {
                if settings.batch_delay.is_zero() || Instant::now() >= gather_until {
                    return;
                }
                if settings.batch_delay < TIMER_TICK {
                    // Shorter than the timer can wait: let the tasks that are ready run
                    // first (the actors about to submit, the sockets just read), then
                    // take what they gave; stop at the first round that gives nothing.
                    tokio::task::yield_now().await;
                    match submissions.try_recv() {
                        Ok(submission) => {
                            ops += submission.ops.len();
                            batch.push(submission);
                            continue;
                        }
                        Err(_) => return,
                    }
                }
                match tokio::time::timeout_at(gather_until, submissions.recv()).await {
                    Ok(Some(submission)) => submission,
                    Ok(None) | Err(_) => return,
                }
            }
        };
        ops += next.ops.len();
        batch.push(next);
    }
}

/// Commits `batch`. Its writers and barriers are added to `answers` (told later, by the
/// caller or the next batch); the earlier batch's, which `answers` holds on entry, are told
/// as soon as this batch is handed to the database (or at once if it writes nothing).
async fn commit(
    ledger: &Arc<dyn OrderLedger>,
    batch: &mut Vec<Submission>,
    settings: &GroupCommitSettings,
    lost_leases: Option<&mpsc::UnboundedSender<ShardLease>>,
    answers: &mut Answers,
) {
    let now = Instant::now();
    let mut ops = Vec::new();
    let mut writers = Vec::with_capacity(batch.len());
    // Barriers gathered with writes are told only once the transaction is over: a writer
    // may be told `Unknown` at the commit timeout while its transaction still runs, and a
    // barrier that passed then would let a reader miss a write that lands later.
    let mut barriers = Vec::new();
    for mut submission in batch.drain(..) {
        if submission.deadline.is_none() {
            assert!(submission.ops.is_empty(), "barriers carry no writes");
            barriers.push(submission.on_done);
            continue;
        }
        if submission.deadline.is_some_and(|deadline| deadline <= now) {
            (submission.on_done)(CommitOutcome::NotWritten(
                "the commit queue was too slow".into(),
            ));
            continue;
        }
        writers.push(Writer {
            ops: submission.ops.len(),
            on_done: submission.on_done,
        });
        ops.append(&mut submission.ops);
    }
    if !writers.is_empty() {
        metrics::histogram!(BATCH_SIZE).record(writers.len() as f64);
    }
    if ops.is_empty() {
        answers.tell();
    }
    for attempt in 1.. {
        if ops.is_empty() {
            break;
        }
        let started = Instant::now();
        let (ended, unfinished) = transaction(ledger, ops, settings, answers).await;
        metrics::histogram!(BATCH_DURATION).record(started.elapsed().as_secs_f64());
        match ended {
            Transaction::Ended(outcome) => {
                if let Some(unfinished) = unfinished {
                    // They have waited the whole commit timeout already: told now.
                    for writer in writers.drain(..) {
                        (writer.on_done)(outcome.clone());
                    }
                    unfinished.wait(settings).await;
                }
                for writer in writers.drain(..) {
                    answers.add(writer.on_done, outcome.clone());
                }
                break;
            }
            Transaction::Fenced(reason, refused) if attempt < FENCED_ATTEMPTS_MAX => {
                (ops, writers) =
                    drop_stale_writers(ledger, refused, writers, &reason, lost_leases).await;
            }
            Transaction::HoldExpired(reason, refused) if attempt < FENCED_ATTEMPTS_MAX => {
                (ops, writers) = drop_holding_writers(refused, writers, &reason);
            }
            Transaction::HoldExpired(reason, _) => {
                for writer in writers.drain(..) {
                    (writer.on_done)(CommitOutcome::NotWritten(Arc::clone(&reason)));
                }
                break;
            }
            Transaction::Fenced(reason, _) => {
                for writer in writers.drain(..) {
                    (writer.on_done)(CommitOutcome::NotWritten(Arc::clone(&reason)));
                }
                break;
            }
        }
    }
    // Only barriers, expired writes or empty ones are left, or every writer was answered:
    // everything submitted before the barriers has finished.
    for writer in writers {
        answers.add(writer.on_done, CommitOutcome::Committed);
    }
    for on_done in barriers {
        answers.add(on_done, CommitOutcome::Committed);
    }
}

/// What the writers and barriers of a finished batch are told, in the order they came.
/// Kept until the next batch is in the database's hands: telling them wakes the actors
/// and the requests behind them, work that then runs while the database writes.
#[derive(Default)]
struct Answers {
    told: Vec<(OnDone, CommitOutcome)>,
}

impl Answers {
    fn add(&mut self, on_done: OnDone, outcome: CommitOutcome) {
        self.told.push((on_done, outcome));
    }

    fn tell(&mut self) {
        for (on_done, outcome) in self.told.drain(..) {
            on_done(outcome);
        }
    }
}

/// Submissions per batch (a Prometheus histogram; the gateway exports it).
pub const BATCH_SIZE: &str = "flashcart_group_commit_batch_size";
/// Seconds one batch's transaction took, commit included.
pub const BATCH_DURATION: &str = "flashcart_group_commit_duration_seconds";

/// A fenced batch is tried again without its stale writers, at most this many times in
/// all (each retry drops at least one writer, unless the leases moved again meanwhile).
const FENCED_ATTEMPTS_MAX: usize = 3;

/// One submission's share of a batch: its writes are `ops` consecutive ones.
struct Writer {
    ops: usize,
    on_done: OnDone,
}

enum Transaction {
    /// What every writer of the batch is told.
    Ended(CommitOutcome),
    /// The store refused a lease of the batch and wrote nothing; the writes come back, so
    /// the writers whose leases are still current can go again.
    Fenced(Arc<str>, Vec<WriteOp>),
    /// A hold the batch carried had ended (`WriteOp::HoldUntil`); nothing was written.
    HoldExpired(Arc<str>, Vec<WriteOp>),
}

/// What a transaction gives back: its result, with its writes (a fenced batch goes again
/// without some of them), or the panic that ended it.
type Written = std::thread::Result<(Result<(), StoreError>, Vec<WriteOp>)>;

/// Runs one transaction, bounded by the commit timeout; if it is still running then, it is
/// returned as well, to be waited for once its writers are told. `earlier` is told as soon
/// as the transaction is in the database's hands.
async fn transaction(
    ledger: &Arc<dyn OrderLedger>,
    ops: Vec<WriteOp>,
    settings: &GroupCommitSettings,
    earlier: &mut Answers,
) -> (Transaction, Option<Unfinished>) {
    let started = Instant::now();
    let ledger = Arc::clone(ledger);
    let write_count = ops.len();
    let mut transaction: Pin<Box<dyn Future<Output = Written> + Send>> = Box::pin(
        AssertUnwindSafe(async move {
            let result = ledger.commit(&ops).await;
            (result, ops)
        })
        .catch_unwind(),
    );
    // Polled once here rather than spawned: the batch is laid out and handed to the
    // database before the earlier batch's answers go out, and those then run while it
    // writes. A spawned task would queue behind the tasks those answers wake.
    let first_poll = std::future::poll_fn(|context| {
        Poll::Ready(match transaction.as_mut().poll(context) {
            Poll::Ready(written) => Some(written),
            Poll::Pending => None,
        })
    })
    .await;
    earlier.tell();
    let written = match first_poll {
        Some(written) => Some(written),
        None => tokio::time::timeout_at(started + settings.commit_timeout, &mut transaction)
            .await
            .ok(),
    };
    let timed_out = written.is_none();
    let ended = match written {
        Some(Ok((Ok(()), _))) => Transaction::Ended(CommitOutcome::Committed),
        Some(Ok((Err(StoreError::Fenced(reason)), ops))) => {
            tracing::info!(%reason, write_count, "batch fenced");
            Transaction::Fenced(format!("fenced: {reason}").into(), ops)
        }
        Some(Ok((Err(StoreError::HoldExpired(reason)), ops))) => {
            tracing::info!(%reason, write_count, "batch refused: a hold had ended");
            Transaction::HoldExpired(format!("hold expired: {reason}").into(), ops)
        }
        Some(Ok((Err(error), _))) => {
            tracing::warn!(%error, write_count, "batch commit failed");
            Transaction::Ended(CommitOutcome::Unknown(error.to_string().into()))
        }
        Some(Err(_panic)) => {
            tracing::error!(write_count, "batch commit panicked");
            Transaction::Ended(CommitOutcome::Unknown("the commit panicked".into()))
        }
        None => {
            tracing::warn!(
                write_count,
                timeout_ms = settings.commit_timeout.as_millis() as u64,
                "batch commit timed out"
            );
            Transaction::Ended(CommitOutcome::Unknown(
                "the database did not answer in time".into(),
            ))
        }
    };
    tracing::trace!(
        write_count,
        elapsed_us = started.elapsed().as_micros() as u64,
        "batch done"
    );
    // Still running: it goes on in a task of its own, which the committer waits for.
    let unfinished = timed_out.then(|| Unfinished {
        transaction: tokio::spawn(transaction),
        write_count,
    });
    (ended, unfinished)
}

/// A transaction still running after its writers were told `Unknown`.
struct Unfinished {
    transaction: JoinHandle<Written>,
    write_count: usize,
}

impl Unfinished {
    /// Nothing may overtake a transaction whose outcome is unknown: a barrier behind it
    /// must see its result. Waits for it, up to the abandon bound.
    async fn wait(mut self, settings: &GroupCommitSettings) {
        if tokio::time::timeout(settings.abandon_after, &mut self.transaction)
            .await
            .is_err()
        {
            tracing::error!(
                write_count = self.write_count,
                "abandoning a transaction that never finished"
            );
            self.transaction.abort();
            let _ = self.transaction.await;
        }
    }
}

/// After a fenced batch (nothing was written): every writer holding a lease that is no
/// longer current is told `NotWritten`, and its lease is reported lost; the others are
/// returned, with their writes, to go again. If the leases cannot be read, every writer is
/// told `NotWritten` (true: the fenced transaction wrote nothing).
async fn drop_stale_writers(
    ledger: &Arc<dyn OrderLedger>,
    mut refused: Vec<WriteOp>,
    writers: Vec<Writer>,
    reason: &Arc<str>,
    lost_leases: Option<&mpsc::UnboundedSender<ShardLease>>,
) -> (Vec<WriteOp>, Vec<Writer>) {
    let current: HashSet<ShardLease> = match ledger.current_leases().await {
        Ok(leases) => leases.into_iter().collect(),
        Err(error) => {
            tracing::warn!(%error, "cannot read the shard leases after a fenced batch");
            for writer in writers {
                (writer.on_done)(CommitOutcome::NotWritten(Arc::clone(reason)));
            }
            return (Vec::new(), Vec::new());
        }
    };
    let mut kept_ops = Vec::with_capacity(refused.len());
    let mut kept = Vec::with_capacity(writers.len());
    let mut rest = refused.drain(..);
    for writer in writers {
        let own: Vec<WriteOp> = rest.by_ref().take(writer.ops).collect();
        let stale: Vec<&ShardLease> = own
            .iter()
            .filter_map(|op| match op {
                WriteOp::Fence(lease) if !current.contains(lease) => Some(lease),
                _ => None,
            })
            .collect();
        if stale.is_empty() {
            kept_ops.extend(own);
            kept.push(writer);
            continue;
        }
        for lease in &stale {
            if let Some(lost) = lost_leases {
                let _ = lost.send((*lease).clone());
            }
        }
        (writer.on_done)(CommitOutcome::NotWritten(Arc::clone(reason)));
    }
    (kept_ops, kept)
}

/// After a batch refused for an ended hold (nothing was written): every writer that
/// carries a hold deadline is told `NotWritten` (only they can have caused it; their
/// holder has given up on them), the others go again.
fn drop_holding_writers(
    mut refused: Vec<WriteOp>,
    writers: Vec<Writer>,
    reason: &Arc<str>,
) -> (Vec<WriteOp>, Vec<Writer>) {
    let mut kept_ops = Vec::with_capacity(refused.len());
    let mut kept = Vec::with_capacity(writers.len());
    let mut rest = refused.drain(..);
    for writer in writers {
        let own: Vec<WriteOp> = rest.by_ref().take(writer.ops).collect();
        if own.iter().any(|op| matches!(op, WriteOp::HoldUntil(_))) {
            (writer.on_done)(CommitOutcome::NotWritten(Arc::clone(reason)));
        } else {
            kept_ops.extend(own);
            kept.push(writer);
        }
    }
    (kept_ops, kept)
}

impl GroupCommitter {
    /// Submits `ops` and waits for their batch. For writers that are not actors (the
    /// workflow): `Err` when the outcome is not a commit, to be retried (their writes are
    /// idempotent).
    pub async fn write(&self, ops: Vec<WriteOp>) -> Result<(), crate::StoreError> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        self.submit(ops, move |outcome| {
            let _ = done.send(outcome);
        });
        match outcome.await {
            Ok(CommitOutcome::Committed) => Ok(()),
            Ok(CommitOutcome::NotWritten(reason) | CommitOutcome::Unknown(reason)) => {
                Err(crate::StoreError::Unavailable(reason.to_string()))
            }
            Err(_) => Err(crate::StoreError::Unavailable(
                "the committer stopped".into(),
            )),
        }
    }
}
