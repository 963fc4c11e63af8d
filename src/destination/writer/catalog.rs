//! What the writer knows about streams: their record size limit, described (and, with
//! `auto.create.streams`, created) on first use and cached.

use std::collections::HashMap;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_kinesis::types::{StreamMode, StreamModeDetails};
use aws_sdk_kinesis::Client;

use super::prepare::stream_key_of;
use super::DEFAULT_MAX_RECORD_SIZE;
use crate::aws::StreamRef;
use crate::destination::settings::CreateMode;

/// What the writer knows about a stream.
#[derive(Debug, Clone)]
pub(crate) struct StreamInfo {
    pub max_record_size: usize,
}

impl StreamInfo {
    /// The configured record size limit, else the stream's `MaxRecordSizeInKiB`, else 1 MiB.
    pub(crate) fn new(configured_max: Option<usize>, reported_max_kib: Option<i32>) -> StreamInfo {
        let reported = reported_max_kib
            .filter(|&k| k > 0)
            .map(|k| k as usize * 1024);
        StreamInfo {
            max_record_size: configured_max
                .or(reported)
                .unwrap_or(DEFAULT_MAX_RECORD_SIZE),
        }
    }
}

/// Stream descriptions (and creation), cached per stream.
pub(super) struct StreamCatalog {
    client: Client,
    auto_create: Option<CreateMode>,
    max_record_size: Option<usize>,
    known: StdMutex<HashMap<String, StreamInfo>>,
}

impl StreamCatalog {
    pub(super) fn new(
        client: Client,
        auto_create: Option<CreateMode>,
        max_record_size: Option<usize>,
    ) -> Self {
        StreamCatalog {
            client,
            auto_create,
            max_record_size,
            known: StdMutex::new(HashMap::new()),
        }
    }

    pub(super) fn insert(&self, stream: &StreamRef, info: StreamInfo) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(stream_key_of(stream).to_string(), info);
    }

    pub(super) fn forget(&self, stream: &StreamRef) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(stream_key_of(stream).as_ref());
    }

    pub(super) async fn info(&self, stream: &StreamRef) -> Result<StreamInfo, String> {
        let key = stream_key_of(stream);
        if let Some(info) = self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key.as_ref())
        {
            return Ok(info.clone());
        }
        let info = match self.describe(stream).await {
            Ok(info) => info,
            Err(Missing) => match self.auto_create {
                Some(mode) => self.create(stream, mode).await?,
                None => {
                    return Err(format!(
                        "stream {:?} does not exist: create it, or set auto.create.streams=true to have the \
                         connector create missing streams",
                        stream.name
                    ))
                }
            },
        }?;
        self.insert(stream, info.clone());
        Ok(info)
    }

    fn info_from(&self, max_kib: Option<i32>) -> StreamInfo {
        StreamInfo::new(self.max_record_size, max_kib)
    }

    async fn describe(&self, stream: &StreamRef) -> Result<Result<StreamInfo, String>, Missing> {
        let mut request = self.client.describe_stream_summary();
        request = match &stream.arn {
            Some(arn) => request.stream_arn(arn),
            None => request.stream_name(&stream.name),
        };
        match request.send().await {
            Ok(response) => Ok(Ok(self.info_from(
                response
                    .stream_description_summary
                    .and_then(|d| d.max_record_size_in_kib),
            ))),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Err(Missing),
            Err(e) => Ok(Err(format!(
                "could not describe stream {:?}: {}",
                stream.name,
                DisplayErrorContext(&e)
            ))),
        }
    }

    async fn create(
        &self,
        stream: &StreamRef,
        mode: CreateMode,
    ) -> Result<Result<StreamInfo, String>, String> {
        let mut request = self.client.create_stream().stream_name(&stream.name);
        request = match mode {
            CreateMode::OnDemand => request.stream_mode_details(
                StreamModeDetails::builder()
                    .stream_mode(StreamMode::OnDemand)
                    .build()
                    .map_err(|e| e.to_string())?,
            ),
            CreateMode::Provisioned { shards } => request.shard_count(shards),
        };
        match request.send().await {
            Ok(_) => tracing::info!(stream = %stream.name, ?mode, "created stream"),
            // Another lane (or another pipeline) is creating it: wait for it below.
            Err(e) if e.code() == Some("ResourceInUseException") => {}
            Err(e) => {
                return Err(format!(
                    "could not create stream {:?}: {}",
                    stream.name,
                    DisplayErrorContext(&e)
                ))
            }
        }
        for _ in 0..300 {
            let mut request = self.client.describe_stream_summary();
            request = request.stream_name(&stream.name);
            if let Ok(response) = request.send().await {
                if let Some(summary) = response.stream_description_summary {
                    if summary.stream_status.as_str() == "ACTIVE" {
                        return Ok(Ok(self.info_from(summary.max_record_size_in_kib)));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!(
            "stream {:?} did not become ACTIVE within a minute of creating it",
            stream.name
        ))
    }
}

/// The stream does not exist.
struct Missing;
