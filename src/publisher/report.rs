//! What publishing did: one outcome per submission, and the counters.

use crate::publisher::retry::FailureCause;

/// A submission that was not fully published: which record and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishFailure {
    /// Why.
    pub cause: FailureCause,
    /// The first record not acknowledged, as an index into
    /// `EncodedSubmission::records` (its events): records before it were
    /// written. Under `RECORD_FORMAT=aggregated`, the first event of the
    /// first aggregated record not acknowledged.
    pub sequence: usize,
    /// The last error Kinesis reported for that record, if any.
    pub code: Option<String>,
    /// The last error message Kinesis reported for that record, if any.
    pub message: Option<String>,
}

/// The outcome of one submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every record acknowledged with a sequence number.
    Published,
    /// Not every record was acknowledged: which and why.
    Failed(PublishFailure),
}

/// Counters for metrics and the invocation summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishStats {
    /// PutRecords requests made.
    pub calls: u64,
    /// Records sent (a record sent twice counts twice).
    pub records_sent: u64,
    /// Records sent again after an earlier copy failed or went unanswered.
    pub records_retried: u64,
    /// Records acknowledged (a record retried and acknowledged twice counts twice).
    pub records_written: u64,
}

impl std::ops::AddAssign for PublishStats {
    fn add_assign(&mut self, other: PublishStats) {
        self.calls += other.calls;
        self.records_sent += other.records_sent;
        self.records_retried += other.records_retried;
        self.records_written += other.records_written;
    }
}

#[derive(Debug)]
/// What one call of [`crate::publisher::Publisher::publish`] did.
pub struct PublishReport {
    /// One per submission passed in; `None` only for a submission that no
    /// lane named.
    pub outcomes: Vec<Option<Outcome>>,
    /// Per submission, the shards Kinesis acknowledged its records on, in
    /// the order first named (empty where the answers named none). More
    /// than one: the stream ignored its partition key, or was resharded.
    pub shards: Vec<Vec<String>>,
    /// The counters.
    pub stats: PublishStats,
}
