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
//! sent. What is retried, how often and after how long is the [`retry`]
//! policy's to say, in one place.

mod format;
mod pack;
mod report;
pub mod retry;
mod sink;
mod state;

use std::pin::pin;
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::{self, FuturesUnordered, Stream};
use tokio::time::Instant;

use crate::config::{Config, Ordering};
use crate::encode::EncodedSubmission;
use crate::model::RecordFormat;

pub use pack::{MAX_BYTES_PER_CALL, MAX_RECORDS_PER_CALL};
pub use report::{Outcome, PublishFailure, PublishReport, PublishStats};
pub use retry::{Backoff, FailureCause, RetryPolicy, is_retryable_entry_code, is_throttling_code};
pub use sink::{CallError, EntryResult, MISSING_SEQUENCE_NUMBER, OutboundRecord, RecordSink};
use state::Flight;

/// How the publisher behaves; taken from [`Config`].
#[derive(Debug, Clone)]
pub struct Publisher {
    /// `ORDERING`.
    pub ordering: Ordering,
    /// `MAX_IN_FLIGHT_CALLS`.
    pub max_in_flight_calls: usize,
    /// `MAX_ATTEMPTS` and the backoff between attempts ([`retry`]).
    pub retry: RetryPolicy,
    /// `DEADLINE_MARGIN_MS`.
    pub deadline_margin: Duration,
    /// `RECORD_FORMAT`: what a submission is sent as.
    pub record_format: RecordFormat,
    /// `KINESIS_MAX_RECORD_SIZE_KIB`, in bytes: the aggregated records' limit.
    pub max_record_bytes: usize,
}

impl Publisher {
    /// The publisher the settings describe.
    pub fn from_config(config: &Config) -> Self {
        Publisher {
            ordering: config.ordering,
            max_in_flight_calls: config.max_in_flight_calls,
            retry: RetryPolicy::from_config(config),
            deadline_margin: config.deadline_margin,
            record_format: config.record_format,
            max_record_bytes: config.max_record_bytes,
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
        (self.publish_admitting(sink, submissions, lanes, stream::empty(), deadline)).await
    }

    /// [`Publisher::publish`], with more lanes admitted while it runs: each
    /// lane `admitted` yields starts at once, beside those already under
    /// way, in the same calls. Publishing ends when every lane is done and
    /// `admitted` has ended, or at [`Publisher::stop_at`]; a lane not
    /// admitted by then is not published (its submissions have no outcome).
    pub async fn publish_admitting<K: RecordSink>(
        &self,
        sink: &K,
        submissions: &[EncodedSubmission],
        lanes: Vec<Vec<usize>>,
        admitted: impl Stream<Item = Vec<usize>>,
        deadline: Instant,
    ) -> PublishReport {
        let stop_at = self.stop_at(deadline);
        let mut flight = Flight::new(self, submissions, lanes, stop_at);
        let mut in_flight = FuturesUnordered::new();
        let mut admitted = pin!(admitted.fuse());
        let mut admitting = true;
        loop {
            let now = Instant::now();
            flight.wake(now);
            while in_flight.len() < self.max_in_flight_calls.max(1) && now < stop_at {
                let Some((parts, records)) = flight.pack() else {
                    break;
                };
                flight.stats.calls += 1;
                in_flight.push(async move { (parts, call(sink, records, stop_at).await) });
            }
            if in_flight.is_empty() {
                let wakeup = flight.next_wakeup();
                if now >= stop_at || !flight.ready.is_empty() || (wakeup.is_none() && !admitting) {
                    break;
                }
                // Everything left waits for a backoff that ends in time, or
                // for a lane still to be admitted.
                tokio::select! {
                    lane = admitted.next(), if admitting => admit(&mut flight, &mut admitting, lane),
                    _ = tokio::time::sleep_until(wakeup.unwrap_or(stop_at)) => {}
                }
                continue;
            }
            let next_wakeup = flight.next_wakeup();
            let may_send_more = in_flight.len() < self.max_in_flight_calls;
            tokio::select! {
                Some((parts, result)) = in_flight.next() => flight.apply(parts, result),
                lane = admitted.next(), if admitting => admit(&mut flight, &mut admitting, lane),
                _ = sleep_until_some(next_wakeup), if may_send_more && next_wakeup.is_some() => {}
                else => {}
            }
        }
        flight.fail_unfinished();
        PublishReport {
            outcomes: flight.outcomes,
            shards: flight.shards,
            stats: flight.stats,
        }
    }
}

/// Starts an admitted lane; the end of the admissions ends the waiting.
fn admit(flight: &mut Flight<'_, '_>, admitting: &mut bool, lane: Option<Vec<usize>>) {
    match lane {
        Some(lane) => flight.add_lane(lane),
        None => *admitting = false,
    }
}

/// One PutRecords call, abandoned at `stop_at`: a call still running then
/// counts as failed (retryable), its records as not written.
async fn call<K: RecordSink>(
    sink: &K,
    records: Vec<OutboundRecord>,
    stop_at: Instant,
) -> Result<Vec<EntryResult>, CallError> {
    match tokio::time::timeout_at(stop_at, sink.put_records(records)).await {
        Ok(result) => result,
        Err(_) => Err(CallError {
            retryable: true,
            code: "DeadlineReached".into(),
            message: "the call did not finish before the invocation's deadline".into(),
        }),
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
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
