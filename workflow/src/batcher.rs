//! Many concurrent callers, one statement per batch: a task gathers the requests waiting,
//! runs them together, then answers each caller. The notification record and the
//! campaigns' delivery record write through it ([`BatchWriter`]), and a campaign's sends
//! ask through it whether their messages are closed ([`Batcher`]): at a flash sale's peak
//! every order asks for a payment request, a campaign sends 10,000 messages a second, and
//! one statement each would compete with the orders themselves for the database.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use crate::WorkflowError;

type Pending<T, R> = (T, oneshot::Sender<Result<R, String>>);

/// A handle to the batching task, answering each request with an `R`; clones share it.
/// The task ends when the last is dropped.
pub struct Batcher<T, R> {
    queue: mpsc::Sender<Pending<T, R>>,
    /// What this batcher does, for its errors.
    what: &'static str,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            what: self.what,
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Starts the task: at most `queued` requests wait for it (callers wait for room beyond
    /// that), and one call of `run` takes at most `batch_max`; it answers one `R` per
    /// request, in order.
    pub fn start<W, F>(what: &'static str, queued: usize, batch_max: usize, run: W) -> Self
    where
        W: Fn(Vec<T>) -> F + Send + 'static,
        F: Future<Output = Result<Vec<R>, String>> + Send,
    {
        let (queue, mut pending) = mpsc::channel::<Pending<T, R>>(queued.max(1));
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(batch_max);
            while pending.recv_many(&mut batch, batch_max.max(1)).await > 0 {
                let (requests, callers): (Vec<T>, Vec<_>) = batch.drain(..).unzip();
                let asked = requests.len();
                match run(requests).await {
                    Ok(answers) if answers.len() == asked => {
                        for (caller, answer) in callers.into_iter().zip(answers) {
                            let _ = caller.send(Ok(answer));
                        }
                    }
                    Ok(answers) => {
                        let error = format!("{} answers for {asked} requests", answers.len());
                        for caller in callers {
                            let _ = caller.send(Err(error.clone()));
                        }
                    }
                    Err(error) => {
                        for caller in callers {
                            let _ = caller.send(Err(error.clone()));
                        }
                    }
                }
            }
        });
        Self { queue, what }
    }

    /// Runs `request` with the next batch; returns its answer once that batch ran.
    pub async fn ask(&self, request: T) -> Result<R, WorkflowError> {
        let stopped = || WorkflowError::Failed(format!("the {} batcher stopped", self.what));
        let (done, answered) = oneshot::channel();
        self.queue
            .send((request, done))
            .await
            .map_err(|_| stopped())?;
        answered
            .await
            .map_err(|_| stopped())?
            .map_err(WorkflowError::Failed)
    }
}

/// A [`Batcher`] of writes: every record of a batch is written, or none.
pub struct BatchWriter<T>(Batcher<T, ()>);

impl<T> Clone for BatchWriter<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: Send + 'static> BatchWriter<T> {
    /// Starts the task: at most `queued` records wait for it (writers wait for room
    /// beyond that), and one call of `write` takes at most `batch_max`.
    pub fn start<W, F>(what: &'static str, queued: usize, batch_max: usize, write: W) -> Self
    where
        W: Fn(Vec<T>) -> F + Send + 'static,
        F: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self(Batcher::start(what, queued, batch_max, move |records| {
            let written = records.len();
            let write = write(records);
            async move { write.await.map(|()| vec![(); written]) }
        }))
    }

    /// Writes `record` with the next batch; returns once that batch is written.
    pub async fn write(&self, record: T) -> Result<(), WorkflowError> {
        self.0.ask(record).await
    }
}
