//! Enhanced fan-out consumers: reuse one of a stable name, register it only when missing.

use std::time::Duration;

use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_kinesis::types::ConsumerStatus;
use aws_sdk_kinesis::Client;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConsumerError {
    #[error(
        "could not register consumer {name:?} on stream {stream_arn}: {detail}. Kinesis allows 20 \
         consumers per stream; deregister unused ones or set consumerName / consumerARN to an existing one"
    )]
    Register {
        name: String,
        stream_arn: String,
        detail: String,
    },
    #[error("consumer {name:?} did not become ACTIVE within {waited:?}")]
    NotActive { name: String, waited: Duration },
    #[error("could not look up consumer {name:?}: {detail}")]
    Describe { name: String, detail: String },
    #[error("could not deregister consumer {name:?}: {detail}")]
    Deregister { name: String, detail: String },
}

const ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// The ARN of an ACTIVE consumer of this name, registering it if it does not exist.
pub(crate) async fn ensure(
    client: &Client,
    stream_arn: &str,
    name: &str,
) -> Result<String, ConsumerError> {
    let started = tokio::time::Instant::now();
    let mut registered = false;
    loop {
        match describe(client, stream_arn, name).await? {
            Some((arn, ConsumerStatus::Active)) => {
                if registered {
                    tracing::info!(consumer = %name, "registered enhanced fan-out consumer");
                } else {
                    tracing::info!(consumer = %name, "reusing enhanced fan-out consumer");
                }
                return Ok(arn);
            }
            // Being created (maybe by us a moment ago) or deleted: wait and look again.
            Some((_, _)) => {}
            None if !registered => {
                match client
                    .register_stream_consumer()
                    .stream_arn(stream_arn)
                    .consumer_name(name)
                    .send()
                    .await
                {
                    Ok(_) => registered = true,
                    // Registered concurrently by another process of the same connector.
                    Err(e) if e.code() == Some("ResourceInUseException") => registered = true,
                    Err(e) => {
                        return Err(ConsumerError::Register {
                            name: name.into(),
                            stream_arn: stream_arn.into(),
                            detail: DisplayErrorContext(&e).to_string(),
                        })
                    }
                }
            }
            None => {}
        }
        if started.elapsed() > ACTIVE_TIMEOUT {
            return Err(ConsumerError::NotActive {
                name: name.into(),
                waited: ACTIVE_TIMEOUT,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn describe(
    client: &Client,
    stream_arn: &str,
    name: &str,
) -> Result<Option<(String, ConsumerStatus)>, ConsumerError> {
    match client
        .describe_stream_consumer()
        .stream_arn(stream_arn)
        .consumer_name(name)
        .send()
        .await
    {
        Ok(output) => Ok(output
            .consumer_description
            .map(|d| (d.consumer_arn, d.consumer_status))),
        Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
        Err(e) => Err(ConsumerError::Describe {
            name: name.into(),
            detail: DisplayErrorContext(&e).to_string(),
        }),
    }
}

/// Deregisters the consumer; a consumer that does not exist is not an error.
pub(crate) async fn deregister(
    client: &Client,
    stream_arn: &str,
    name: &str,
) -> Result<bool, ConsumerError> {
    match client
        .deregister_stream_consumer()
        .stream_arn(stream_arn)
        .consumer_name(name)
        .send()
        .await
    {
        Ok(_) => {
            tracing::info!(consumer = %name, "deregistered enhanced fan-out consumer");
            Ok(true)
        }
        Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(false),
        Err(e) => Err(ConsumerError::Deregister {
            name: name.into(),
            detail: DisplayErrorContext(&e).to_string(),
        }),
    }
}
