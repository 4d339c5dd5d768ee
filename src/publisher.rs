//! Publishing encoded submissions to Kinesis with PutRecords, in order,
//! without loss, within the invocation's deadline.
//!
//! PutRecords may fail any single entry of a request while later entries of
//! the same request succeed, so sending a submission's records together and
//! retrying the failed ones would write them after their successors. The
//! publisher therefore works on *lanes*: a lane is an ordered list of
//! submissions (one submission for a standard queue, a whole message group
//! for a FIFO queue), and a lane never has more than one run of records in
//! flight. In strict mode that run is a single record, so no record is sent
//! before every predecessor was acknowledged; throughput comes from packing
//! the heads of many lanes into each call (at most 500 records and 10 MiB)
//! and keeping several calls in flight. In relaxed mode the run may be the
//! rest of the submission, and after a partial failure the lane resends from
//! its first failed record.
//!
//! A lane whose record fails for good (a non-retryable error, its attempts
//! used up, or no time left) stops: its current submission and every later
//! submission of the lane are reported failed and nothing more of them is
//! sent.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::config::{Config, Ordering};
use crate::event::EncodedSubmission;

/// Kinesis' limits on one PutRecords request: 500 records and 10 MiB of data
/// plus partition keys (the limit since records of up to 10 MiB came in).
pub const MAX_RECORDS_PER_CALL: usize = 500;
pub const MAX_BYTES_PER_CALL: usize = 10 * 1024 * 1024;

/// One entry of a PutRecords request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRecord {
    pub partition_key: Arc<str>,
    pub data: Bytes,
}

/// What Kinesis said about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryResult {
    /// Acknowledged with a sequence number.
    Written,
    /// Not written: Kinesis' `ErrorCode` and `ErrorMessage`.
    Failed { code: String, message: String },
}

/// A whole request that failed: no entry of it is known to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub retryable: bool,
    pub code: String,
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

/// The code given to an entry that Kinesis answered with neither an error
/// nor a sequence number: not known to be written, so retried.
pub const MISSING_SEQUENCE_NUMBER: &str = "MissingSequenceNumber";

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
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCause::NonRetryable => "non_retryable_error",
            FailureCause::AttemptsExhausted => "attempts_exhausted",
            FailureCause::Deadline => "deadline",
            FailureCause::PredecessorFailed => "predecessor_failed",
        }
    }
}

/// A submission that was not fully published: which record and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishFailure {
    pub cause: FailureCause,
    /// The first record not acknowledged; records before it were written.
    pub sequence: usize,
    /// The last error Kinesis reported for that record, if any.
    pub code: Option<String>,
    pub message: Option<String>,
}

/// The outcome of one submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every record acknowledged with a sequence number.
    Published,
    Failed(PublishFailure),
}

/// Counters for metrics and the invocation summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishStats {
    pub calls: u64,
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
pub struct PublishReport {
    /// One per submission passed in; `None` only for a submission that no
    /// lane named.
    pub outcomes: Vec<Option<Outcome>>,
    pub stats: PublishStats,
}

/// How the publisher behaves; taken from [`Config`].
#[derive(Debug, Clone)]
pub struct Publisher {
    pub ordering: Ordering,
    pub max_in_flight_calls: usize,
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub deadline_margin: Duration,
}

impl Publisher {
    pub fn from_config(config: &Config) -> Self {
        Publisher {
            ordering: config.ordering,
            max_in_flight_calls: config.max_in_flight_calls,
            max_attempts: config.max_attempts,
            backoff: Backoff::new(config.retry_base_delay, config.retry_max_delay),
            deadline_margin: config.deadline_margin,
        }
    }

    /// When the invocation stops waiting for its outlets: `deadline -
    /// deadline_margin`, the time kept free to answer SQS. If that instant is
    /// before anything the clock can represent it is long past: stop now,
    /// never at the later `deadline`.
    pub fn stop_at(&self, deadline: Instant) -> Instant {
        deadline
            .checked_sub(self.deadline_margin)
            .unwrap_or_else(|| Instant::now().min(deadline))
    }

    /// Publishes `submissions` lane by lane (`lanes` holds indices into
    /// `submissions`, each lane in the order its submissions must be
    /// written). No call is in flight after [`Publisher::stop_at`].
    pub async fn publish<K: RecordSink>(
        &self,
        sink: &K,
        submissions: &[EncodedSubmission],
        lanes: Vec<Vec<usize>>,
        deadline: Instant,
    ) -> PublishReport {
        let stop_at = self.stop_at(deadline);
        let mut run = Run {
            publisher: self,
            submissions,
            lanes: lanes.into_iter().map(Lane::new).collect(),
            outcomes: vec![None; submissions.len()],
            ready: VecDeque::new(),
            waiting: BinaryHeap::new(),
            stats: PublishStats::default(),
            stop_at,
        };
        for lane in 0..run.lanes.len() {
            run.start_next_submission(lane);
        }

        let mut in_flight = FuturesUnordered::new();
        loop {
            let now = Instant::now();
            while let Some(Reverse((at, lane))) = run.waiting.peek().copied() {
                if at > now {
                    break;
                }
                run.waiting.pop();
                run.ready.push_back(lane);
            }
            while in_flight.len() < self.max_in_flight_calls.max(1) && now < stop_at {
                let Some((parts, records)) = run.pack() else {
                    break;
                };
                run.stats.calls += 1;
                in_flight.push(async move {
                    let result =
                        match tokio::time::timeout_at(stop_at, sink.put_records(records)).await {
                            Ok(result) => result,
                            Err(_) => Err(CallError {
                                retryable: true,
                                code: "DeadlineReached".into(),
                                message: "the call did not finish before the invocation's deadline"
                                    .into(),
                            }),
                        };
                    (parts, result)
                });
            }
            if in_flight.is_empty() {
                if now >= stop_at {
                    break;
                }
                match run.waiting.peek() {
                    // Everything left waits for a backoff that ends in time.
                    Some(Reverse((at, _))) if run.ready.is_empty() => {
                        tokio::time::sleep_until(*at).await;
                        continue;
                    }
                    _ => break,
                }
            }
            let next_wakeup = run.waiting.peek().map(|Reverse((at, _))| *at);
            let may_send_more = in_flight.len() < self.max_in_flight_calls;
            tokio::select! {
                Some((parts, result)) = in_flight.next() => run.apply(parts, result),
                _ = sleep_until_some(next_wakeup), if may_send_more && next_wakeup.is_some() => {}
                else => {}
            }
        }
        run.fail_unfinished();
        PublishReport {
            outcomes: run.outcomes,
            stats: run.stats,
        }
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// The progress of one lane.
struct Lane {
    /// Submission indices, in the order they must be written.
    queue: Vec<usize>,
    /// Position in `queue` of the submission being written.
    current: usize,
    /// Next record of the current submission not yet acknowledged.
    next: usize,
    /// Records of the current submission sent at least once (for the retry count).
    sent_upto: usize,
    /// Failed sends of the record at `next` (sets the backoff).
    attempts: u32,
    /// Of those, the ones that count against `MAX_ATTEMPTS`: all but throttling.
    counted_attempts: u32,
    last_error: Option<(String, String)>,
}

impl Lane {
    fn new(queue: Vec<usize>) -> Self {
        Lane {
            queue,
            current: 0,
            next: 0,
            sent_upto: 0,
            attempts: 0,
            counted_attempts: 0,
            last_error: None,
        }
    }

    fn submission(&self) -> Option<usize> {
        self.queue.get(self.current).copied()
    }
}

/// The records of one lane inside a call: `len` records from `start`.
#[derive(Debug, Clone, Copy)]
struct Part {
    lane: usize,
    start: usize,
    len: usize,
}

struct Run<'p, 's> {
    publisher: &'p Publisher,
    submissions: &'s [EncodedSubmission],
    lanes: Vec<Lane>,
    outcomes: Vec<Option<Outcome>>,
    /// Lanes whose next run can be sent now.
    ready: VecDeque<usize>,
    /// Lanes in backoff, by the instant they become ready.
    waiting: BinaryHeap<Reverse<(Instant, usize)>>,
    stats: PublishStats,
    stop_at: Instant,
}

impl Run<'_, '_> {
    /// Moves `lane` to its next submission with records to send, marking
    /// empty submissions published on the way, and queues it if there is one.
    fn start_next_submission(&mut self, lane_index: usize) {
        let Some(lane) = self.lanes.get_mut(lane_index) else {
            return;
        };
        while let Some(s) = lane.submission() {
            if self
                .submissions
                .get(s)
                .is_some_and(|sub| !sub.records.is_empty())
            {
                self.ready.push_back(lane_index);
                return;
            }
            if let Some(slot) = self.outcomes.get_mut(s) {
                *slot = Some(Outcome::Published);
            }
            lane.current += 1;
        }
    }

    /// Takes the runs of ready lanes, in order, until the call is full.
    fn pack(&mut self) -> Option<(Vec<Part>, Vec<OutboundRecord>)> {
        let mut parts = Vec::new();
        let mut records = Vec::new();
        let mut bytes = 0usize;
        while let Some(&lane_index) = self.ready.front() {
            let Some(lane) = self.lanes.get_mut(lane_index) else {
                self.ready.pop_front();
                continue;
            };
            let Some(sub) = lane.submission().and_then(|s| self.submissions.get(s)) else {
                self.ready.pop_front();
                continue;
            };
            let remaining = sub.records.get(lane.next..).unwrap_or_default();
            let run_len = match self.publisher.ordering {
                Ordering::Strict => remaining.len().min(1),
                Ordering::Relaxed => remaining.len(),
            };
            // A run that fits whole in an empty call is not split across two
            // calls: its tail could only be sent after the head's call came
            // back, costing a round trip (relaxed mode; strict runs are 1).
            if run_len > 1 && !records.is_empty() {
                let run_bytes: usize = remaining
                    .iter()
                    .take(run_len)
                    .map(|d| d.len() + sub.partition_key.len())
                    .sum();
                let fits_now = records.len() + run_len <= MAX_RECORDS_PER_CALL
                    && bytes + run_bytes <= MAX_BYTES_PER_CALL;
                let fits_alone = run_len <= MAX_RECORDS_PER_CALL && run_bytes <= MAX_BYTES_PER_CALL;
                if !fits_now && fits_alone {
                    break;
                }
            }
            let mut taken = 0;
            for data in remaining.iter().take(run_len) {
                let size = data.len() + sub.partition_key.len();
                if records.len() == MAX_RECORDS_PER_CALL || bytes + size > MAX_BYTES_PER_CALL {
                    break;
                }
                records.push(OutboundRecord {
                    partition_key: Arc::clone(&sub.partition_key),
                    data: data.clone(),
                });
                bytes += size;
                taken += 1;
            }
            if taken == 0 {
                break;
            }
            self.ready.pop_front();
            let start = lane.next;
            let resent = lane.sent_upto.saturating_sub(start).min(taken);
            self.stats.records_retried += resent as u64;
            lane.sent_upto = lane.sent_upto.max(start + taken);
            parts.push(Part {
                lane: lane_index,
                start,
                len: taken,
            });
            if taken < run_len {
                break;
            }
        }
        self.stats.records_sent += records.len() as u64;
        (!parts.is_empty()).then_some((parts, records))
    }

    /// Applies the answer to one call.
    fn apply(&mut self, parts: Vec<Part>, result: Result<Vec<EntryResult>, CallError>) {
        let total: usize = parts.iter().map(|p| p.len).sum();
        let result = result.and_then(|entries| {
            if entries.len() == total {
                Ok(entries)
            } else {
                Err(CallError {
                    retryable: true,
                    code: "MalformedResponse".into(),
                    message: format!("{} result entries for {total} records", entries.len()),
                })
            }
        });
        let mut offset = 0;
        for part in parts {
            match &result {
                Ok(entries) => {
                    let slice = entries.get(offset..offset + part.len).unwrap_or_default();
                    let written = slice
                        .iter()
                        .take_while(|e| matches!(e, EntryResult::Written))
                        .count();
                    self.stats.records_written += slice
                        .iter()
                        .filter(|e| matches!(e, EntryResult::Written))
                        .count() as u64;
                    match slice.get(written) {
                        None => self.advance(part.lane, part.start + written),
                        Some(EntryResult::Failed { code, message }) => self.failed(
                            part.lane,
                            part.start + written,
                            is_retryable_entry_code(code),
                            code,
                            message,
                        ),
                        Some(EntryResult::Written) => {}
                    }
                }
                Err(e) => self.failed(part.lane, part.start, e.retryable, &e.code, &e.message),
            }
            offset += part.len;
        }
    }

    /// All records of the lane's current submission before `next` are written.
    fn advance(&mut self, lane_index: usize, next: usize) {
        let Some(lane) = self.lanes.get_mut(lane_index) else {
            return;
        };
        if next > lane.next {
            lane.attempts = 0;
            lane.counted_attempts = 0;
        }
        lane.next = next;
        let done = lane
            .submission()
            .and_then(|s| self.submissions.get(s))
            .is_none_or(|sub| next >= sub.records.len());
        if !done {
            self.ready.push_back(lane_index);
            return;
        }
        if let Some(slot) = lane.submission().and_then(|s| self.outcomes.get_mut(s)) {
            *slot = Some(Outcome::Published);
        }
        lane.current += 1;
        lane.next = 0;
        lane.sent_upto = 0;
        lane.attempts = 0;
        lane.counted_attempts = 0;
        lane.last_error = None;
        self.start_next_submission(lane_index);
    }

    /// The record at `at` failed; records before it are written.
    fn failed(&mut self, lane_index: usize, at: usize, retryable: bool, code: &str, message: &str) {
        let Some(lane) = self.lanes.get_mut(lane_index) else {
            return;
        };
        if at > lane.next {
            lane.attempts = 0;
            lane.counted_attempts = 0;
        }
        lane.next = at;
        lane.attempts += 1;
        // Throttling says "later", not "broken": only the deadline bounds it.
        if !is_throttling_code(code) {
            lane.counted_attempts += 1;
        }
        lane.last_error = Some((code.to_owned(), crate::submission::bounded(message, 256)));
        let cause = if !retryable {
            FailureCause::NonRetryable
        } else if lane.counted_attempts >= self.publisher.max_attempts {
            FailureCause::AttemptsExhausted
        } else {
            let at = Instant::now() + self.publisher.backoff.delay(lane.attempts);
            if at < self.stop_at {
                self.waiting.push(Reverse((at, lane_index)));
                return;
            }
            FailureCause::Deadline
        };
        self.stop_lane(lane_index, cause);
    }

    /// Fails the lane's current submission with `cause` and every later one
    /// with `PredecessorFailed`.
    fn stop_lane(&mut self, lane_index: usize, cause: FailureCause) {
        let Some(lane) = self.lanes.get_mut(lane_index) else {
            return;
        };
        let (code, message) = lane.last_error.take().unzip();
        let mut failure = PublishFailure {
            cause,
            sequence: lane.next,
            code,
            message,
        };
        for &s in lane.queue.get(lane.current..).unwrap_or_default() {
            if let Some(slot) = self.outcomes.get_mut(s) {
                *slot = Some(Outcome::Failed(failure.clone()));
            }
            failure = PublishFailure {
                cause: FailureCause::PredecessorFailed,
                sequence: 0,
                code: None,
                message: None,
            };
        }
        lane.current = lane.queue.len();
    }

    /// Lanes still unfinished when time ran out.
    fn fail_unfinished(&mut self) {
        for lane in 0..self.lanes.len() {
            if self
                .lanes
                .get(lane)
                .is_some_and(|l| l.submission().is_some())
            {
                self.stop_lane(lane, FailureCause::Deadline);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publisher(margin: Duration) -> Publisher {
        let mut config = Config::for_stream("events").unwrap();
        config.deadline_margin = margin;
        Publisher::from_config(&config)
    }

    #[test]
    fn the_stop_time_is_the_deadline_minus_the_margin() {
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(
            publisher(Duration::from_millis(500)).stop_at(deadline),
            deadline - Duration::from_millis(500)
        );
    }

    #[test]
    fn a_margin_larger_than_the_clock_can_subtract_stops_now_not_at_the_deadline() {
        let deadline = Instant::now() + Duration::from_secs(10);
        let stop = publisher(Duration::MAX).stop_at(deadline);
        assert!(stop <= Instant::now(), "stop_at fell back to a later time");
    }
}
