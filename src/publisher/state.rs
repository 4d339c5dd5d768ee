//! The per-invocation state of the publisher: which submission each lane is
//! writing, how far it got, which lanes can send now and which wait out a
//! backoff, and what happens when a call comes back.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use tokio::time::Instant;

use crate::encode::EncodedSubmission;
use crate::publisher::Publisher;
use crate::publisher::format::{self, Outbound};
use crate::publisher::report::{Outcome, PublishFailure, PublishStats};
use crate::publisher::retry::{Attempts, FailureCause, is_retryable_entry_code};
use crate::publisher::sink::{CallError, EntryResult};

/// The progress of one lane.
pub(super) struct Lane {
    /// Submission indices, in the order they must be written.
    pub(super) queue: Vec<usize>,
    /// Position in `queue` of the submission being written.
    pub(super) current: usize,
    /// Next record of the current submission not yet acknowledged.
    pub(super) next: usize,
    /// Records of the current submission sent at least once (for the retry count).
    pub(super) sent_upto: usize,
    /// Failed sends of the record at `next` ([`crate::publisher::retry`]).
    pub(super) attempts: Attempts,
    pub(super) last_error: Option<(String, String)>,
}

impl Lane {
    pub(super) fn new(queue: Vec<usize>) -> Self {
        Lane {
            queue,
            current: 0,
            next: 0,
            sent_upto: 0,
            attempts: Attempts::default(),
            last_error: None,
        }
    }

    pub(super) fn submission(&self) -> Option<usize> {
        self.queue.get(self.current).copied()
    }
}

/// The records of one lane inside a call: `len` records from `start`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Part {
    pub(super) lane: usize,
    pub(super) start: usize,
    pub(super) len: usize,
}

/// One invocation's publishing: called a flight rather than a run, which in
/// this module means the records of one lane sent together.
pub(super) struct Flight<'p, 's> {
    pub(super) publisher: &'p Publisher,
    pub(super) submissions: &'s [EncodedSubmission],
    /// Per submission, what it is sent as (`RECORD_FORMAT`).
    pub(super) outbound: Vec<Outbound>,
    pub(super) lanes: Vec<Lane>,
    pub(super) outcomes: Vec<Option<Outcome>>,
    /// Per submission, the shards its records were acknowledged on.
    pub(super) shards: Vec<Vec<String>>,
    /// Lanes whose next run can be sent now.
    pub(super) ready: VecDeque<usize>,
    /// Lanes in backoff, by the instant they become ready.
    pub(super) waiting: BinaryHeap<Reverse<(Instant, usize)>>,
    pub(super) stats: PublishStats,
    pub(super) stop_at: Instant,
}

impl<'p, 's> Flight<'p, 's> {
    /// The state before the first call: every lane at its first submission.
    pub(super) fn new(
        publisher: &'p Publisher,
        submissions: &'s [EncodedSubmission],
        lanes: Vec<Vec<usize>>,
        stop_at: Instant,
    ) -> Self {
        let mut flight = Flight {
            publisher,
            submissions,
            outbound: submissions.iter().map(|_| None).collect(),
            lanes: Vec::with_capacity(lanes.len()),
            outcomes: vec![None; submissions.len()],
            shards: vec![Vec::new(); submissions.len()],
            ready: VecDeque::new(),
            waiting: BinaryHeap::new(),
            stats: PublishStats::default(),
            stop_at,
        };
        for lane in lanes {
            flight.add_lane(lane);
        }
        flight
    }

    /// Adds a lane, at its first submission: before the first call, or
    /// while the flight runs (a lane admitted once its rejects-queue entry
    /// is stored).
    pub(super) fn add_lane(&mut self, queue: Vec<usize>) {
        // Only the submissions a lane names: a batch publishes in rounds.
        let publisher = self.publisher;
        for &s in &queue {
            if let (Some(slot), Some(sub)) = (self.outbound.get_mut(s), self.submissions.get(s)) {
                *slot = format::outbound(sub, publisher.record_format, publisher.max_record_bytes);
            }
        }
        self.lanes.push(Lane::new(queue));
        self.start_next_submission(self.lanes.len() - 1);
    }

    /// Moves the lanes whose backoff has ended to the ready queue.
    pub(super) fn wake(&mut self, now: Instant) {
        while let Some(Reverse((at, lane))) = self.waiting.peek().copied() {
            if at > now {
                break;
            }
            self.waiting.pop();
            self.ready.push_back(lane);
        }
    }

    /// When the next lane in backoff becomes ready.
    pub(super) fn next_wakeup(&self) -> Option<Instant> {
        self.waiting.peek().map(|Reverse((at, _))| *at)
    }

    /// The records the lane sends for submission `s`.
    pub(super) fn records_of(&self, s: usize) -> &[bytes::Bytes] {
        match self.submissions.get(s) {
            Some(sub) => format::records(sub, self.outbound.get(s)),
            None => &[],
        }
    }

    /// Moves `lane` to its next submission with records to send, marking
    /// empty submissions published on the way, and queues it if there is one.
    pub(super) fn start_next_submission(&mut self, lane_index: usize) {
        let Some(lane) = self.lanes.get_mut(lane_index) else {
            return;
        };
        while let Some(s) = lane.submission() {
            if let Some(Some(Err(too_large))) = self.outbound.get(s) {
                // encode refuses an event that cannot fit an aggregated
                // record alone, so this is a bug to report, not to retry.
                lane.last_error = Some(("AggregatedRecordTooLarge".into(), too_large.to_string()));
                self.stop_lane(lane_index, FailureCause::NonRetryable);
                return;
            }
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

    /// Applies the answer to one call.
    pub(super) fn apply(&mut self, parts: Vec<Part>, result: Result<Vec<EntryResult>, CallError>) {
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
                    let written = slice.iter().take_while(|e| e.is_written()).count();
                    self.stats.records_written +=
                        slice.iter().filter(|e| e.is_written()).count() as u64;
                    self.note_shards(part.lane, slice);
                    match slice.get(written) {
                        None => self.advance(part.lane, part.start + written),
                        Some(EntryResult::Failed { code, message }) => self.failed(
                            part.lane,
                            part.start + written,
                            is_retryable_entry_code(code),
                            code,
                            message,
                        ),
                        Some(EntryResult::Written { .. }) => {}
                    }
                }
                Err(e) => self.failed(part.lane, part.start, e.retryable, &e.code, &e.message),
            }
            offset += part.len;
        }
    }

    /// Remembers the shards on which `entries`, records of the lane's
    /// current submission, were acknowledged.
    fn note_shards(&mut self, lane_index: usize, entries: &[EntryResult]) {
        let submission = self.lanes.get(lane_index).and_then(Lane::submission);
        let Some(shards) = submission.and_then(|s| self.shards.get_mut(s)) else {
            return;
        };
        for entry in entries {
            if let EntryResult::Written {
                shard_id: Some(shard),
            } = entry
                && !shards.contains(shard)
            {
                shards.push(shard.clone());
            }
        }
    }

    /// All records of the lane's current submission before `next` are written.
    fn advance(&mut self, lane_index: usize, next: usize) {
        let current = self.lanes.get(lane_index).and_then(Lane::submission);
        let done = current.is_none_or(|s| next >= self.records_of(s).len());
        let Some(lane) = self.lanes.get_mut(lane_index) else {
            return;
        };
        if next > lane.next {
            lane.attempts = Attempts::default();
        }
        lane.next = next;
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
        lane.attempts = Attempts::default();
        lane.last_error = None;
        self.start_next_submission(lane_index);
    }

    /// The record at `at` failed; records before it are written. Whether
    /// and when it is sent again is the retry policy's to say.
    fn failed(&mut self, lane_index: usize, at: usize, retryable: bool, code: &str, message: &str) {
        let Some(lane) = self.lanes.get_mut(lane_index) else {
            return;
        };
        if at > lane.next {
            lane.attempts = Attempts::default();
        }
        lane.next = at;
        lane.attempts.failed(code);
        lane.last_error = Some((code.to_owned(), crate::logging::bounded(message, 256)));
        match (self.publisher.retry).after_failure(retryable, &lane.attempts, self.stop_at) {
            Ok(at) => self.waiting.push(Reverse((at, lane_index))),
            Err(cause) => self.stop_lane(lane_index, cause),
        }
    }

    /// Fails the lane's current submission with `cause` and every later one
    /// with `PredecessorFailed`.
    fn stop_lane(&mut self, lane_index: usize, cause: FailureCause) {
        let Some(lane) = self.lanes.get_mut(lane_index) else {
            return;
        };
        let (code, message) = lane.last_error.take().unzip();
        let current = lane.submission();
        let acknowledged = match current.and_then(|s| self.submissions.get(s)) {
            Some(sub) => {
                format::events_before(sub, current.and_then(|s| self.outbound.get(s)), lane.next)
            }
            None => lane.next,
        };
        let mut failure = PublishFailure {
            cause,
            sequence: acknowledged,
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
    pub(super) fn fail_unfinished(&mut self) {
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
    use crate::config::Config;
    use bytes::Bytes;
    use std::sync::Arc;
    use std::time::Duration;

    fn submission(n: u128, records: usize) -> EncodedSubmission {
        EncodedSubmission {
            submission_id: uuid::Uuid::from_u128(n),
            device_id: uuid::Uuid::nil(),
            partition_key: Arc::from("k"),
            explicit_hash_key: None,
            records: (0..records).map(|i| Bytes::from(format!("{i}"))).collect(),
            dropped: Vec::new(),
            document_sha256: [0; 32],
            skipped: 0,
        }
    }

    fn publisher(pairs: &[(&str, &str)]) -> Publisher {
        let config = Config::from_lookup(|k| {
            if k == "STREAM_NAME" {
                return Some("events".into());
            }
            if k == "PIPELINE_KEY" {
                return Some(crate::config::TEST_PIPELINE_KEY.into());
            }
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        Publisher::from_config(&config)
    }

    fn failed(code: &str) -> EntryResult {
        EntryResult::Failed {
            code: code.into(),
            message: "scripted".into(),
        }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn a_relaxed_run_is_sent_again_from_its_first_failed_record() {
        let p = publisher(&[("ORDERING", "relaxed")]);
        let subs = [submission(0, 4)];
        let mut flight = Flight::new(&p, &subs, vec![vec![0]], far());
        let (parts, records) = flight.pack().unwrap();
        assert_eq!(records.len(), 4);
        let answer = vec![
            EntryResult::WRITTEN,
            failed("InternalFailure"),
            EntryResult::WRITTEN,
            EntryResult::WRITTEN,
        ];
        flight.apply(parts, Ok(answer));
        // Backing off: nothing ready until the lane wakes.
        assert!(flight.pack().is_none());
        flight.wake(far());
        let (parts, records) = flight.pack().unwrap();
        assert_eq!((parts[0].start, records.len()), (1, 3));
        assert_eq!(
            flight.stats.records_retried, 3,
            "records 1..4 were sent before"
        );
    }

    #[test]
    fn each_submission_keeps_the_shards_its_records_were_acknowledged_on() {
        let p = publisher(&[]);
        let subs = [submission(0, 2), submission(1, 2)];
        let mut flight = Flight::new(&p, &subs, vec![vec![0], vec![1]], far());
        let on = |shard: &str| EntryResult::Written {
            shard_id: Some(shard.into()),
        };
        let (parts, _) = flight.pack().unwrap();
        flight.apply(parts, Ok(vec![on("shard-a"), on("shard-b")]));
        let (parts, _) = flight.pack().unwrap();
        flight.apply(parts, Ok(vec![on("shard-c"), EntryResult::WRITTEN]));
        assert_eq!(
            flight.outcomes,
            [Some(Outcome::Published), Some(Outcome::Published)]
        );
        assert_eq!(flight.shards, [vec!["shard-a", "shard-c"], vec!["shard-b"]]);
    }

    #[test]
    fn a_lane_that_fails_for_good_fails_its_later_submissions_unsent() {
        let p = publisher(&[]);
        let subs = [submission(0, 2), submission(1, 2)];
        let mut flight = Flight::new(&p, &subs, vec![vec![0, 1]], far());
        let (parts, _) = flight.pack().unwrap();
        flight.apply(parts, Ok(vec![EntryResult::WRITTEN]));
        let (parts, _) = flight.pack().unwrap();
        flight.apply(parts, Ok(vec![failed("KMSAccessDeniedException")]));
        assert!(flight.pack().is_none(), "nothing more of the lane is sent");
        let failure = |i: usize| match &flight.outcomes[i] {
            Some(Outcome::Failed(f)) => (f.cause, f.sequence),
            other => panic!("{other:?}"),
        };
        assert_eq!(failure(0), (FailureCause::NonRetryable, 1));
        assert_eq!(failure(1), (FailureCause::PredecessorFailed, 0));
    }

    #[test]
    fn throttling_does_not_count_against_the_attempts() {
        let p = publisher(&[("MAX_ATTEMPTS", "1")]);
        let subs = [submission(0, 1), submission(1, 1)];
        let mut flight = Flight::new(&p, &subs, vec![vec![0], vec![1]], far());
        let (parts, _) = flight.pack().unwrap();
        flight.apply(
            parts,
            Ok(vec![
                failed("ProvisionedThroughputExceededException"),
                failed("InternalFailure"),
            ]),
        );
        assert_eq!(flight.outcomes[0], None, "throttled: waits and retries");
        assert!(matches!(
            &flight.outcomes[1],
            Some(Outcome::Failed(f)) if f.cause == FailureCause::AttemptsExhausted
        ));
    }
}
