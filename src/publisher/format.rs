//! What a submission is sent as (`RECORD_FORMAT`): its event records as
//! they are, or those records as user records of aggregated records
//! ([`crate::aggregate`]), built once per invocation from what is left to
//! publish (a resumed copy's acknowledged records are already left out).
//!
//! The lanes count a submission's progress in these units; a failure is
//! reported in events, so that the resume marker and the log name the first
//! event of the first unacknowledged Kinesis record.

use bytes::Bytes;

use crate::aggregate::{self, TooLarge};
use crate::encode::EncodedSubmission;
use crate::model::RecordFormat;

/// A submission's Kinesis records, when they are not its event records.
#[derive(Debug)]
pub(super) struct Aggregated {
    /// The aggregated records, in order.
    pub(super) records: Vec<Bytes>,
    /// `starts[k]`: the first event record (an index into
    /// `EncodedSubmission::records`) that record `k` holds.
    pub(super) starts: Vec<usize>,
}

/// What each submission is sent as: `None` for its event records, the
/// aggregated records, or why they could not be made.
pub(super) type Outbound = Option<Result<Aggregated, TooLarge>>;

/// The Kinesis records of `submission` under `format`.
pub(super) fn outbound(
    submission: &EncodedSubmission,
    format: RecordFormat,
    max_record_bytes: usize,
) -> Outbound {
    match format {
        RecordFormat::PerEvent => None,
        RecordFormat::Aggregated => Some(aggregated(submission, max_record_bytes)),
    }
}

fn aggregated(
    submission: &EncodedSubmission,
    max_record_bytes: usize,
) -> Result<Aggregated, TooLarge> {
    let (key, hash_key) = (
        &*submission.partition_key,
        submission.explicit_hash_key.as_deref(),
    );
    let users = submission.records.iter().map(|r| (key, hash_key, &r[..]));
    let made = aggregate::aggregate(users, max_record_bytes)?;
    let mut starts = Vec::with_capacity(made.len());
    let mut next = 0;
    for record in &made {
        starts.push(next);
        next += record.user_records;
    }
    Ok(Aggregated {
        records: made.into_iter().map(|r| Bytes::from(r.data)).collect(),
        starts,
    })
}

/// The records a lane sends for `submission`.
pub(super) fn records<'a>(
    submission: &'a EncodedSubmission,
    outbound: Option<&'a Outbound>,
) -> &'a [Bytes] {
    match outbound {
        Some(Some(Ok(aggregated))) => &aggregated.records,
        Some(Some(Err(_))) => &[],
        _ => &submission.records,
    }
}

/// How many event records come before Kinesis record `record` (all of
/// them past the last).
pub(super) fn events_before(
    submission: &EncodedSubmission,
    outbound: Option<&Outbound>,
    record: usize,
) -> usize {
    match outbound {
        Some(Some(Ok(aggregated))) => aggregated
            .starts
            .get(record)
            .copied()
            .unwrap_or(submission.records.len()),
        _ => record,
    }
}
