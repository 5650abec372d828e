//! Many concurrent writers, one statement per batch: a task gathers the records waiting
//! and writes them together, then answers each writer. The notification record and the
//! campaigns' delivery record both use it (at a flash sale's peak every order asks for
//! a payment request, a campaign sends 10,000 messages a second: one INSERT each would
//! compete with the orders themselves for the database).

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use crate::WorkflowError;

type Pending<T> = (T, oneshot::Sender<Result<(), String>>);

/// A handle to the writer task; clones share it. The task ends when the last is dropped.
pub struct BatchWriter<T> {
    queue: mpsc::Sender<Pending<T>>,
    /// What this writer writes, for its errors.
    what: &'static str,
}

impl<T> Clone for BatchWriter<T> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            what: self.what,
        }
    }
}

impl<T: Send + 'static> BatchWriter<T> {
    /// Starts the task: at most `queued` records wait for it (writers wait for room
    /// beyond that), and one call of `write` takes at most `batch_max`.
    pub fn start<W, F>(what: &'static str, queued: usize, batch_max: usize, write: W) -> Self
    where
        W: Fn(Vec<T>) -> F + Send + 'static,
        F: Future<Output = Result<(), String>> + Send,
    {
        let (queue, mut pending) = mpsc::channel::<Pending<T>>(queued.max(1));
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(batch_max);
            while pending.recv_many(&mut batch, batch_max.max(1)).await > 0 {
                let (records, waiters): (Vec<T>, Vec<_>) = batch.drain(..).unzip();
                let outcome = write(records).await;
                for waiter in waiters {
                    let _ = waiter.send(outcome.clone());
                }
            }
        });
        Self { queue, what }
    }

    /// Writes `record` with the next batch; returns once that batch is written.
    pub async fn write(&self, record: T) -> Result<(), WorkflowError> {
        let stopped = || WorkflowError::Failed(format!("the {} writer stopped", self.what));
        let (done, written) = oneshot::channel();
        self.queue
            .send((record, done))
            .await
            .map_err(|_| stopped())?;
        written
            .await
            .map_err(|_| stopped())?
            .map_err(WorkflowError::Failed)
    }
}
