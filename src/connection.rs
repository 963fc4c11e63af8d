//! What both sides share: which stream, which AWS account, and opening a checked client.

use crate::aws::{self, AwsError, AwsSettings, KinesisConnection, StreamRef, StreamSummary};
use crate::config::{ConfigError, Values};

#[derive(Debug, Clone)]
pub(crate) struct Connection {
    pub stream: StreamRef,
    pub aws: AwsSettings,
}

impl Connection {
    pub(crate) fn from_values(values: &Values) -> Result<Self, ConfigError> {
        let stream = StreamRef::from_values(values);
        let aws = AwsSettings::from_values(
            values,
            stream.as_ref().ok().and_then(|s| s.region()).as_deref(),
        );
        match (stream, aws) {
            (Ok(stream), Ok(aws)) => Ok(Connection { stream, aws }),
            (stream, aws) => Err(ConfigError::from_many(
                [stream.err(), aws.err()].into_iter().flatten().collect(),
            )
            .expect("at least one side failed")),
        }
    }

    /// Builds the client and checks that the stream exists and the credentials work.
    pub(crate) async fn open(&self) -> Result<(KinesisConnection, StreamSummary), AwsError> {
        let connection = aws::connect_kinesis(&self.aws).await?;
        let endpoint = connection.describe_endpoint();
        let summary = aws::describe_stream(&connection.client, &self.stream, &endpoint).await?;
        tracing::info!(
            stream = %summary.name,
            status = %summary.status,
            open_shards = summary.open_shards,
            endpoint = %endpoint,
            "connected to Kinesis stream"
        );
        Ok((connection, summary))
    }
}

/// Errors of the connector's own lifecycle, as the user sees them.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LifecycleError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("{0} was called before Configure; Conduit always configures a connector first")]
    NotConfigured(&'static str),
}
