//! Messages that follow one kind of event: the relay hands over every event, and a
//! [`Notices`] sink queues one job for each event of its type (an abandoned cart's
//! reminder to its customer, a payout's notice to its seller). The job's id is derived
//! from the event, so an event relayed twice is sent once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use persistence::OutboxRow;

use crate::WorkflowError;
use crate::event::EventBody;
use crate::jobs::{Job, JobQueue};
use crate::relay::EventSink;

/// The relay's sink that turns each `event_type` event into the job `job_of` makes.
pub struct Notices {
    name: &'static str,
    event_type: &'static str,
    job_of: fn(&EventBody) -> Result<Job, WorkflowError>,
    jobs: Arc<dyn JobQueue>,
}

impl Notices {
    pub fn new(
        name: &'static str,
        event_type: &'static str,
        job_of: fn(&EventBody) -> Result<Job, WorkflowError>,
        jobs: Arc<dyn JobQueue>,
    ) -> Self {
        Self {
            name,
            event_type,
            job_of,
            jobs,
        }
    }
}

#[async_trait]
impl EventSink for Notices {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn publish(&self, rows: &[OutboxRow]) -> Result<(), WorkflowError> {
        for row in rows {
            if row.event_type != self.event_type {
                continue;
            }
            match EventBody::of_row(row).and_then(|body| (self.job_of)(&body)) {
                Ok(job) => self.jobs.enqueue(job, Duration::ZERO).await?,
                // Retrying cannot fix a body; skipping keeps the rest flowing.
                Err(error) => {
                    tracing::warn!(seq = row.seq, sink = self.name, %error, "no message for an event")
                }
            }
        }
        Ok(())
    }
}
