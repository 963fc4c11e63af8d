//! The Kinesis destination: writes records with PutRecords within Kinesis limits, retrying
//! only failed entries, keyed and routed as configured. See [`writer`] for the pipeline.

pub(crate) mod aggregate;
pub(crate) mod avro_bounds;
pub(crate) mod batch;
pub(crate) mod exact;
pub(crate) mod format;
pub(crate) mod key;
pub(crate) mod put;
pub(crate) mod rate;
pub(crate) mod retry;
pub(crate) mod rfc3339;
pub(crate) mod schema;
pub(crate) mod settings;
pub(crate) mod template;
pub(crate) mod writer;

use std::sync::Arc;

use crate::aws;
use crate::connection::LifecycleError;
use crate::plugin::env::PluginEnv;
use crate::plugin::{BoxError, Connector, Destination, RawConfig, Record, WriteFuture};
use format::RecordFormat;
use schema::SchemaDecoder;
use settings::{DestinationSettings, StreamTarget};
use writer::{Decode, Encode, SeamError, StreamInfo, Writer, WriterConfig};

pub(crate) struct KinesisDestination {
    utilities_target: Option<String>,
    token: Option<String>,
    configured: Option<(DestinationSettings, RecordFormat)>,
    writer: Option<Writer>,
}

impl KinesisDestination {
    pub(crate) fn new(env: &PluginEnv) -> Self {
        KinesisDestination {
            utilities_target: env.utilities_target.clone(),
            token: env.token().map(str::to_string),
            configured: None,
            writer: None,
        }
    }
}

impl Encode for RecordFormat {
    fn encode(&self, record: &Record) -> Result<Vec<u8>, SeamError> {
        Ok(RecordFormat::encode(self, record)?)
    }
}

#[async_trait::async_trait]
impl Decode for SchemaDecoder {
    fn applies_to(&self, record: &Record) -> bool {
        SchemaDecoder::applies_to(self, record)
    }

    async fn decode(&self, record: &mut Record) -> Result<(), SeamError> {
        Ok(SchemaDecoder::decode(self, record).await?)
    }
}

#[async_trait::async_trait]
impl Connector for KinesisDestination {
    async fn configure(&mut self, config: &RawConfig) -> Result<(), BoxError> {
        let values = crate::config::validate(crate::spec::destination_params(), config)
            .map_err(LifecycleError::Config)?;
        let settings = DestinationSettings::from_values(&values).map_err(LifecycleError::Config)?;
        let format = RecordFormat::from_settings(&settings.format, &settings.format_options)
            .map_err(LifecycleError::Config)?;
        tracing::debug!(?settings, "destination configured");
        self.configured = Some((settings, format));
        Ok(())
    }

    async fn teardown(&mut self) -> Result<(), BoxError> {
        self.writer = None;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Destination for KinesisDestination {
    async fn open(&mut self) -> Result<(), BoxError> {
        let (settings, format) = self
            .configured
            .take()
            .ok_or(LifecycleError::NotConfigured("Open"))?;
        let connection = aws::connect_kinesis(&settings.aws)
            .await
            .map_err(LifecycleError::Aws)?;
        let client = connection.client.clone();
        let endpoint = connection.describe_endpoint();
        let mut known = Vec::new();
        match &settings.target {
            StreamTarget::Fixed(stream) => match aws::describe_stream(&client, stream, &endpoint)
                .await
            {
                Ok(summary) => {
                    tracing::info!(stream = %summary.name, status = %summary.status, open_shards = summary.open_shards, %endpoint, "destination connected");
                    let info =
                        StreamInfo::new(settings.max_record_size, summary.max_record_size_kib);
                    known.push((stream.clone(), info));
                }
                // Created on first use.
                Err(aws::AwsError::StreamNotFound { .. }) if settings.auto_create.is_some() => {}
                Err(e) => return Err(LifecycleError::Aws(e).into()),
            },
            // The streams are only known per record; check that the account is reachable.
            StreamTarget::Template(_) | StreamTarget::Collection => {
                aws::check_access(&client, &endpoint)
                    .await
                    .map_err(LifecycleError::Aws)?;
            }
        }
        let decoder: Option<Arc<dyn Decode>> =
            (settings.decode_payload_schema || settings.decode_key_schema).then(|| {
                Arc::new(SchemaDecoder::new(
                    self.utilities_target.clone(),
                    self.token.clone(),
                    settings.decode_payload_schema,
                    settings.decode_key_schema,
                )) as Arc<dyn Decode>
            });
        let config = WriterConfig::from_settings(&settings, Arc::new(format), decoder);
        let writer = Writer::connect(connection, config, known)
            .map_err(|detail| LifecycleError::Aws(aws::AwsError::HttpClient { detail }))?;
        self.writer = Some(writer);
        Ok(())
    }

    fn write(&self, records: Vec<Record>) -> WriteFuture {
        let Some(writer) = &self.writer else {
            let count = records.len();
            return Box::pin(async move {
                Ok(vec![
                    Err("the destination was not opened".to_string());
                    count
                ])
            });
        };
        let count = records.len();
        let outcomes = writer.submit(records);
        Box::pin(async move {
            Ok(outcomes.await.unwrap_or_else(|_| {
                vec![Err("the destination stopped before writing the record".into()); count]
            }))
        })
    }
}
