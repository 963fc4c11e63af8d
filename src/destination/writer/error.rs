//! Why a record was not written: the nack reasons of the writer, each naming the record by its
//! position.

pub(crate) use crate::destination::key::KeyError;
pub(crate) use crate::destination::settings::RouteError;

/// How a position is named in messages: as text when it is text.
pub(crate) fn describe_position(position: &[u8]) -> String {
    match std::str::from_utf8(position) {
        Ok(text) if !text.chars().any(char::is_control) => format!("{text:?}"),
        _ => {
            use base64::Engine;
            format!(
                "base64:{}",
                base64::engine::general_purpose::STANDARD.encode(position)
            )
        }
    }
}

/// The error of an [`Encode`](super::Encode) or [`Decode`](super::Decode) implementation: each
/// has its own enum (`FormatError`, `SchemaError`); the writer only needs its text.
pub(crate) type SeamError = Box<dyn std::error::Error + Send + Sync>;

/// Why a record could not be made into a Kinesis entry; the CLI's `produce --dry-run` reports
/// it as it is, the writer as a [`RecordError`] naming the record.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PrepareError {
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Format(SeamError),
}

impl PrepareError {
    /// The nack of the record at `position`.
    pub(crate) fn for_record(self, position: Vec<u8>) -> RecordError {
        match self {
            PrepareError::Route(error) => RecordError::Route { position, error },
            PrepareError::Key(error) => RecordError::Key { position, error },
            PrepareError::Format(error) => RecordError::Format { position, error },
        }
    }
}

/// A record that was not written, and why. Its text is the nack reason: it becomes text only
/// where the outcome is handed back to Conduit ([`WriteUnit::fail`](super::WriteUnit::fail)).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordError {
    /// Schema decoding (`sdk.schema.extract.*`) failed.
    #[error("record at position {}: {error}", describe_position(.position))]
    Schema { position: Vec<u8>, error: SeamError },
    /// No stream could be chosen for it.
    #[error("record at position {}: {error}", describe_position(.position))]
    Route {
        position: Vec<u8>,
        error: RouteError,
    },
    /// Its partition key or explicit hash key could not be derived.
    #[error("record at position {}: {error}", describe_position(.position))]
    Key { position: Vec<u8>, error: KeyError },
    /// The output format could not write it.
    #[error("record at position {}: {error}", describe_position(.position))]
    Format { position: Vec<u8>, error: SeamError },
    /// Its stream could not be described (or created).
    #[error("record at position {}: {reason}", describe_position(.position))]
    StreamUnavailable { position: Vec<u8>, reason: String },
    /// Larger than the stream takes.
    #[error(
        "record at position {} is {size} bytes (data plus partition key), over the limit of \
         {limit} bytes of stream {stream:?}: shrink it (for example with a processor), raise \
         the stream's MaxRecordSizeInKiB, or route it elsewhere",
        describe_position(.position)
    )]
    TooLarge {
        position: Vec<u8>,
        size: usize,
        limit: usize,
        stream: String,
    },
    /// In an aggregate larger than the stream takes (its limit is below aggregation.maxBytes).
    #[error(
        "record at position {} is in an aggregate of {size} bytes, over the limit of {limit} \
         bytes of stream {stream:?}: set aggregation.maxBytes to at most {limit}",
        describe_position(.position)
    )]
    AggregateTooLarge {
        position: Vec<u8>,
        size: usize,
        limit: usize,
        stream: String,
    },
    /// PutRecords answered a per-entry error that is not worth retrying.
    #[error(
        "record at position {} was rejected by stream {stream:?}: {code}: {message}",
        describe_position(.position)
    )]
    Rejected {
        position: Vec<u8>,
        stream: String,
        code: String,
        message: String,
    },
    /// The call failed because the stream does not exist.
    #[error(
        "record at position {}: stream {stream:?} does not exist ({reason})",
        describe_position(.position)
    )]
    StreamMissing {
        position: Vec<u8>,
        stream: String,
        reason: String,
    },
    /// The call failed with an error that is not worth retrying.
    #[error(
        "record at position {} was not written to stream {stream:?}: {reason}",
        describe_position(.position)
    )]
    CallRejected {
        position: Vec<u8>,
        stream: String,
        reason: String,
    },
    /// Every attempt failed with a retriable error; `reason` is the last one.
    #[error(
        "record at position {} was not written to stream {stream:?} after {attempts} attempts: \
         {reason}",
        describe_position(.position)
    )]
    RetriesExhausted {
        position: Vec<u8>,
        stream: String,
        attempts: u32,
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_named_as_text_when_they_are_text() {
        assert_eq!(describe_position(b"offset-7"), "\"offset-7\"");
        assert_eq!(describe_position(b"a\nb"), "base64:YQpi");
        assert_eq!(describe_position(&[0xff, 0]), "base64:/wA=");
    }

    #[test]
    fn messages_name_the_position_and_the_stream() {
        let position = b"p-1".to_vec();
        let stream = "orders".to_string();
        for (error, text) in [
            (
                RecordError::Route {
                    position: position.clone(),
                    error: RouteError::NoCollection,
                },
                "record at position \"p-1\": the record has no opencdc.collection metadata and \
                 neither streamName nor streamARN is configured, so there is no stream to write it \
                 to",
            ),
            (
                RecordError::StreamUnavailable {
                    position: position.clone(),
                    reason: "could not describe stream \"orders\": timeout".into(),
                },
                r#"record at position "p-1": could not describe stream "orders": timeout"#,
            ),
            (
                RecordError::TooLarge {
                    position: position.clone(),
                    size: 2_000_000,
                    limit: 1_048_576,
                    stream: stream.clone(),
                },
                "record at position \"p-1\" is 2000000 bytes (data plus partition key), over the \
                 limit of 1048576 bytes of stream \"orders\": shrink it (for example with a \
                 processor), raise the stream's MaxRecordSizeInKiB, or route it elsewhere",
            ),
            (
                RecordError::Rejected {
                    position: position.clone(),
                    stream: stream.clone(),
                    code: "KMSAccessDeniedException".into(),
                    message: "no".into(),
                },
                r#"record at position "p-1" was rejected by stream "orders": KMSAccessDeniedException: no"#,
            ),
            (
                RecordError::StreamMissing {
                    position: position.clone(),
                    stream: stream.clone(),
                    reason: "ResourceNotFoundException: gone".into(),
                },
                r#"record at position "p-1": stream "orders" does not exist (ResourceNotFoundException: gone)"#,
            ),
            (
                RecordError::CallRejected {
                    position: position.clone(),
                    stream: stream.clone(),
                    reason: "ValidationException: bad".into(),
                },
                r#"record at position "p-1" was not written to stream "orders": ValidationException: bad"#,
            ),
            (
                RecordError::RetriesExhausted {
                    position,
                    stream,
                    attempts: 3,
                    reason: "InternalFailure: x".into(),
                },
                r#"record at position "p-1" was not written to stream "orders" after 3 attempts: InternalFailure: x"#,
            ),
        ] {
            assert_eq!(error.to_string(), text);
        }
    }
}
