//! The retry policy and how PutRecords outcomes are judged. Pure logic, no I/O.

use std::time::Duration;

/// Exponential backoff with jitter over the upper half of each wait, up to a number of
/// attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the wait after `failed_attempts` attempts (1 = after the first).
    pub(crate) fn backoff_ceiling(&self, failed_attempts: u32) -> Duration {
        let exponent = failed_attempts.saturating_sub(1).min(30);
        self.initial_backoff
            .saturating_mul(1u32 << exponent)
            .min(self.max_backoff)
    }

    /// A random wait in `[ceiling/2, ceiling]`: jitter spreads retries of many writers while
    /// keeping the wait long enough to let a throttled shard recover.
    pub(crate) fn backoff(&self, failed_attempts: u32) -> Duration {
        let ceiling = self.backoff_ceiling(failed_attempts);
        let half = ceiling / 2;
        half + ceiling.saturating_sub(half).mul_f64(rand::random::<f64>())
    }

    pub(crate) fn may_retry(&self, attempts_made: u32) -> bool {
        attempts_made < self.max_attempts
    }
}

/// What to do with one entry of a PutRecords response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryVerdict {
    Written,
    Retry { code: String, message: String },
    Reject { code: String, message: String },
}

/// Per-entry error codes worth another attempt.
const RETRYABLE_ENTRY_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "InternalFailure",
    "InternalFailureException",
    "ServiceUnavailable",
    "KMSThrottlingException",
];

pub(crate) fn entry_verdict(error_code: Option<&str>, error_message: Option<&str>) -> EntryVerdict {
    match error_code.filter(|c| !c.is_empty()) {
        None => EntryVerdict::Written,
        Some(code) => {
            let code = code.to_string();
            let message = error_message.unwrap_or_default().to_string();
            if RETRYABLE_ENTRY_CODES.contains(&code.as_str()) {
                EntryVerdict::Retry { code, message }
            } else {
                EntryVerdict::Reject { code, message }
            }
        }
    }
}

/// How a failed PutRecords call failed, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallFailure {
    /// The request never got an answer: connection refused or lost, timeout.
    Transport,
    /// The service answered with an error status.
    Service { status: u16 },
    /// The request could not be built or signed (credentials, configuration).
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallVerdict {
    /// Kinesis answered with an error worth another attempt: the attempt counts against
    /// `retry.maxAttempts`.
    RetryAll,
    /// No answer at all (connection refused or lost, timeout): the endpoint is away, not the
    /// records at fault, so the call is retried until it answers without spending attempts.
    /// Nacking would only stop the pipeline on an outage it would recover from by itself.
    RetryUntilReachable,
    StreamMissing,
    RejectAll,
}

/// Call-level error codes worth another attempt.
const RETRYABLE_CALL_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "KMSThrottlingException",
    "InternalFailure",
    "InternalFailureException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "ExpiredTokenException",
];

pub(crate) fn call_verdict(failure: CallFailure, code: Option<&str>) -> CallVerdict {
    if code == Some("ResourceNotFoundException") {
        return CallVerdict::StreamMissing;
    }
    if code.is_some_and(|c| RETRYABLE_CALL_CODES.contains(&c)) {
        return CallVerdict::RetryAll;
    }
    match failure {
        CallFailure::Transport => CallVerdict::RetryUntilReachable,
        CallFailure::Service { status } if status >= 500 || status == 429 => CallVerdict::RetryAll,
        // Credentials may come from a provider that recovers (instance roles, SSO refresh).
        CallFailure::Local => CallVerdict::RetryAll,
        CallFailure::Service { .. } => CallVerdict::RejectAll,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        assert_eq!(policy.backoff_ceiling(1), Duration::from_millis(100));
        assert_eq!(policy.backoff_ceiling(2), Duration::from_millis(200));
        assert_eq!(policy.backoff_ceiling(4), Duration::from_millis(800));
        assert_eq!(policy.backoff_ceiling(5), Duration::from_secs(1));
        assert_eq!(policy.backoff_ceiling(500), Duration::from_secs(1));
        for attempt in 1..8 {
            let wait = policy.backoff(attempt);
            let ceiling = policy.backoff_ceiling(attempt);
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "{wait:?} vs {ceiling:?}"
            );
        }
        assert!(policy.may_retry(4));
        assert!(!policy.may_retry(5));
    }

    #[test]
    fn entry_verdicts() {
        assert_eq!(entry_verdict(None, None), EntryVerdict::Written);
        assert_eq!(entry_verdict(Some(""), None), EntryVerdict::Written);
        assert!(matches!(
            entry_verdict(
                Some("ProvisionedThroughputExceededException"),
                Some("Rate exceeded")
            ),
            EntryVerdict::Retry { .. }
        ));
        assert!(matches!(
            entry_verdict(Some("InternalFailure"), None),
            EntryVerdict::Retry { .. }
        ));
        assert_eq!(
            entry_verdict(Some("KMSAccessDeniedException"), Some("no")),
            EntryVerdict::Reject {
                code: "KMSAccessDeniedException".into(),
                message: "no".into()
            }
        );
    }

    #[test]
    fn call_verdicts() {
        assert_eq!(
            call_verdict(CallFailure::Transport, None),
            CallVerdict::RetryUntilReachable
        );
        assert_eq!(
            call_verdict(CallFailure::Local, None),
            CallVerdict::RetryAll,
            "credentials that do not resolve spend attempts: they may be misconfigured"
        );
        assert_eq!(
            call_verdict(
                CallFailure::Service { status: 400 },
                Some("ProvisionedThroughputExceededException")
            ),
            CallVerdict::RetryAll
        );
        assert_eq!(
            call_verdict(CallFailure::Service { status: 503 }, None),
            CallVerdict::RetryAll
        );
        assert_eq!(
            call_verdict(
                CallFailure::Service { status: 400 },
                Some("ResourceNotFoundException")
            ),
            CallVerdict::StreamMissing
        );
        assert_eq!(
            call_verdict(
                CallFailure::Service { status: 400 },
                Some("ValidationException")
            ),
            CallVerdict::RejectAll
        );
    }
}
