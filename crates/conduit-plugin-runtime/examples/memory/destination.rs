//! The destination: logs every record and acks it, or nacks it when its payload matches
//! `failOn`.

use async_trait::async_trait;
use conduit_plugin_runtime::proto::opencdc::v1::{data, Data};
use conduit_plugin_runtime::{BoxError, Connector, Destination, RawConfig, Record, WriteFuture};

use crate::{settings, specification, FAIL_ON};

#[derive(Default)]
pub struct LogDestination {
    /// Payload that gets a record nacked; `None` acks everything.
    fail_on: Option<String>,
}

/// Raw data as (lossy) text; structured data in its debug form.
fn text(data: Option<&Data>) -> String {
    match data.and_then(|d| d.data.as_ref()) {
        Some(data::Data::RawData(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Some(data::Data::StructuredData(fields)) => format!("{fields:?}"),
        None => String::new(),
    }
}

impl LogDestination {
    /// The outcome for one record: `Ok` acks it, `Err(reason)` nacks it.
    fn write_one(&self, record: &Record) -> Result<(), String> {
        let position = String::from_utf8_lossy(&record.position);
        let key = text(record.key.as_ref());
        let payload = text(record.payload.as_ref().and_then(|p| p.after.as_ref()));
        if self.fail_on.as_deref() == Some(payload.as_str()) {
            tracing::warn!(%position, %key, "record rejected: its payload matches failOn");
            return Err(format!("payload {payload:?} matches {FAIL_ON}"));
        }
        tracing::info!(%position, %key, "record written");
        Ok(())
    }
}

#[async_trait]
impl Connector for LogDestination {
    async fn configure(&mut self, config: &RawConfig) -> Result<(), BoxError> {
        let settings = settings(config, &specification().destination_params)?;
        self.fail_on = Some(settings[FAIL_ON].clone()).filter(|value| !value.is_empty());
        Ok(())
    }

    async fn teardown(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

#[async_trait]
impl Destination for LogDestination {
    async fn open(&mut self) -> Result<(), BoxError> {
        tracing::info!(
            fail_on = self.fail_on.as_deref().unwrap_or(""),
            "destination opened"
        );
        Ok(())
    }

    fn write(&self, records: Vec<Record>) -> WriteFuture {
        // The work happens here, before returning: the records count as handed over in call
        // order. A destination doing I/O would start it here and finish it in the future;
        // the runtime awaits the futures in order and acks each record with its outcome.
        let outcomes: Vec<_> = records.iter().map(|r| self.write_one(r)).collect();
        Box::pin(async move { Ok(outcomes) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conduit_plugin_runtime::proto::opencdc::v1::Change;

    fn record(position: &str, payload: &str) -> Record {
        let raw = |text: &str| {
            Some(Data {
                data: Some(data::Data::RawData(text.as_bytes().to_vec().into())),
            })
        };
        Record {
            position: position.as_bytes().to_vec(),
            key: raw(position),
            payload: Some(Change {
                before: None,
                after: raw(payload),
            }),
            ..Record::default()
        }
    }

    #[tokio::test]
    async fn acks_records_and_nacks_the_matching_payload() {
        let mut destination = LogDestination::default();
        let config = RawConfig::from([(FAIL_ON.to_string(), "bad".to_string())]);
        destination.configure(&config).await.unwrap();
        destination.open().await.unwrap();
        let outcomes = destination
            .write(vec![
                record("1", "good"),
                record("2", "bad"),
                record("3", ""),
            ])
            .await
            .unwrap();
        assert_eq!(
            outcomes,
            [
                Ok(()),
                Err(r#"payload "bad" matches failOn"#.to_string()),
                Ok(())
            ]
        );
    }

    #[tokio::test]
    async fn acks_everything_by_default() {
        let mut destination = LogDestination::default();
        destination.configure(&RawConfig::new()).await.unwrap();
        let outcomes = destination.write(vec![record("1", "")]).await.unwrap();
        assert_eq!(outcomes, [Ok(())]);
    }
}
