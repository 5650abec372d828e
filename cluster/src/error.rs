/// Why the cluster layer could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("{0}")]
    Failed(String),
}
