//! The seam between the publisher and Kinesis: the AWS SDK in production
//! (`aws::KinesisSink`), scripted outcomes in tests.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;

/// One entry of a PutRecords request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRecord {
    /// The submission's (or device's) id: all of a submission's records share it.
    pub partition_key: Arc<str>,
    /// Under `SHARD_PLACEMENT=keyed`, the submission's `ExplicitHashKey`
    /// (`EncodedSubmission::explicit_hash_key`), which places the record
    /// instead of the MD5 of `partition_key`; all of a submission's records
    /// share it.
    pub explicit_hash_key: Option<Arc<str>>,
    /// The record's JSON, a slice of the submission's one buffer.
    pub data: Bytes,
}

/// What Kinesis said about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryResult {
    /// Acknowledged with a sequence number.
    Written {
        /// The shard Kinesis stored it on (`ShardId`), if the answer named
        /// one: a submission acknowledged on two shards has lost its order
        /// for readers of one shard (`crate::batch`).
        shard_id: Option<String>,
    },
    /// Not written: Kinesis' `ErrorCode` and `ErrorMessage`.
    Failed {
        /// Kinesis' `ErrorCode`.
        code: String,
        /// Kinesis' `ErrorMessage`.
        message: String,
    },
}

/// A whole request that failed: no entry of it is known to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// Whether sending the same records again may succeed.
    pub retryable: bool,
    /// The error code (Kinesis', or the adapter's for transport failures).
    pub code: String,
    /// A short message, bounded for the log.
    pub message: String,
}

/// The seam between the publisher and Kinesis: the AWS SDK in production,
/// scripted outcomes in tests.
pub trait RecordSink: Sync {
    /// Sends one PutRecords request. On success the result has exactly one
    /// entry per record, in request order.
    fn put_records(
        &self,
        records: Vec<OutboundRecord>,
    ) -> impl Future<Output = Result<Vec<EntryResult>, CallError>> + Send;
}

impl EntryResult {
    /// Acknowledged on a shard Kinesis did not name.
    pub const WRITTEN: EntryResult = EntryResult::Written { shard_id: None };

    /// Whether the entry was acknowledged.
    pub fn is_written(&self) -> bool {
        matches!(self, EntryResult::Written { .. })
    }
}

/// The code given to an entry that Kinesis answered with neither an error
/// nor a sequence number: not known to be written, so retried.
pub const MISSING_SEQUENCE_NUMBER: &str = "MissingSequenceNumber";
