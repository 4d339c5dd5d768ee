//! Sorting Kinesis' errors: what is retried within the invocation, what
//! counts against `MAX_ATTEMPTS`, and why a submission was not published.
//!
//! Throttling says "later", not "broken": it is retried until the deadline
//! and never uses up a record's attempts, so a saturated stream is kept at
//! its limit instead of handing submissions back to SQS.

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
