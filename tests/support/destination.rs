//! Driving the destination over gRPC as Conduit does, and reading back what reached Kinesis.

use std::time::Duration;

use aws_sdk_kinesis::types::ShardIteratorType;
use conduit_connector_kinesis::proto::connector::v2::destination;
use conduit_connector_kinesis::proto::connector::v2::destination::run::response::Ack;
use conduit_connector_kinesis::proto::opencdc::v1::{data, Change, Data, Operation, Record};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use super::plugin::{config, PluginProcess};

/// A destination connector process that has been configured, opened and is running.
pub struct RunningDestination {
    pub plugin: PluginProcess,
    requests: mpsc::Sender<destination::run::Request>,
    acks: Streaming<destination::run::Response>,
    buffered: std::collections::VecDeque<Ack>,
}

impl RunningDestination {
    /// Configure → Open → Run. Panics with the error if any step fails.
    pub async fn start(settings: &[(&str, &str)]) -> RunningDestination {
        Self::try_start(settings)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn try_start(settings: &[(&str, &str)]) -> Result<RunningDestination, String> {
        let plugin = PluginProcess::start_for_run().await;
        let mut client = plugin.destination();
        client
            .configure(destination::configure::Request {
                config: config(settings),
            })
            .await
            .map_err(|e| format!("Configure: {}", e.message()))?;
        client
            .open(destination::open::Request {})
            .await
            .map_err(|e| format!("Open: {}", e.message()))?;
        let (requests, rx) = mpsc::channel(1024);
        let acks = client
            .run(ReceiverStream::new(rx))
            .await
            .map_err(|e| format!("Run: {}", e.message()))?
            .into_inner();
        Ok(RunningDestination {
            plugin,
            requests,
            acks,
            buffered: Default::default(),
        })
    }

    /// Sends records one per request, like Conduit's default pipeline architecture.
    pub async fn send_each(&self, records: &[Record]) {
        for record in records {
            self.send_batch(vec![record.clone()]).await;
        }
    }

    /// Sends records in one request, like the preview architecture.
    pub async fn send_batch(&self, records: Vec<Record>) {
        self.requests
            .send(destination::run::Request { records })
            .await
            .expect("run stream open");
    }

    /// The next `n` acks, in the order the plugin sent them.
    pub async fn acks(&mut self, n: usize) -> Vec<Ack> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if let Some(ack) = self.buffered.pop_front() {
                out.push(ack);
                continue;
            }
            let next = tokio::time::timeout(Duration::from_secs(60), self.acks.message())
                .await
                .unwrap_or_else(|_| panic!("no ack within 60s after {} of {n}", out.len()))
                .expect("run stream failed")
                .expect("run stream ended");
            self.buffered.extend(next.acks);
        }
        out
    }

    pub async fn stop(&mut self, last_position: &[u8]) {
        self.plugin
            .destination()
            .stop(destination::stop::Request {
                last_position: last_position.to_vec(),
            })
            .await
            .expect("Stop");
    }

    pub async fn teardown(self) {
        self.plugin
            .destination()
            .teardown(destination::teardown::Request {})
            .await
            .expect("Teardown");
    }
}

pub fn raw(bytes: &[u8]) -> Option<Data> {
    Some(Data {
        data: Some(data::Data::RawData(bytes.to_vec().into())),
    })
}

pub fn structured(json: serde_json::Value) -> Option<Data> {
    fn value(v: &serde_json::Value) -> prost_types::Value {
        use prost_types::value::Kind;
        let kind = match v {
            serde_json::Value::Null => Kind::NullValue(0),
            serde_json::Value::Bool(b) => Kind::BoolValue(*b),
            serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
            serde_json::Value::String(s) => Kind::StringValue(s.clone()),
            serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue {
                values: a.iter().map(value).collect(),
            }),
            serde_json::Value::Object(o) => Kind::StructValue(prost_types::Struct {
                fields: o.iter().map(|(k, v)| (k.clone(), value(v))).collect(),
            }),
        };
        prost_types::Value { kind: Some(kind) }
    }
    let serde_json::Value::Object(fields) = json else {
        panic!("structured data must be an object")
    };
    Some(Data {
        data: Some(data::Data::StructuredData(prost_types::Struct {
            fields: fields.iter().map(|(k, v)| (k.clone(), value(v))).collect(),
        })),
    })
}

/// A create record with a raw key and payload.
pub fn raw_record(position: &str, key: &str, payload: &[u8]) -> Record {
    Record {
        position: position.as_bytes().to_vec(),
        operation: Operation::Create as i32,
        metadata: Default::default(),
        key: raw(key.as_bytes()),
        payload: Some(Change {
            before: None,
            after: raw(payload),
        }),
    }
}

/// One record as stored in Kinesis.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub shard: String,
    pub sequence: String,
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// Every record of every shard, each shard in sequence order (read directly from the server).
pub async fn read_all(client: &aws_sdk_kinesis::Client, stream: &str) -> Vec<Stored> {
    let shards = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .expect("ListShards")
        .shards
        .unwrap_or_default();
    let mut out = Vec::new();
    for shard in shards {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(&shard.shard_id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("GetShardIterator")
            .shard_iterator;
        while let Some(it) = iterator {
            let page = client
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .expect("GetRecords");
            let empty = page.records.is_empty();
            for r in page.records {
                out.push(Stored {
                    shard: shard.shard_id.clone(),
                    sequence: r.sequence_number,
                    partition_key: r.partition_key.unwrap_or_default(),
                    data: r.data.into_inner(),
                });
            }
            if empty {
                break;
            }
            iterator = page.next_shard_iterator;
        }
    }
    out
}
