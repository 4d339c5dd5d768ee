//! The marker a delivery carries, read; where the delivery starts; and
//! which of its dropped events it must still account for.
//!
//! A first delivery (or one whose marker is ignored) starts at event 0 and
//! stores, logs and counts every event it drops (`INVALID_EVENTS=drop-event`).
//! A copy starts at its marker's `next`. Everything before `next` is settled
//! by earlier deliveries; so are the events at or after it that were dropped
//! under the marker's `accounted_limit`, since the first delivery stored
//! every event it dropped before publishing any. What the copy drops besides
//! (a lower `KINESIS_MAX_RECORD_SIZE_KIB` than the earlier deliveries had
//! makes more events too large) is new: the copy stores, logs and counts
//! those. It finds them by reading the body again under the marker's limit,
//! which only happens when the limits differ and the copy drops something
//! at or after `next`.

use aws_lambda_events::event::sqs::SqsMessage;

use crate::encode::EncodedSubmission;
use crate::model::DroppedEvent;

use super::{Ignored, Policy, Progress, RESUME_ATTRIBUTE};

/// One delivery of a message, as resuming sees it: the marker it carries,
/// read once its document is known ([`Delivery::read`]), then where it
/// starts ([`Delivery::start`]).
#[derive(Debug)]
pub struct Delivery<'a> {
    policy: &'a Policy,
    marker: Option<&'a str>,
    source_arn: Option<&'a str>,
    read: Option<Result<Progress, Ignored>>,
}

impl<'a> Delivery<'a> {
    /// The delivery `record`, its marker not read yet.
    pub fn of(policy: &'a Policy, record: &'a SqsMessage) -> Self {
        // A marker without a string value is a marker, malformed.
        let marker = (record.message_attributes.get(RESUME_ATTRIBUTE))
            .map(|a| a.string_value.as_deref().unwrap_or_default());
        Delivery {
            policy,
            marker,
            source_arn: record.event_source_arn.as_deref(),
            read: None,
        }
    }

    /// Reads the marker for the document with `document_sha256`: its
    /// progress if the function wrote it for that document on the queue
    /// `source_arn`, else why it is ignored. Read before the records are
    /// placed, since a copy's records carry the hash key its marker names:
    /// returns that hash key, if the marker is one the function wrote and
    /// names one.
    pub fn read(&mut self, document_sha256: &[u8; 32]) -> Option<u128> {
        self.read = self
            .marker
            .map(|m| self.policy.read(m, document_sha256, self.source_arn));
        let progress = self.read.as_ref().and_then(|r| r.as_ref().ok());
        progress.and_then(|p| p.hash_key)
    }

    /// Starts `submission`, the delivery's valid submission, where its
    /// marker says, and logs a resume or an ignored marker
    /// under the message id `id`.
    pub fn start(
        self,
        id: Option<&str>,
        submission: &mut EncodedSubmission,
        limit: usize,
        dropped_under: impl FnOnce(usize) -> Option<Vec<DroppedEvent>>,
    ) -> Start {
        let start = start(self.read, submission, limit, dropped_under);
        log_start(id, submission, &start);
        start
    }
}

/// How one delivery of a valid submission starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// Copies sent before this delivery: 0 for a first delivery, or one
    /// whose marker was ignored.
    pub hop: u32,
    /// The `sequence` this delivery resumes at, if it resumes.
    pub resumed_at: Option<usize>,
    /// The record limit under which the drops at or after this delivery's
    /// progress are accounted once it has stored its own: what its copy's
    /// marker carries.
    pub accounted_limit: usize,
    /// The events this delivery drops that no earlier delivery accounted
    /// for: the ones it stores, logs and counts.
    pub unaccounted: Vec<DroppedEvent>,
    /// Why the marker the delivery carried was ignored.
    pub ignored: Option<Ignored>,
}

/// Starts `submission` where its marker, `read` by [`Delivery::read`], says:
/// the records acknowledged in earlier deliveries are left out (`skipped`).
/// `limit` is this delivery's record limit; `dropped_under(limit)` reads the
/// body again under another record limit and returns the events dropped
/// there (`None` if it cannot).
fn start(
    read: Option<Result<Progress, Ignored>>,
    submission: &mut EncodedSubmission,
    limit: usize,
    dropped_under: impl FnOnce(usize) -> Option<Vec<DroppedEvent>>,
) -> Start {
    let fresh = |ignored| Start {
        hop: 0,
        resumed_at: None,
        accounted_limit: limit,
        unaccounted: submission.dropped.clone(),
        ignored,
    };
    let Some(read) = read else {
        return fresh(None);
    };
    let progress = match read.and_then(|p| within(p, submission)) {
        Ok(progress) => progress,
        Err(ignored) => return fresh(Some(ignored)),
    };
    let skipped = records_before(progress.next, submission);
    submission.records.drain(..skipped);
    submission.skipped = skipped;
    let candidates: Vec<DroppedEvent> = (submission.dropped.iter())
        .filter(|d| d.sequence >= progress.next)
        .cloned()
        .collect();
    let unaccounted = if candidates.is_empty() || progress.accounted_limit == limit {
        Vec::new()
    } else {
        match dropped_under(progress.accounted_limit) {
            Some(earlier) => (candidates.into_iter())
                .filter(|d| !earlier.iter().any(|e| e.sequence == d.sequence))
                .collect(),
            // Cannot tell what was accounted: account for all of them again.
            None => candidates,
        }
    };
    Start {
        hop: progress.hop,
        resumed_at: Some(progress.next),
        accounted_limit: progress.accounted_limit.min(limit),
        unaccounted,
        ignored: None,
    }
}

/// The log line of a delivery that resumes, or whose marker is ignored.
fn log_start(id: Option<&str>, submission: &EncodedSubmission, start: &Start) {
    if let Some(ignored) = start.ignored {
        tracing::warn!(
            message_id = id,
            reason = ignored.as_str(),
            submission_id = %submission.submission_id,
            device_id = %submission.device_id,
            "ignoring a resume marker this function did not write; publishing from the first event"
        );
    } else if start.resumed_at.is_some() {
        tracing::info!(
            message_id = id,
            submission_id = %submission.submission_id,
            resume_from = submission.skipped,
            hop = start.hop,
            "resuming a partly published submission"
        );
    }
}

/// A marker the function wrote never names a `next` beyond the events.
fn within(progress: Progress, submission: &EncodedSubmission) -> Result<Progress, Ignored> {
    let events = submission.records.len() + submission.dropped.len();
    if progress.next <= events {
        Ok(progress)
    } else {
        Err(Ignored::Malformed)
    }
}

/// How many of the submission's records have a `sequence` before `next`.
fn records_before(next: usize, submission: &EncodedSubmission) -> usize {
    (0..submission.records.len())
        .take_while(|&r| submission.sequence_of(r) < next)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::model::Reason;
    use bytes::Bytes;
    use std::sync::Arc;

    const ARN: &str = "arn:aws:sqs:eu-west-1:1:q";
    const LIMIT: usize = 1024 * 1024;

    fn policy() -> Policy {
        Policy::from_config(&Config::for_stream("s").unwrap())
    }

    fn dropped(sequences: &[usize], reason: Reason) -> Vec<DroppedEvent> {
        (sequences.iter())
            .map(|&sequence| DroppedEvent { sequence, reason })
            .collect()
    }

    /// `events` events, of which `dropped` were left out.
    fn submission(events: usize, dropped: Vec<DroppedEvent>) -> EncodedSubmission {
        EncodedSubmission {
            submission_id: uuid::Uuid::nil(),
            device_id: uuid::Uuid::nil(),
            partition_key: Arc::from("k"),
            explicit_hash_key: None,
            records: (0..events - dropped.len())
                .map(|_| Bytes::from_static(b"{}"))
                .collect(),
            dropped,
            document_sha256: [7; 32],
            skipped: 0,
        }
    }

    fn marker(next: usize, accounted_limit: usize) -> String {
        let progress = Progress {
            next,
            hop: 2,
            accounted_limit,
            hash_key: None,
        };
        policy().copy(progress, &[7; 32], ARN).unwrap().0
    }

    /// Reads `marker` as the handler does, then starts.
    fn begin(
        marker: Option<&str>,
        s: &mut EncodedSubmission,
        limit: usize,
        dropped_under: impl FnOnce(usize) -> Option<Vec<DroppedEvent>>,
    ) -> Start {
        let read = marker.map(|m| policy().read(m, &s.document_sha256, Some(ARN)));
        start(read, s, limit, dropped_under)
    }

    fn never(_: usize) -> Option<Vec<DroppedEvent>> {
        panic!("read again although nothing can be new")
    }

    #[test]
    fn a_marker_resumes_its_own_document_at_its_sequence() {
        // Sequences 2 and 5 dropped: the records are 0 1 3 4 6 7 8 9 10 11.
        let null = || dropped(&[2, 5], Reason::NullValue);
        for (next, skipped) in [(0, 0), (2, 2), (3, 2), (6, 4), (12, 10)] {
            let mut s = submission(12, null());
            let start = begin(Some(&marker(next, LIMIT)), &mut s, LIMIT, never);
            assert_eq!(start.resumed_at, Some(next));
            assert_eq!((start.hop, start.ignored), (2, None));
            assert_eq!((s.skipped, s.records.len()), (skipped, 10 - skipped));
            assert!(
                start.unaccounted.is_empty(),
                "accounted by the first delivery"
            );
        }
        let mut s = submission(12, null());
        let beyond = begin(Some(&marker(13, LIMIT)), &mut s, LIMIT, never);
        assert_eq!(beyond.ignored, Some(Ignored::Malformed));
    }

    #[test]
    fn without_a_valid_marker_a_delivery_starts_at_event_0_and_accounts_for_every_drop() {
        let mut s = submission(6, dropped(&[1, 4], Reason::NullValue));
        let first = begin(None, &mut s, LIMIT, never);
        assert_eq!(
            (first.hop, first.resumed_at, first.ignored),
            (0, None, None)
        );
        assert_eq!(first.unaccounted, s.dropped);
        assert_eq!(first.accounted_limit, LIMIT);
        let forged = format!("v3/4/1/{LIMIT}/-/{}", "0".repeat(64));
        let ignored = begin(Some(&forged), &mut s, LIMIT, never);
        assert_eq!(ignored.ignored, Some(Ignored::BadMac));
        assert_eq!((ignored.hop, ignored.resumed_at), (0, None));
        assert_eq!(ignored.unaccounted, s.dropped);
        assert_eq!((s.skipped, s.records.len()), (0, 4), "nothing skipped");
    }

    #[test]
    fn a_copy_under_a_lower_limit_accounts_for_what_only_that_limit_drops() {
        // The copy drops 1 (null), 5 and 7 (too large now); the first
        // delivery, under the marker's limit, dropped 1 and 7.
        let mut drops = dropped(&[1], Reason::NullValue);
        drops.extend(dropped(&[5, 7], Reason::EventTooLarge));
        let mut s = submission(10, drops);
        let lower = LIMIT / 2;
        let earlier = |limit| {
            assert_eq!(limit, LIMIT);
            let mut d = dropped(&[1], Reason::NullValue);
            d.extend(dropped(&[7], Reason::EventTooLarge));
            Some(d)
        };
        let copy = begin(Some(&marker(3, LIMIT)), &mut s, lower, earlier);
        assert_eq!(copy.unaccounted, dropped(&[5], Reason::EventTooLarge));
        assert_eq!(
            copy.accounted_limit, lower,
            "its own limit is now accounted"
        );
        // Cannot read it again: every drop at or after `next` counts again.
        let mut s = submission(10, dropped(&[1, 5], Reason::EventTooLarge));
        let unsure = begin(Some(&marker(3, LIMIT)), &mut s, lower, |_| None);
        assert_eq!(unsure.unaccounted, dropped(&[5], Reason::EventTooLarge));
        // A higher limit keeps the marker's.
        let mut s = submission(10, dropped(&[5], Reason::NullValue));
        let higher = begin(Some(&marker(3, lower)), &mut s, LIMIT, |_| {
            Some(dropped(&[5], Reason::NullValue))
        });
        assert!(higher.unaccounted.is_empty());
        assert_eq!(higher.accounted_limit, lower);
    }
}
