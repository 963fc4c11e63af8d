//! The source: `count` numbered records, made up in memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use conduit_plugin_runtime::proto::opencdc::v1::{data, Change, Data, Operation};
use conduit_plugin_runtime::{BoxError, Connector, Metadata, RawConfig, Record, Source};

use crate::{settings, specification, COUNT, PREFIX};

/// Emits records `1..=count`. A record's position is its number in decimal, so `open` can
/// continue right after the position Conduit hands back on a restart.
pub struct MemorySource {
    count: u64,
    prefix: String,
    /// The number of the next record to emit. `read` and `ack` take `&self` (the runtime calls
    /// them concurrently), hence the atomics.
    next: AtomicU64,
    /// The number of the last record Conduit acknowledged (0: none yet).
    acked: AtomicU64,
}

impl Default for MemorySource {
    fn default() -> Self {
        MemorySource {
            count: 0,
            prefix: String::new(),
            next: AtomicU64::new(1),
            acked: AtomicU64::new(0),
        }
    }
}

/// Positions are the record number in decimal; anything else did not come from this source.
fn parse_position(position: &[u8]) -> Result<u64, BoxError> {
    std::str::from_utf8(position)
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .filter(|&number| number > 0)
        .ok_or_else(|| {
            format!(
                "position {:?} was not written by this source (expected a record number)",
                String::from_utf8_lossy(position)
            )
            .into()
        })
}

fn raw(bytes: impl Into<Vec<u8>>) -> Option<Data> {
    Some(Data {
        data: Some(data::Data::RawData(bytes.into().into())),
    })
}

impl MemorySource {
    fn record(&self, number: u64) -> Record {
        let created_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default();
        Record {
            position: number.to_string().into_bytes(),
            operation: Operation::Create as i32,
            // Standard OpenCDC metadata; Conduit adds `opencdc.readAt` and the connector id.
            metadata: Metadata::from([("opencdc.createdAt", created_at.to_string())]),
            key: raw(number.to_string()),
            payload: Some(Change {
                before: None,
                after: raw(format!("{}{number}", self.prefix)),
            }),
        }
    }
}

#[async_trait]
impl Connector for MemorySource {
    async fn configure(&mut self, config: &RawConfig) -> Result<(), BoxError> {
        let settings = settings(config, &specification().source_params)?;
        self.count = settings[COUNT]
            .parse()
            .map_err(|_| format!("{COUNT}: {:?} is not a whole number", settings[COUNT]))?;
        self.prefix = settings[PREFIX].clone();
        Ok(())
    }

    async fn teardown(&mut self) -> Result<(), BoxError> {
        // Nothing to release; a real source closes its connections here. Called in any
        // state, also when `open` never ran.
        tracing::debug!(
            acked = self.acked.load(Ordering::SeqCst),
            "source torn down"
        );
        Ok(())
    }
}

#[async_trait]
impl Source for MemorySource {
    async fn open(&mut self, position: Option<Vec<u8>>) -> Result<(), BoxError> {
        // `position` is the last one Conduit acknowledged and stored: continue after it.
        let after = match position {
            Some(position) => parse_position(&position)?,
            None => 0,
        };
        self.next.store(after + 1, Ordering::SeqCst);
        self.acked.store(after, Ordering::SeqCst);
        tracing::info!(count = self.count, resume_after = after, "source opened");
        Ok(())
    }

    async fn read(&self) -> Result<Vec<Record>, BoxError> {
        let number = self.next.load(Ordering::SeqCst);
        if number > self.count {
            // All emitted. A source waits for new data here; the runtime drops this future
            // when the pipeline stops, which is why `read` must be cancel-safe. This one is:
            // nothing changes before the last await.
            std::future::pending::<()>().await;
        }
        self.next.store(number + 1, Ordering::SeqCst);
        // Returning several records at once is fine too; the runtime sends them in one message.
        Ok(vec![self.record(number)])
    }

    async fn ack(&self, positions: Vec<Vec<u8>>) -> Result<(), BoxError> {
        // Acks arrive in the order the records were read. A real source would now commit
        // its read offset upstream; this one only remembers how far it got.
        for position in positions {
            let number = parse_position(&position)?;
            let previous = self.acked.swap(number, Ordering::SeqCst);
            if number <= previous {
                return Err(format!("ack for record {number} after record {previous}").into());
            }
            tracing::debug!(position = number, "record acknowledged");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(pairs: &[(&str, &str)]) -> RawConfig {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn payload(record: &Record) -> Vec<u8> {
        match record.payload.as_ref().and_then(|p| p.after.as_ref()) {
            Some(Data {
                data: Some(data::Data::RawData(bytes)),
            }) => bytes.to_vec(),
            other => panic!("not raw data: {other:?}"),
        }
    }

    async fn read_all(source: &MemorySource) -> Vec<Record> {
        let mut records = Vec::new();
        while let Ok(Ok(batch)) =
            tokio::time::timeout(Duration::from_millis(50), source.read()).await
        {
            records.extend(batch);
        }
        records
    }

    #[tokio::test]
    async fn emits_count_records_then_waits() {
        let mut source = MemorySource::default();
        source
            .configure(&config(&[(COUNT, "3"), (PREFIX, "n-")]))
            .await
            .unwrap();
        source.open(None).await.unwrap();
        let records = read_all(&source).await;
        let positions: Vec<&[u8]> = records.iter().map(|r| r.position.as_slice()).collect();
        assert_eq!(positions, [b"1", b"2", b"3"]);
        assert_eq!(payload(&records[2]), b"n-3");
        source
            .ack(vec![b"1".to_vec(), b"2".to_vec()])
            .await
            .unwrap();
        source.teardown().await.unwrap();
    }

    #[tokio::test]
    async fn open_continues_after_the_position() {
        let mut source = MemorySource::default();
        source.configure(&config(&[(COUNT, "5")])).await.unwrap();
        source.open(Some(b"3".to_vec())).await.unwrap();
        let records = read_all(&source).await;
        let positions: Vec<&[u8]> = records.iter().map(|r| r.position.as_slice()).collect();
        assert_eq!(positions, [b"4", b"5"]);
        assert_eq!(payload(&records[0]), b"record-4");

        let error = source.open(Some(b"x".to_vec())).await.unwrap_err();
        assert!(
            error.to_string().contains("not written by this source"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn rejects_bad_settings_and_out_of_order_acks() {
        let mut source = MemorySource::default();
        let error = source
            .configure(&config(&[(COUNT, "-1")]))
            .await
            .unwrap_err();
        assert_eq!(error.to_string(), r#"count: "-1" is not a whole number"#);
        source.configure(&config(&[])).await.unwrap();
        assert_eq!(source.count, 10);
        source.open(None).await.unwrap();
        source.ack(vec![b"2".to_vec()]).await.unwrap();
        assert!(source.ack(vec![b"1".to_vec()]).await.is_err());
    }
}
