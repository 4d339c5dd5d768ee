//! The Kinesis adapter: one PutRecords request per call of the publisher.
//!
//! The answer is read entry by entry: an entry is written only if it has a
//! sequence number and no error code, and it keeps the `ShardId` the answer
//! names for it. `FailedRecordCount` and the HTTP status
//! are not trusted (an emulator reports `FailedRecordCount: 1` when every
//! entry failed). A whole-request error becomes a code (the service's, or
//! one naming what went wrong on the way), retryable or not as
//! [`crate::publisher::retry`] says.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};

use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::operation::put_records::{PutRecordsError, PutRecordsOutput};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, RecordDistributionStrategy};

use crate::config::StreamRef;
use crate::publisher::retry::is_retryable_request_code;
use crate::publisher::{
    CallError, EntryResult, MISSING_SEQUENCE_NUMBER, OutboundRecord, RecordSink,
};

#[derive(Debug, Clone)]
/// The Kinesis outlet: PutRecords through the AWS SDK, to one stream.
pub struct KinesisSink {
    client: aws_sdk_kinesis::Client,
    stream: StreamRef,
    /// `RECORD_FORMAT=aggregated`: whether the stream is known to place
    /// records by key. Until it is, nothing is put (see
    /// [`KinesisSink::refusing_auto`]).
    by_key: Option<Arc<AtomicBool>>,
}

impl KinesisSink {
    /// Publishes to `stream` (a name or an ARN) with `client`.
    pub fn new(client: aws_sdk_kinesis::Client, stream: StreamRef) -> Self {
        KinesisSink {
            client,
            stream,
            by_key: None,
        }
    }

    /// The sink for aggregated records: it puts none before
    /// DescribeStreamSummary says the stream places records by key, and none
    /// at all to a stream with service-managed distribution (`AUTO`), whose
    /// aggregated records would land on shards their user records' keys do
    /// not hash to, where the KCL drops those user records. An `AUTO` stream
    /// fails every call, non-retryably, with an ERROR line; a summary that
    /// cannot be read fails the call retryably, and the next call asks
    /// again. Once known, the answer is kept for the execution environment.
    pub fn refusing_auto(mut self) -> Self {
        self.by_key = Some(Arc::new(AtomicBool::new(false)));
        self
    }

    async fn ensure_placed_by_key(&self, by_key: &AtomicBool) -> Result<(), CallError> {
        if by_key.load(AtomicOrdering::Relaxed) {
            return Ok(());
        }
        match self.record_distribution().await {
            Ok(RecordDistribution::Auto) => {
                tracing::error!(
                    stream = self.stream_label(),
                    record_distribution_strategy = "AUTO",
                    reason = AUTO_REFUSED,
                    "refusing to publish aggregated records (RECORD_FORMAT=aggregated) to a stream \
                     with service-managed record distribution: the KCL drops the user records of an \
                     aggregated record that lands outside their key's shard; switch the stream to \
                     USER_PARTITION_KEY or set RECORD_FORMAT=per-event"
                );
                Err(CallError {
                    retryable: false,
                    code: AUTO_REFUSED.into(),
                    message: "the stream's record distribution is AUTO".into(),
                })
            }
            Ok(_) => {
                by_key.store(true, AtomicOrdering::Relaxed);
                Ok(())
            }
            Err(error) => Err(CallError {
                retryable: true,
                code: DISTRIBUTION_UNKNOWN.into(),
                message: crate::logging::bounded(
                    &format!("aggregated records wait for DescribeStreamSummary: {error}"),
                    256,
                ),
            }),
        }
    }
}

/// The error code of a call refused because the stream is `AUTO`.
pub const AUTO_REFUSED: &str = "AggregatedRecordsOnAutoStream";
/// The error code of a call that waits for the stream's distribution.
const DISTRIBUTION_UNKNOWN: &str = "RecordDistributionUnknown";

/// How the stream places records, as DescribeStreamSummary says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordDistribution {
    /// By partition key (and `ExplicitHashKey`): `USER_PARTITION_KEY`, or no
    /// strategy named (a provisioned stream, an emulator).
    ByKey,
    /// `AUTO`: Kinesis ignores partition keys and `ExplicitHashKey`, and a
    /// submission's records land on any shard.
    Auto,
    /// A strategy this SDK does not know.
    Other(String),
}

impl KinesisSink {
    /// The stream's record distribution strategy: one DescribeStreamSummary
    /// call; an error is its code and message.
    pub async fn record_distribution(&self) -> Result<RecordDistribution, String> {
        let request = self.client.describe_stream_summary();
        let request = match &self.stream {
            StreamRef::Name(name) => request.stream_name(name),
            StreamRef::Arn(arn) => request.stream_arn(arn),
        };
        let output = request.send().await.map_err(|e| {
            let code = e.code().unwrap_or("Unknown").to_owned();
            let detail = (e.message().map(str::to_owned))
                .unwrap_or_else(|| DisplayErrorContext(&e).to_string());
            crate::logging::bounded(&format!("{code}: {detail}"), 256)
        })?;
        let strategy = (output.stream_description_summary())
            .and_then(|summary| summary.record_distribution_strategy());
        Ok(match strategy {
            None | Some(RecordDistributionStrategy::UserPartitionKey) => RecordDistribution::ByKey,
            Some(RecordDistributionStrategy::Auto) => RecordDistribution::Auto,
            Some(other) => RecordDistribution::Other(other.as_str().to_owned()),
        })
    }

    /// The stream's name or ARN, for log lines.
    fn stream_label(&self) -> &str {
        match &self.stream {
            StreamRef::Name(name) => name,
            StreamRef::Arn(arn) => arn,
        }
    }

    /// Reads the stream's record distribution once and says at ERROR if it
    /// ignores partition keys (`crate::shard_split`). Meant to be spawned at
    /// start-up, once per execution environment: no invocation waits for
    /// it, and a refusal, throttle or timeout is one WARN line, nothing
    /// more (splits still show in `SubmissionsSplitAcrossShards`). A by-key
    /// answer is kept for [`KinesisSink::refusing_auto`]'s first call.
    pub async fn report_record_distribution(self) -> Result<RecordDistribution, String> {
        let found = self.record_distribution().await;
        match &found {
            Ok(RecordDistribution::Auto) => tracing::error!(
                stream = self.stream_label(),
                record_distribution_strategy = "AUTO",
                "the stream uses service-managed record distribution: Kinesis ignores partition \
                 keys and ExplicitHashKey, so a submission's records land on several shards and \
                 no reader sees them in order; switch it back to USER_PARTITION_KEY \
                 (UpdateStreamRecordDistributionStrategy) to keep per-submission order"
            ),
            Ok(RecordDistribution::Other(strategy)) => tracing::warn!(
                stream = self.stream_label(),
                record_distribution_strategy = strategy.as_str(),
                "the stream uses a record distribution strategy this function does not know; \
                 per-submission order holds only if records are placed by partition key"
            ),
            Ok(RecordDistribution::ByKey) => {
                // A sink for aggregated records shares `by_key` with its
                // clones: its first PutRecords need not ask again.
                if let Some(by_key) = &self.by_key {
                    by_key.store(true, AtomicOrdering::Relaxed);
                }
                tracing::debug!(
                    stream = self.stream_label(),
                    "the stream places records by partition key"
                )
            }
            Err(error) => tracing::warn!(
                stream = self.stream_label(),
                error = error.as_str(),
                "could not read the stream's record distribution strategy \
                 (DescribeStreamSummary); a stream that ignores partition keys still shows \
                 as SubmissionsSplitAcrossShards"
            ),
        }
        found
    }
}

impl RecordSink for KinesisSink {
    async fn put_records(
        &self,
        records: Vec<OutboundRecord>,
    ) -> Result<Vec<EntryResult>, CallError> {
        if let Some(by_key) = &self.by_key {
            self.ensure_placed_by_key(by_key).await?;
        }
        let mut entries = Vec::with_capacity(records.len());
        for record in records {
            let entry = PutRecordsRequestEntry::builder()
                .data(Blob::new(record.data.to_vec()))
                .partition_key(record.partition_key.as_ref())
                .set_explicit_hash_key(record.explicit_hash_key.as_deref().map(str::to_owned))
                .build()
                .map_err(|e| CallError {
                    retryable: false,
                    code: "InvalidRequest".into(),
                    message: e.to_string(),
                })?;
            entries.push(entry);
        }
        let request = self.client.put_records().set_records(Some(entries));
        let request = match &self.stream {
            StreamRef::Name(name) => request.stream_name(name),
            StreamRef::Arn(arn) => request.stream_arn(arn),
        };
        request.send().await.map(entry_results).map_err(classify)
    }
}

/// One result per entry, trusting only each entry's own fields.
pub fn entry_results(output: PutRecordsOutput) -> Vec<EntryResult> {
    output
        .records
        .into_iter()
        .map(|entry| match entry.error_code.filter(|c| !c.is_empty()) {
            Some(code) => EntryResult::Failed {
                code,
                message: entry.error_message.unwrap_or_default(),
            },
            None if entry
                .sequence_number
                .as_deref()
                .is_some_and(|s| !s.is_empty()) =>
            {
                EntryResult::Written {
                    shard_id: entry.shard_id.filter(|s| !s.is_empty()),
                }
            }
            None => EntryResult::Failed {
                code: MISSING_SEQUENCE_NUMBER.into(),
                message: "the entry has neither an error code nor a sequence number".into(),
            },
        })
        .collect()
}

/// Sorts a failed request into retryable or not
/// ([`crate::publisher::retry`]): a request without an answer is retried,
/// one that could not be built is not, and an error the service named is
/// retried as its code and HTTP status say.
pub fn classify(error: SdkError<PutRecordsError>) -> CallError {
    let status = error.raw_response().map(|r| r.status().as_u16());
    let code = error.code().map(str::to_owned);
    let message = error.message().map(str::to_owned);
    let (retryable, code) = match &error {
        SdkError::ConstructionFailure(_) => {
            (false, code.unwrap_or_else(|| "ConstructionFailure".into()))
        }
        SdkError::TimeoutError(_) => (true, "Timeout".into()),
        SdkError::DispatchFailure(_) => (true, "DispatchFailure".into()),
        SdkError::ResponseError(_) => (true, code.unwrap_or_else(|| "ResponseError".into())),
        SdkError::ServiceError(service) => {
            let code = (code.or_else(|| modeled_code(service.err()).map(str::to_owned)))
                .unwrap_or_else(|| format!("HTTP{}", status.unwrap_or_default()));
            (is_retryable_request_code(&code, status), code)
        }
        _ => (true, code.unwrap_or_else(|| "Unknown".into())),
    };
    let detail = message.unwrap_or_else(|| DisplayErrorContext(&error).to_string());
    CallError {
        retryable,
        code,
        message: crate::logging::bounded(&detail, 256),
    }
}

/// The code of an error the SDK models, for an answer that carried none
/// (the retry policy reads codes, and a mocked error has no metadata).
fn modeled_code(error: &PutRecordsError) -> Option<&'static str> {
    Some(match error {
        PutRecordsError::ProvisionedThroughputExceededException(_) => {
            "ProvisionedThroughputExceededException"
        }
        PutRecordsError::KmsThrottlingException(_) => "KMSThrottlingException",
        PutRecordsError::AccessDeniedException(_) => "AccessDeniedException",
        PutRecordsError::ResourceNotFoundException(_) => "ResourceNotFoundException",
        PutRecordsError::InvalidArgumentException(_) => "InvalidArgumentException",
        PutRecordsError::KmsAccessDeniedException(_) => "KMSAccessDeniedException",
        PutRecordsError::KmsDisabledException(_) => "KMSDisabledException",
        PutRecordsError::KmsInvalidStateException(_) => "KMSInvalidStateException",
        PutRecordsError::KmsNotFoundException(_) => "KMSNotFoundException",
        PutRecordsError::KmsOptInRequired(_) => "KMSOptInRequired",
        _ => return None,
    })
}
