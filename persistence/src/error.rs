use engine::stock::CorruptSnapshot;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or failed mid-way. Whether a commit that saw this
    /// happened or not is unknown; callers reload from the store before deciding again.
    #[error("the database failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the database did not answer within {0} ms")]
    Timeout(u64),
    #[error("could not apply the schema migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A write met a row in a state it did not expect: a bug upstream, never user input.
    #[error("write refused: {0}")]
    Conflict(String),
    /// What the store holds does not add up.
    #[error(transparent)]
    Corrupt(#[from] CorruptSnapshot),
    #[error("stored data is unreadable: {0}")]
    Decode(String),
    /// Another engine holds the embedded data directory: two would each answer for the
    /// same products (`Database::open`).
    #[error("{0}")]
    InUse(String),
    /// A batch carried a shard lease that is no longer current: another node took the
    /// shard over, and nothing of the batch was written.
    #[error("fenced: {0}")]
    Fenced(String),
    /// A batch carried a hold deadline (`WriteOp::HoldUntil`) that had passed: the node
    /// holding those lines gave up on them, and nothing of the batch was written.
    #[error("hold expired: {0}")]
    HoldExpired(String),
    /// A store beside the database (Redis) could not be reached.
    #[error("{0}")]
    Unavailable(String),
}
