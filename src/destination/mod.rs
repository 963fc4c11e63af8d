//! The Kinesis destination.

pub mod batch;
pub mod key;
pub mod retry;
pub mod template;

use aws_sdk_kinesis::Client;

use crate::connection::{Connection, LifecycleError};
use crate::plugin::{BoxError, Destination, RawConfig, Record, WriteFuture, WriteOutcome};

#[derive(Default)]
pub struct KinesisDestination {
    connection: Option<Connection>,
    client: Option<Client>,
}

#[async_trait::async_trait]
impl Destination for KinesisDestination {
    async fn configure(&mut self, config: &RawConfig) -> Result<(), BoxError> {
        let values = crate::config::validate(crate::spec::destination_params(), config)
            .map_err(LifecycleError::Config)?;
        let connection = Connection::from_values(&values).map_err(LifecycleError::Config)?;
        tracing::debug!(?connection, "destination configured");
        self.connection = Some(connection);
        Ok(())
    }

    async fn open(&mut self) -> Result<(), BoxError> {
        let connection = self
            .connection
            .as_ref()
            .ok_or(LifecycleError::NotConfigured("Open"))?;
        let (client, _summary) = connection.open().await.map_err(LifecycleError::Aws)?;
        self.client = Some(client);
        Ok(())
    }

    fn write(&self, records: Vec<Record>) -> WriteFuture {
        // Writing lands with the destination issue. Until then every record is nacked, never
        // acked unwritten, so Conduit's dead-letter queue keeps it.
        let outcomes: Vec<WriteOutcome> = records
            .iter()
            .map(|_| {
                Err(
                    "the kinesis destination does not write records in this version yet"
                        .to_string(),
                )
            })
            .collect();
        Box::pin(async move { Ok(outcomes) })
    }

    async fn teardown(&mut self) -> Result<(), BoxError> {
        self.client = None;
        Ok(())
    }
}
