//! The retry policy, in one place: what is retried within the invocation,
//! which failures count against `MAX_ATTEMPTS`, how long a retry waits, what
//! the AWS SDK retries on its own, and what happens to what is left when the
//! invocation ends. The code that applies it only asks this module:
//! [`crate::aws::kinesis`] sorts SDK errors into codes, `state` counts a
//! lane's attempts, [`crate::aws`] builds the SDK clients.
//!
//! # What is retried
//!
//! | failure | retried in this invocation | counts against `MAX_ATTEMPTS` |
//! | --- | --- | --- |
//! | an entry refused with `ProvisionedThroughputExceededException` | yes | no: throttling |
//! | an entry refused with `InternalFailure`, `InternalFailureException`, `ServiceUnavailable`, or with no sequence number | yes | yes |
//! | an entry refused with any other code | no: the submission fails at once | — |
//! | a request refused for throttling (`ProvisionedThroughputExceededException`, any code containing `Throttl`) | yes | not for the [throttling codes](is_throttling_code) |
//! | a request refused with `InternalFailure`, `ServiceUnavailable`, HTTP 5xx or 429 | yes | yes |
//! | a request refused for access, a missing stream, a bad argument or an unusable KMS key ([`REFUSED_REQUEST_CODES`]) | no | — |
//! | no answer: a timeout, a connection failure, an unreadable answer, a call abandoned at the deadline (`DeadlineReached`), an answer with the wrong number of entries (`MalformedResponse`) | yes | yes |
//! | a request the SDK could not build | no | — |
//!
//! Throttling says "later", not "broken": it is retried until the deadline
//! and never uses up a record's attempts, so a saturated stream is kept at
//! its limit instead of handing submissions back to SQS. Every other
//! retryable failure is retried at most `MAX_ATTEMPTS` times per record.
//!
//! # How long a retry waits
//!
//! [`Backoff`]: a delay drawn uniformly from zero to `RETRY_BASE_DELAY_MS`
//! doubling up to `RETRY_MAX_DELAY_MS` (full jitter). A retry that would
//! start after the invocation's stop time is not waited for: the submission
//! fails with [`FailureCause::Deadline`].
//!
//! # What the SDK retries on its own
//!
//! [`KINESIS_SDK_RETRIES`] and [`SQS_SDK_RETRIES`], applied where the
//! clients are built ([`crate::aws`]).
//!
//! # After the invocation
//!
//! A submission that failed part-way on a standard queue goes back to its
//! queue with its progress ([`crate::resume`]); its copy waits before SQS
//! delivers it, on a curve of its own in seconds ([`crate::resume::CopyDelay`]:
//! `RESUME_BASE_DELAY_SECONDS` doubling up to `RESUME_MAX_DELAY_SECONDS`,
//! equal jitter). Anything else that failed is named in `batchItemFailures`,
//! and SQS redelivers it after the visibility timeout, up to the queue's
//! `MaxReceiveCount`.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::Config;
use crate::publisher::sink::MISSING_SEQUENCE_NUMBER;

/// Per-entry error codes worth retrying in this invocation. Any other code
/// fails the submission at once (SQS redelivers it later).
pub fn is_retryable_entry_code(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "InternalFailure"
            | "InternalFailureException"
            | "ServiceUnavailable"
            | MISSING_SEQUENCE_NUMBER
    )
}

/// Throttling codes, per entry or per request: retried until the deadline,
/// without counting against `MAX_ATTEMPTS`.
pub fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "KMSThrottlingException"
            | "ThrottlingException"
            | "LimitExceededException"
    )
}

/// Whole-request errors no retry within the invocation can fix: the
/// function may not write to the stream, the stream or its key is missing
/// or unusable, or the request is wrong. SQS redelivers the submission
/// later, when an operator may have fixed the cause.
pub const REFUSED_REQUEST_CODES: [&str; 8] = [
    "AccessDeniedException",
    "ResourceNotFoundException",
    "InvalidArgumentException",
    "KMSAccessDeniedException",
    "KMSDisabledException",
    "KMSInvalidStateException",
    "KMSNotFoundException",
    "KMSOptInRequired",
];

/// Whether a PutRecords request that Kinesis answered with the error `code`
/// (HTTP `status`, if any) is retried.
pub fn is_retryable_request_code(code: &str, status: Option<u16>) -> bool {
    if REFUSED_REQUEST_CODES.contains(&code) {
        return false;
    }
    code == "ProvisionedThroughputExceededException"
        || code.contains("Throttl")
        || code == "InternalFailure"
        || code == "ServiceUnavailable"
        || status.is_some_and(|s| s >= 500 || s == 429)
}

/// What the AWS SDK retries on its own, for one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdkRetries {
    /// Nothing: every attempt is the caller's.
    Off,
    /// The retries of the loaded AWS configuration: the SDK's standard mode
    /// (3 attempts) unless `AWS_MAX_ATTEMPTS`, `AWS_RETRY_MODE` or the
    /// profile say otherwise.
    AsLoaded,
}

/// Kinesis: none. The publisher retries per record and knows the
/// invocation's deadline; the SDK does not, and a request it repeats on its
/// own would spend the time left without the publisher knowing, and send
/// records again that the publisher has already moved past.
pub const KINESIS_SDK_RETRIES: SdkRetries = SdkRetries::Off;

/// SQS (the rejects queue, re-sends to the source queue): the SDK's
/// retries, because nothing else retries these sends within the invocation;
/// all attempts of one request together are bounded by one call timeout
/// (`KINESIS_CALL_TIMEOUT_MS`), the most the handler waits for them.
pub const SQS_SDK_RETRIES: SdkRetries = SdkRetries::AsLoaded;

/// How the publisher retries a record: at most `max_attempts` counted
/// failures, each followed by a wait drawn from `backoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `MAX_ATTEMPTS`: failed sends of one record within the invocation,
    /// throttling not counted.
    pub max_attempts: u32,
    /// `RETRY_BASE_DELAY_MS` up to `RETRY_MAX_DELAY_MS`.
    pub backoff: Backoff,
}

impl RetryPolicy {
    /// The policy the settings describe.
    pub fn from_config(config: &Config) -> Self {
        RetryPolicy {
            max_attempts: config.max_attempts,
            backoff: Backoff::new(config.retry_base_delay, config.retry_max_delay),
        }
    }

    /// What follows a failed send of a record, given whether the failure
    /// is `retryable` and the record's `attempts` so far (this one
    /// included): the instant to send it again, before `stop_at`, or why
    /// its submission fails.
    pub fn after_failure(
        &self,
        retryable: bool,
        attempts: &Attempts,
        stop_at: Instant,
    ) -> Result<Instant, FailureCause> {
        if !retryable {
            return Err(FailureCause::NonRetryable);
        }
        if attempts.counted >= self.max_attempts {
            return Err(FailureCause::AttemptsExhausted);
        }
        let at = Instant::now() + self.backoff.delay(attempts.all);
        if at < stop_at {
            Ok(at)
        } else {
            Err(FailureCause::Deadline)
        }
    }
}

/// The failed sends of the record a lane is at; a record written starts
/// the count again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempts {
    /// Every failed send: sets the backoff, so that throttling too waits
    /// longer each time.
    all: u32,
    /// Those that count against `MAX_ATTEMPTS`: all but throttling.
    counted: u32,
}

impl Attempts {
    /// Notes a failed send that ended with the error `code`.
    pub fn failed(&mut self, code: &str) {
        self.all += 1;
        // Throttling says "later", not "broken": only the deadline bounds it.
        if !is_throttling_code(code) {
            self.counted += 1;
        }
    }
}

/// Exponential backoff ceilings from `base` doubling up to `max`, with full
/// jitter.
///
/// When Kinesis throttles a shard, every submission on it failed at the
/// same moment; retrying them after the same delay would throttle them
/// again together. Full jitter (a delay drawn uniformly from zero to the
/// exponential ceiling) spreads the retries out, which is what AWS
/// recommends for throttled clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

impl Backoff {
    /// A backoff from `base` up to `max` (a `max` below `base` is taken as `base`).
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max: max.max(base),
        }
    }

    /// The largest delay before retry number `attempt` (1 for the first
    /// retry): `min(max, base * 2^(attempt-1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// A delay drawn uniformly from `0..=ceiling(attempt)`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt).as_micros();
        let ceiling = u64::try_from(ceiling).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(0..=ceiling))
    }
}

/// Why a submission was not fully published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause {
    /// Kinesis refused a record with an error not worth retrying now.
    NonRetryable,
    /// A record failed `MAX_ATTEMPTS` times for reasons other than throttling.
    AttemptsExhausted,
    /// The invocation's deadline left no time to finish.
    Deadline,
    /// An earlier submission of the same FIFO message group failed.
    PredecessorFailed,
}

impl FailureCause {
    /// The cause's code in log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCause::NonRetryable => "non_retryable_error",
            FailureCause::AttemptsExhausted => "attempts_exhausted",
            FailureCause::Deadline => "deadline",
            FailureCause::PredecessorFailed => "predecessor_failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_errors_are_sorted_as_the_table_says() {
        for refused in REFUSED_REQUEST_CODES {
            assert!(!is_retryable_request_code(refused, Some(500)), "{refused}");
        }
        for retried in [
            ("ProvisionedThroughputExceededException", Some(400)),
            ("KMSThrottlingException", Some(400)),
            ("InternalFailure", Some(400)),
            ("ServiceUnavailable", None),
            ("HTTP503", Some(503)),
            ("HTTP429", Some(429)),
        ] {
            assert!(
                is_retryable_request_code(retried.0, retried.1),
                "{retried:?}"
            );
        }
        assert!(!is_retryable_request_code("ValidationException", Some(400)));
    }

    #[test]
    fn throttling_waits_longer_each_time_but_uses_up_no_attempt() {
        let mut attempts = Attempts::default();
        attempts.failed("ProvisionedThroughputExceededException");
        attempts.failed("KMSThrottlingException");
        attempts.failed("InternalFailure");
        assert_eq!((attempts.all, attempts.counted), (3, 1));
        let policy = RetryPolicy {
            max_attempts: 1,
            backoff: Backoff::new(Duration::from_millis(50), Duration::from_millis(50)),
        };
        let far = Instant::now() + Duration::from_secs(60);
        assert_eq!(
            policy.after_failure(true, &attempts, far),
            Err(FailureCause::AttemptsExhausted)
        );
        assert_eq!(
            policy.after_failure(false, &Attempts::default(), far),
            Err(FailureCause::NonRetryable)
        );
        let throttled = Attempts { all: 5, counted: 0 };
        assert!(policy.after_failure(true, &throttled, far).is_ok());
        assert_eq!(
            policy.after_failure(true, &throttled, Instant::now()),
            Err(FailureCause::Deadline),
            "a retry after the stop time is not waited for"
        );
    }

    #[test]
    fn ceiling_doubles_from_base_and_stops_at_max() {
        let b = Backoff::new(Duration::from_millis(50), Duration::from_millis(2_000));
        let ceilings: Vec<u128> = (1..=8).map(|a| b.ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(
            b.ceiling(200),
            Duration::from_millis(2_000),
            "no overflow on huge attempts"
        );
    }

    #[test]
    fn delays_are_jittered_within_the_ceiling() {
        let b = Backoff::new(Duration::from_millis(50), Duration::from_millis(2_000));
        let delays: Vec<Duration> = (0..200).map(|_| b.delay(3)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(200)));
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(
            distinct.len() > 100,
            "full jitter spreads delays: {} distinct",
            distinct.len()
        );
    }
}
