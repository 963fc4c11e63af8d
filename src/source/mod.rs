//! The Kinesis source: enhanced fan-out (or polling) reading with a position that covers
//! every shard, following resharding. See [`engine`] for how the pieces fit.

pub(crate) mod api;
pub(crate) mod consumer;
pub(crate) mod deaggregate;
pub(crate) mod engine;
pub(crate) mod eventstream;
#[cfg(test)]
pub(crate) mod fake;
pub(crate) mod health;
pub(crate) mod lag;
pub(crate) mod lease;
pub(crate) mod lineage;
pub(crate) mod plan;
pub(crate) mod position;
pub(crate) mod reader;
pub(crate) mod records;
pub(crate) mod sequence;
pub(crate) mod settings;
pub(crate) mod subscribe;

use std::sync::Arc;

use crate::aws::{self, KinesisConnection};
use crate::connection::LifecycleError;
use crate::plugin::env::PluginEnv;
use crate::plugin::{BoxError, Connector, RawConfig, Record, Source};
use api::AwsShards;
use engine::{Engine, EngineConfig};
use lease::LeaseTable as _;
use position::{Position, Saved};
use reader::Mode;
use settings::{derived_consumer_name, ConsumerChoice, ReadMode, SourceSettings};
use subscribe::Subscriber;

pub(crate) struct KinesisSource {
    connector_id: Option<String>,
    settings: Option<SourceSettings>,
    engine: Option<Engine>,
}

impl KinesisSource {
    pub(crate) fn new(env: &PluginEnv) -> Self {
        KinesisSource {
            connector_id: env.connector_id.clone(),
            settings: None,
            engine: None,
        }
    }

    fn parse(config: &RawConfig) -> Result<SourceSettings, LifecycleError> {
        let values = crate::config::validate(crate::spec::source_params(), config)?;
        Ok(SourceSettings::from_values(&values)?)
    }

    fn consumer_name(&self, name: &Option<String>) -> String {
        name.clone()
            .unwrap_or_else(|| derived_consumer_name(self.connector_id.as_deref()))
    }
}

/// The engine's configuration from the settings and an open connection, as both the
/// connector and the `consume` command start it: the reading mode (for fan-out, with the
/// consumer found or registered, named by `consumerName`, else `default_consumer_name`) and
/// the settings' knobs.
pub(crate) async fn engine_config(
    settings: &SourceSettings,
    connection: &KinesisConnection,
    stream_arn: &str,
    default_consumer_name: &str,
) -> Result<EngineConfig, SourceError> {
    let (mode, subscriber) =
        reading_mode(settings, connection, stream_arn, default_consumer_name).await?;
    let stream = settings.connection.stream.clone();
    Ok(EngineConfig {
        stream_name: stream.name.clone(),
        api: Arc::new(AwsShards::new(
            connection.client.clone(),
            stream,
            subscriber,
        )),
        mode,
        initial: settings.initial,
        deaggregate: settings.deaggregate,
        unwrap_opencdc: settings.unwrap_opencdc,
        buffer_size: settings.buffer_size,
        batch_size: settings.batch_size,
        batch_delay: settings.batch_delay,
        discovery_interval: settings.discovery_interval,
        lag_log_interval: settings.lag_log_interval,
    })
}

/// How the shards are read: for fan-out, with the consumer found or registered and the
/// subscription client built.
async fn reading_mode(
    settings: &SourceSettings,
    connection: &KinesisConnection,
    stream_arn: &str,
    default_consumer_name: &str,
) -> Result<(Mode, Option<Subscriber>), SourceError> {
    Ok(match &settings.mode {
        ReadMode::Polling { interval, limit } => (
            Mode::Polling {
                interval: *interval,
                limit: *limit,
            },
            None,
        ),
        ReadMode::FanOut(choice) => {
            let consumer_arn = match choice {
                ConsumerChoice::Arn(arn) => arn.clone(),
                ConsumerChoice::Named(name) => {
                    let name = name.as_deref().unwrap_or(default_consumer_name);
                    consumer::ensure(&connection.client, stream_arn, name).await?
                }
            };
            let subscriber = Subscriber::new(connection).map_err(|detail| {
                SourceError::from(LifecycleError::from(aws::AwsError::HttpClient { detail }))
            })?;
            (
                Mode::FanOut {
                    consumer_arn,
                    renew_after: settings.renew_after,
                    idle_timeout: settings.idle_timeout,
                },
                Some(subscriber),
            )
        }
    })
}

/// How long Teardown may take to write the final checkpoints and release the leases.
const LEASE_RELEASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl KinesisSource {
    /// The lease table (created when missing) and how coordination runs.
    async fn lease_table(
        &self,
        settings: &SourceSettings,
        coordination: &lease::DynamoSettings,
        connection: &KinesisConnection,
    ) -> Result<(Arc<dyn lease::LeaseTable>, lease::LeaseConfig), SourceError> {
        let name = coordination
            .table
            .clone()
            .unwrap_or_else(|| lease::derived_table_name(self.connector_id.as_deref()));
        let client = aws::signed::SignedClient::new(
            &connection.sdk_config,
            None,
            aws::signed::HttpVersions::Http1,
        )
        .map_err(|detail| {
            SourceError::from(LifecycleError::from(aws::AwsError::HttpClient { detail }))
        })?;
        let table = lease::dynamo::DynamoLeaseTable::new(
            client,
            coordination.url.as_deref(),
            name.clone(),
            coordination.lease_duration,
        )
        .map_err(SourceError::Coordination)?;
        table.ensure().await.map_err(|error| {
            SourceError::Coordination(format!("the lease table {name:?} cannot be used: {error}"))
        })?;
        let worker_id = coordination
            .worker_id
            .clone()
            .unwrap_or_else(lease::default_worker_id);
        tracing::info!(table = %name, worker = %worker_id, "lease table ready");
        let config = lease::LeaseConfig {
            worker_id,
            lease_duration: coordination.lease_duration,
            checkpoint_interval: coordination.checkpoint_interval,
            initial: settings.initial,
            discovery_interval: settings.discovery_interval,
        };
        Ok((Arc::new(table), config))
    }
}

/// Source failures the user sees.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SourceError {
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("the saved position cannot be used: {0}")]
    Position(#[from] position::PositionError),
    #[error(transparent)]
    Consumer(#[from] consumer::ConsumerError),
    #[error("reading stopped: {0}")]
    Read(String),
    #[error("coordination=dynamodb: {0}")]
    Coordination(String),
}

#[async_trait::async_trait]
impl Connector for KinesisSource {
    async fn configure(&mut self, config: &RawConfig) -> Result<(), BoxError> {
        let settings = Self::parse(config).map_err(SourceError::from)?;
        tracing::debug!(?settings, "source configured");
        self.settings = Some(settings);
        Ok(())
    }

    async fn teardown(&mut self) -> Result<(), BoxError> {
        if let Some(engine) = self.engine.take() {
            engine.shutdown(LEASE_RELEASE_TIMEOUT).await;
        }
        Ok(())
    }

    async fn lifecycle_on_deleted(&mut self, config: &RawConfig) -> Result<(), BoxError> {
        let settings = Self::parse(config).map_err(SourceError::from)?;
        let ReadMode::FanOut(ConsumerChoice::Named(name)) = &settings.mode else {
            return Ok(());
        };
        if !settings.deregister_on_delete {
            return Ok(());
        }
        let name = self.consumer_name(name);
        let connection = aws::connect_kinesis(&settings.connection.aws)
            .await
            .map_err(|e| SourceError::from(LifecycleError::from(e)))?;
        let endpoint = connection.describe_endpoint();
        let client = connection.client;
        let summary =
            match aws::describe_stream(&client, &settings.connection.stream, &endpoint).await {
                Ok(summary) => summary,
                // The stream is gone, and its consumers with it.
                Err(aws::AwsError::StreamNotFound { .. }) => return Ok(()),
                Err(e) => return Err(SourceError::from(LifecycleError::from(e)).into()),
            };
        consumer::deregister(&client, &summary.arn, &name)
            .await
            .map_err(SourceError::from)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Source for KinesisSource {
    async fn open(&mut self, position: Option<Vec<u8>>) -> Result<(), BoxError> {
        let settings = self
            .settings
            .clone()
            .ok_or(LifecycleError::NotConfigured("Open"))
            .map_err(SourceError::from)?;
        let stream_name = settings.connection.stream.name.clone();
        if let lease::CoordinationSettings::DynamoDb(coordination) = &settings.coordination {
            if let Some(bytes) = &position {
                tracing::info!(
                    position_bytes = bytes.len(),
                    "coordination=dynamodb: the saved position is not used to resume; every \
                     shard resumes from its checkpoint in the lease table"
                );
            }
            let (connection, summary) = settings
                .connection
                .open()
                .await
                .map_err(|e| SourceError::from(LifecycleError::from(e)))?;
            let default_name = derived_consumer_name(self.connector_id.as_deref());
            let config = engine_config(&settings, &connection, &summary.arn, &default_name).await?;
            let (table, lease_config) = self
                .lease_table(&settings, coordination, &connection)
                .await?;
            self.engine = Some(Engine::start_coordinated(config, table, lease_config));
            return Ok(());
        }
        let position = match position {
            Some(bytes) => {
                match Position::decode_saved(&bytes, &stream_name).map_err(SourceError::from)? {
                    Saved::GoConnector {
                        position,
                        shard,
                        sequence,
                    } => {
                        tracing::warn!(
                            stream = %stream_name,
                            %shard,
                            %sequence,
                            "the saved position is the Go Kinesis connector's, which names one shard: \
                             resuming shard {shard} after sequence number {sequence} and every other \
                             shard from its oldest record (TRIM_HORIZON), so nothing is lost but what \
                             the Go connector delivered from the other shards is delivered again"
                        );
                        position
                    }
                    Saved::Native(position) => position,
                }
            }
            None => Position::new(stream_name.clone()),
        };
        let (connection, summary) = settings
            .connection
            .open()
            .await
            .map_err(|e| SourceError::from(LifecycleError::from(e)))?;
        let default_name = derived_consumer_name(self.connector_id.as_deref());
        let config = engine_config(&settings, &connection, &summary.arn, &default_name).await?;
        tracing::info!(
            stream = %stream_name,
            resumed_shards = position.shards.len(),
            mode = if matches!(config.mode, Mode::Polling { .. }) { "polling" } else { "fanout" },
            "source opened"
        );
        self.engine = Some(Engine::start(config, position));
        Ok(())
    }

    async fn read(&self) -> Result<Vec<Record>, BoxError> {
        match &self.engine {
            Some(engine) => Ok(engine.read().await.map_err(SourceError::Read)?),
            None => Err(SourceError::Read("the source was not opened".into()).into()),
        }
    }

    async fn ack(&self, positions: Vec<Vec<u8>>) -> Result<(), BoxError> {
        // Without coordination positions are self-contained and Conduit persists the last
        // acked one; with it, acks move the checkpoints in the lease table.
        if let Some(engine) = &self.engine {
            engine.ack(&positions);
        }
        Ok(())
    }
}
