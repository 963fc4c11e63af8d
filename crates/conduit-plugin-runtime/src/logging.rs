//! Logs as JSON lines on stderr in the shape go-plugin parses for Conduit: `@level`,
//! `@message`, `@timestamp` (exactly six fractional digits, or go-plugin treats the line as
//! plain text), plus the event's fields.

use std::io::Write;

use serde_json::{Map, Value};
use time::format_description::FormatItem;
use time::macros::format_description;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

const TIMESTAMP: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// Installs the JSON-lines logger on stderr as the global subscriber.
pub fn init(level: LevelFilter) {
    let _ = tracing_subscriber::registry()
        .with(JsonLines::new(std::io::stderr).with_filter(filter(level)))
        .try_init();
}

/// The transport crates log every frame at debug and trace; only their warnings matter to a
/// pipeline operator, whatever level the connector itself logs at.
fn filter(level: LevelFilter) -> Targets {
    const TRANSPORT: [&str; 8] = [
        "h2",
        "hyper",
        "hyper_util",
        "tower",
        "tonic",
        "rustls",
        "aws_smithy_runtime",
        "aws_smithy_http_client",
    ];
    let quiet = level.min(LevelFilter::WARN);
    Targets::new()
        .with_default(level)
        .with_targets(TRANSPORT.map(|target| (target, quiet)))
        .with_target("aws_config", level.min(LevelFilter::INFO))
}

/// A layer that writes one JSON object per event to the writer its factory returns.
pub struct JsonLines<W> {
    make_writer: W,
}

impl<W> JsonLines<W> {
    /// A layer writing to what `make_writer` returns for each line (e.g. `std::io::stderr`).
    pub fn new(make_writer: W) -> Self {
        JsonLines { make_writer }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// Formats one log line (without the newline).
pub fn format_line(
    level: &Level,
    message: &str,
    fields: Map<String, Value>,
    now: time::OffsetDateTime,
) -> String {
    let mut object = Map::with_capacity(fields.len() + 3);
    object.insert("@level".into(), Value::from(level_name(level)));
    object.insert("@message".into(), Value::from(message));
    let timestamp = now
        .to_offset(time::UtcOffset::UTC)
        .format(TIMESTAMP)
        .unwrap_or_default();
    object.insert("@timestamp".into(), Value::from(timestamp));
    for (key, value) in fields {
        // Fields must not shadow the keys go-plugin interprets.
        let key = if key.starts_with('@') {
            format!("field.{key}")
        } else {
            key
        };
        object.entry(key).or_insert(value);
    }
    Value::Object(object).to_string()
}

impl<S, W, O> Layer<S> for JsonLines<W>
where
    S: Subscriber,
    W: Fn() -> O + Send + Sync + 'static,
    O: Write,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut visitor = FieldCollector::default();
        event.record(&mut visitor);
        let mut fields = visitor.fields;
        fields.insert("target".into(), Value::from(event.metadata().target()));
        let mut line = format_line(
            event.metadata().level(),
            &visitor.message,
            fields,
            time::OffsetDateTime::now_utc(),
        );
        line.push('\n');
        // One write per line so concurrent events never interleave within a line.
        let _ = (self.make_writer)().write_all(line.as_bytes());
    }
}

#[derive(Default)]
struct FieldCollector {
    message: String,
    fields: Map<String, Value>,
}

impl Visit for FieldCollector {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields.insert(field.name().into(), Value::from(value));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().into(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().into(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().into(), Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.insert(field.name().into(), Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let text = super::connector::error_chain(value);
        self.fields.insert(field.name().into(), Value::from(text));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields
                .insert(field.name().into(), Value::from(format!("{value:?}")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn timestamp_has_exactly_six_fraction_digits() {
        let now = time::macros::datetime!(2026-08-01 10:00:00.123456789 UTC);
        let line = format_line(&Level::INFO, "hello", Map::new(), now);
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["@timestamp"], "2026-08-01T10:00:00.123456Z");
        assert_eq!(value["@level"], "info");
        assert_eq!(value["@message"], "hello");
        let whole = time::macros::datetime!(2026-08-01 10:00:00 UTC);
        let line = format_line(&Level::WARN, "x", Map::new(), whole);
        assert!(
            line.contains("\"@timestamp\":\"2026-08-01T10:00:00.000000Z\""),
            "{line}"
        );
    }

    #[test]
    fn events_become_json_lines_with_fields() {
        let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = buffer.clone();
        let layer = JsonLines::new(move || SharedWriter(sink.clone()));
        let subscriber = tracing_subscriber::registry().with(layer.with_filter(LevelFilter::DEBUG));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(stream = "orders", count = 3, "opened stream");
            tracing::trace!("filtered out");
            tracing::warn!(error = %"boom", "write failed");
        });
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["@level"], "info");
        assert_eq!(lines[0]["@message"], "opened stream");
        assert_eq!(lines[0]["stream"], "orders");
        assert_eq!(lines[0]["count"], 3);
        assert_eq!(lines[1]["@level"], "warn");
        assert_eq!(lines[1]["error"], "boom");
    }

    struct SharedWriter(Arc<Mutex<Vec<u8>>>);

    impl Write for SharedWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
