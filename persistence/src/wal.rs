//! SQLite's write-ahead log, kept short without stalling the one writer.
//!
//! Two hands share the work (the connection options in `database.rs` turn SQLite's own
//! automatic checkpoint off, since the commit that filled the WAL would do it inline):
//! - A background task copies the WAL into the database file ten times a second, with a
//!   PASSIVE checkpoint: it never waits for the writer, and runs beside it.
//! - The committer starts the WAL over, between two batches ([`Wal::restart_when_due`]).
//!   Under a steady stream of commits a passive checkpoint never catches the last frame,
//!   and SQLite writes the WAL from its start again only once one has: without this the
//!   file grew without end (770 MB after 15 s of Buy Now at 256 connections), and every
//!   commit extended it.
//!
//! A restart is a RESTART checkpoint: it copies what the background task has not yet,
//! fsyncs, and resets the WAL, all while Buy Now waits for the next batch. Issue 14: done
//! on a timer, once a second, it took the committer 3-29 ms each time (p50 13 ms in four
//! 8 s runs at 64 connections), since it copied up to a quarter second of frames. Now the
//! task says when it caught up, and the committer restarts at its next pause if the WAL
//! has grown past [`RESTART_FRAMES`]: a restart then took p50 8 ms, p90 15 ms, since it
//! still copied what the writer appended while that checkpoint ran. The task now catches
//! up again at once until a round copies little ([`catch_up`]): p50 1.6-3.3 ms, p90
//! 11.5-12.9 ms (what is left is its fsyncs). A timer stays as the backstop
//! ([`RESTART_AT_LEAST_EVERY`]) for a WAL the task never catches up with.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::sqlite::SqlitePool;

/// How often the background task checkpoints: each copies what a tenth of a second of
/// orders wrote, small enough never to wait, often enough to keep the WAL (and reads
/// through it) short. 250 ms let a writer committing back to back (no pause between
/// batches, issue 14) take the WAL past its 64 MiB limit before a tick saw it due for a
/// restart (69 MB in `the_wal_stays_bounded_under_a_stream_of_commits`; 40-46 MB at 100 ms).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// The WAL's length (in 4 KiB pages) past which the committer starts it over once the
/// background task has caught up: 32 MiB, about half a second of Buy Now at 15K orders/s
/// on this project's 2-core machine. Even right after a catch-up a restart costs the
/// committer milliseconds (its fsyncs): 128 MiB (fewer restarts, a longer WAL) was
/// measured too and did not lower the p99 of a 12 s run at 64 connections.
const RESTART_FRAMES: i64 = 8_192;

/// A restart right after a catch-up copies what the writer appended since, and fsyncs
/// the database file with it, in Buy Now's time: the background task catches up again
/// until a round copies at most this many frames (1 MiB, a few batches).
const CATCH_UP_FRAMES: i64 = 256;

/// Catch-up rounds in one tick at most: the WAL keeps growing while they run, and a
/// round that still copied much tells the committer anyway.
const CATCH_UP_ROUNDS_MAX: usize = 4;

/// If the background task has not caught up for this long, the committer restarts the
/// WAL anyway (copying what is left itself), so the file stays bounded.
const RESTART_AT_LEAST_EVERY: Duration = Duration::from_secs(2);

/// The same as the pool's busy timeout, as the pragma that puts it back on a connection.
/// A literal, checked against the constant at compile time: sqlx 0.9 takes only literal
/// SQL (a formatted string would need `AssertSqlSafe`).
const RESTORE_BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 5000";
const _: () = assert!(crate::database::SQLITE_BUSY_TIMEOUT.as_millis() == 5_000);

/// What the background checkpoints and the committer's restarts know of the WAL.
#[derive(Debug)]
pub(crate) struct Wal {
    /// Set by a checkpoint that copied every frame; taken by the committer's next pause.
    caught_up: AtomicBool,
    /// Frames in the WAL at the last checkpoint (0 right after a restart).
    frames: AtomicI64,
    /// When the committer last started the WAL over.
    restarted: Mutex<Instant>,
}

impl Wal {
    /// Starts the background checkpoints on `readers` (they end when the pool closes).
    pub(crate) fn start(readers: SqlitePool) -> Arc<Self> {
        let wal = Arc::new(Self {
            caught_up: AtomicBool::new(false),
            frames: AtomicI64::new(0),
            restarted: Mutex::new(Instant::now()),
        });
        tokio::spawn(checkpoint_now_and_then(readers, Arc::clone(&wal)));
        wal
    }

    /// Called by the committer between two batches, on the writer's connection (no write
    /// can be in flight: it is the only writer). Starts the WAL over when it is long and
    /// the background task just caught up, or when the backstop's time has come. Never
    /// waits: if a reader or a checkpoint is inside the WAL, it tries after the next batch.
    /// Waiting for readers instead (the pool's 5 s busy timeout) held Buy Now behind them:
    /// slices with a p99 of 828 ms.
    pub(crate) async fn restart_when_due(&self, writer: &SqlitePool) {
        let caught_up = self.caught_up.load(Ordering::Acquire)
            && self.frames.load(Ordering::Relaxed) >= RESTART_FRAMES;
        let overdue = self.since_restart() >= RESTART_AT_LEAST_EVERY;
        if !caught_up && !overdue {
            return;
        }
        self.caught_up.store(false, Ordering::Release);
        let started = Instant::now();
        let restarted = restart(writer).await;
        tracing::debug!(
            caught_up,
            restarted = restarted.as_ref().is_ok_and(|restarted| *restarted),
            elapsed_us = started.elapsed().as_micros() as u64,
            "WAL restart"
        );
        match restarted {
            Ok(true) => {
                self.frames.store(0, Ordering::Relaxed);
                *self
                    .restarted
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Instant::now();
            }
            // Busy: after the next batch (if overdue), or the next catch-up.
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, "WAL restart failed; a later batch will try again");
            }
        }
    }

    fn since_restart(&self) -> Duration {
        self.restarted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }
}

/// Checkpoints the WAL beside the writer, until the pool is closed (or the runtime ends).
async fn checkpoint_now_and_then(pool: SqlitePool, wal: Arc<Wal>) {
    let mut ticks = tokio::time::interval(CHECKPOINT_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !pool.is_closed() {
        ticks.tick().await;
        catch_up(&pool, &wal).await;
    }
}

/// Checkpoints until one copies all the WAL held when it began, then tells the committer
/// (`caught_up`). When the WAL is due for a restart, one such checkpoint is not enough:
/// the restart then copies what the writer appended while it ran (copying a tick's frames
/// takes milliseconds) and fsyncs the database file with it, while Buy Now waits. So the
/// task checkpoints again at once, each round copying what arrived during the one before,
/// until a round copies at most [`CATCH_UP_FRAMES`].
async fn catch_up(pool: &SqlitePool, wal: &Wal) {
    let mut copied_up_to = None;
    for round in 1..=CATCH_UP_ROUNDS_MAX {
        let Some((wal_frames, copied_frames)) = passive_checkpoint(pool).await else {
            return;
        };
        wal.frames.store(wal_frames, Ordering::Relaxed);
        if wal_frames == 0 || copied_frames < wal_frames {
            return;
        }
        // Frames this round copied: all of them in the first; since the previous round's
        // end after that (fewer if the committer restarted the WAL in between).
        let copied_now = copied_up_to.map_or(wal_frames, |before| wal_frames - before);
        if wal_frames < RESTART_FRAMES
            || copied_now <= CATCH_UP_FRAMES
            || round == CATCH_UP_ROUNDS_MAX
        {
            wal.caught_up.store(true, Ordering::Release);
            return;
        }
        copied_up_to = Some(wal_frames);
    }
}

/// One PASSIVE checkpoint: never waits for the writer. Frames in the WAL when it began,
/// and frames copied into the database file, or `None` if it failed (logged; the next
/// tick tries again).
async fn passive_checkpoint(pool: &SqlitePool) -> Option<(i64, i64)> {
    let started = Instant::now();
    // The pragma's row: busy, frames in the WAL, frames copied into the database.
    match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await
    {
        Ok((_, wal_frames, copied_frames)) => {
            tracing::debug!(
                wal_frames,
                copied_frames,
                elapsed_us = started.elapsed().as_micros() as u64,
                "passive checkpoint"
            );
            Some((wal_frames, copied_frames))
        }
        Err(error) => {
            tracing::warn!(%error, "WAL checkpoint failed; the next one will try again");
            None
        }
    }
}

/// Whether the WAL was started over (false: a reader or a checkpoint was in the way).
async fn restart(pool: &SqlitePool) -> Result<bool, sqlx::Error> {
    let mut connection = pool.acquire().await?;
    sqlx::query("PRAGMA busy_timeout = 0")
        .execute(&mut *connection)
        .await?;
    // Busy is an answer, not an error: the first column of the pragma's row.
    let checkpoint = sqlx::query_scalar::<_, i64>("PRAGMA wal_checkpoint(RESTART)")
        .fetch_one(&mut *connection)
        .await;
    if let Err(error) = sqlx::query(RESTORE_BUSY_TIMEOUT)
        .execute(&mut *connection)
        .await
    {
        // A connection left with a zero busy timeout would fail the committer's next
        // write at the first contention: close it instead of reusing it.
        connection.close_on_drop();
        return Err(error);
    }
    Ok(checkpoint? == 0)
}
