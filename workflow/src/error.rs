use persistence::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("rabbitmq: {0}")]
    Rabbit(#[from] lapin::Error),
    #[error("rabbitmq did not confirm a message to {0}")]
    NotConfirmed(String),
    /// A message that cannot be read: retrying will not help, its attempts run out and it
    /// goes to the dead-letter queue.
    #[error("unreadable message: {0}")]
    Malformed(String),
    #[error("{0}")]
    Failed(String),
}
