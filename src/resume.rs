//! Resuming a submission where its last delivery stopped, instead of
//! publishing it again from event 0.
//!
//! A submission that was only partly published (throttling, a slow stream, a
//! submission larger than one invocation can publish) used to be reported
//! failed, and SQS redelivered it whole: its acknowledged prefix was written
//! again onto the shard that was already saturated, and a submission that
//! needs more invocations than `MaxReceiveCount` never finished, cycling to
//! the dead-letter queue and leaving duplicates each time.
//!
//! Instead, on a standard queue, the handler sends the message again to its
//! own source queue with a progress marker, the [`RESUME_ATTRIBUTE`]
//! message attribute `"{next}/{sha256}"` (the `sequence` of the first
//! unacknowledged event and the document's digest), and acknowledges the
//! original. The copy starts at the first event whose `sequence` is at least
//! `next`: events already acknowledged are not sent again, and only the
//! in-doubt records of a call abandoned at the deadline can be duplicated.
//! The marker names a `sequence`, not a position among the records, so that
//! a copy read under other settings (a record limit that drops one more
//! oversized event under `INVALID_EVENTS=drop-event`) can repeat an event
//! but never skip one.
//! The copy's receive count starts at 1, so a submission that keeps making
//! progress is not sent to the dead-letter queue for being large, while one
//! that makes no progress is reported failed as before and reaches it after
//! `MaxReceiveCount` receives.
//!
//! Why a message attribute rather than a table of checkpoints: the progress
//! travels with the message, so there is nothing to look up (no call on any
//! path but the one that failed part-way), nothing to expire, and no store
//! whose outage could lose it; and the re-sent copy is what resets the
//! receive count, which a checkpoint alone cannot do.
//!
//! A FIFO queue is never resumed this way: the copy would go to the end of
//! its group, behind messages that must follow it, so a FIFO submission is
//! reported failed and redelivered whole, exactly as before. The marker names
//! the digest of the document, so a marker copied onto other content is
//! ignored; a sender can only skip events of its own submission, which it
//! could as well not have sent.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream;
use tokio::time::Instant;

use crate::encode::{EncodedSubmission, hex};
use crate::rejects_queue::{ATTRIBUTE_TYPE, MAX_MESSAGE_BYTES};

/// The message attribute that carries a submission's progress.
pub const RESUME_ATTRIBUTE: &str = "edr_resume_from";

/// Re-sends to the source queue in flight at once.
const MAX_CONCURRENT_SENDS: usize = 10;

/// Why a re-send that was still waiting at `stop_at` counts as failed.
pub const NOT_ANSWERED_IN_TIME: &str = "the source queue did not answer in time";

/// The marker for a submission whose events before `sequence` `next` are
/// acknowledged.
pub fn marker(next: usize, submission: &EncodedSubmission) -> String {
    let digest = hex(&submission.document_sha256);
    format!("{next}/{}", String::from_utf8_lossy(&digest))
}

/// Whether `body` and the marker fit in one SQS message (attributes count
/// toward the 1 MiB limit; a marker is at most 20 digits, `/` and 64 hex).
pub fn fits(body: &str) -> bool {
    const MARKER_BYTES: usize = 20 + 1 + 64;
    body.len() + RESUME_ATTRIBUTE.len() + ATTRIBUTE_TYPE.len() + MARKER_BYTES <= MAX_MESSAGE_BYTES
}

/// Where a delivery carrying `marker` resumes `submission`: how many of its
/// records come before `sequence` `next` and were acknowledged, if the
/// marker is for this very document and within it. `None` for a marker that
/// is malformed or names other content.
pub fn resume_point(marker: &str, submission: &EncodedSubmission) -> Option<usize> {
    let (next, digest) = marker.split_once('/')?;
    let next: usize = next.parse().ok()?;
    let ours = hex(&submission.document_sha256);
    let events = submission.records.len() + submission.dropped.len();
    if digest.as_bytes() != ours.as_slice() || next > events {
        return None;
    }
    let records = submission.records.len();
    Some(
        (0..records)
            .take_while(|&r| submission.sequence_of(r) < next)
            .count(),
    )
}

/// A message to send again to the queue it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resend<'a> {
    /// The source queue's ARN (`eventSourceARN`).
    pub source_arn: &'a str,
    /// The SQS body, unchanged.
    pub body: &'a str,
    /// The message group of a fair queue's message (a standard queue).
    pub group_id: Option<&'a str>,
    /// The [`RESUME_ATTRIBUTE`] value.
    pub marker: String,
    /// The SQS message id of the original, for the log.
    pub source_message_id: &'a str,
}

/// The seam to the source queue: SQS in production, scripted in tests.
pub trait ResendSink: Sync {
    /// Sends one message to the queue `message.source_arn` names.
    fn resend(&self, message: &Resend<'_>) -> impl Future<Output = Result<(), String>> + Send;
}

/// A handler without re-sends (`RESUME=off`, and tests that do not need it).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoResend;

impl ResendSink for NoResend {
    async fn resend(&self, _: &Resend<'_>) -> Result<(), String> {
        Err("resume is off".to_owned())
    }
}

/// Sends every message, a few at a time, and returns one result per
/// message in input order; those not answered by `stop_at` count as failed
/// (their original is then reported failed, which loses no event).
pub async fn resend_all<S: ResendSink>(
    sink: &S,
    messages: &[Resend<'_>],
    stop_at: Instant,
) -> Vec<Result<(), String>> {
    let mut results: Vec<Result<(), String>> =
        vec![Err(NOT_ANSWERED_IN_TIME.to_owned()); messages.len()];
    let mut sends = stream::iter(messages.iter().enumerate())
        .map(|(i, m)| async move { (i, sink.resend(m).await) })
        .buffer_unordered(MAX_CONCURRENT_SENDS);
    // As `rejects_queue::send_all` waits: what has not answered by `stop_at`
    // keeps its `NOT_ANSWERED_IN_TIME`.
    while let Ok(Some((i, result))) = tokio::time::timeout_at(stop_at, sends.next()).await {
        if let Some(slot) = results.get_mut(i) {
            *slot = result;
        }
    }
    results
}

/// When re-sends stop waiting: half the deadline margin before the
/// deadline, so that the other half is left to answer SQS. They start when
/// publishing ends, so they have from then until this instant.
pub fn stop_at(deadline: Instant, margin: Duration) -> Instant {
    let now = Instant::now();
    deadline
        .checked_sub(margin / 2)
        .filter(|&t| t > now)
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::Arc;

    fn submission(records: usize, digest: u8) -> EncodedSubmission {
        EncodedSubmission {
            submission_id: uuid::Uuid::nil(),
            device_id: uuid::Uuid::nil(),
            partition_key: Arc::from("k"),
            explicit_hash_key: None,
            records: (0..records).map(|_| Bytes::from_static(b"{}")).collect(),
            dropped: Vec::new(),
            document_sha256: [digest; 32],
            skipped: 0,
        }
    }

    #[test]
    fn a_marker_resumes_only_its_own_document_within_its_events() {
        let s = submission(10, 7);
        let m = marker(4, &s);
        assert_eq!(m, format!("4/{}", "07".repeat(32)));
        assert_eq!(resume_point(&m, &s), Some(4));
        assert_eq!(resume_point(&marker(10, &s), &s), Some(10));
        assert_eq!(resume_point(&m, &submission(10, 8)), None, "other content");
        assert_eq!(resume_point(&marker(11, &s), &s), None, "beyond its events");
        // Sequences 2 and 5 dropped: the records are 0 1 3 4 6 7 8 9 10 11.
        let mut dropped = submission(10, 7);
        dropped.dropped = [2, 5]
            .map(|sequence| crate::model::DroppedEvent {
                sequence,
                reason: crate::model::Reason::NullValue,
            })
            .to_vec();
        assert_eq!(resume_point(&marker(2, &dropped), &dropped), Some(2));
        assert_eq!(resume_point(&marker(3, &dropped), &dropped), Some(2));
        assert_eq!(resume_point(&marker(6, &dropped), &dropped), Some(4));
        assert_eq!(resume_point(&marker(12, &dropped), &dropped), Some(10));
        for bad in ["", "4", "x/07", "-1/07", &format!("4/{}", "07".repeat(31))] {
            assert_eq!(resume_point(bad, &s), None, "{bad}");
        }
    }

    #[test]
    fn a_body_at_the_size_limit_cannot_carry_its_marker() {
        let room = MAX_MESSAGE_BYTES - RESUME_ATTRIBUTE.len() - ATTRIBUTE_TYPE.len() - 85;
        assert!(fits(&"x".repeat(room)));
        assert!(!fits(&"x".repeat(room + 1)));
        let longest = marker(usize::MAX, &submission(1, 0));
        assert_eq!(longest.len(), 85, "the room kept is the longest marker");
    }

    /// Answers the message whose id is `"answers"`, never the others.
    struct HalfDeaf;

    impl ResendSink for HalfDeaf {
        async fn resend(&self, m: &Resend<'_>) -> Result<(), String> {
            if m.source_message_id != "answers" {
                std::future::pending::<()>().await;
            }
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_re_send_not_answered_by_stop_at_counts_as_failed() {
        let resend = |id| Resend {
            source_arn: "arn:aws:sqs:eu-west-1:1:q",
            body: "{}",
            group_id: None,
            marker: "1/00".into(),
            source_message_id: id,
        };
        let stop_at = Instant::now() + Duration::from_millis(250);
        let results = tokio::time::timeout(
            Duration::from_secs(1),
            resend_all(&HalfDeaf, &[resend("silent"), resend("answers")], stop_at),
        )
        .await
        .expect("returns at stop_at");
        assert_eq!(results, [Err(NOT_ANSWERED_IN_TIME.to_owned()), Ok(())]);
        assert_eq!(Instant::now(), stop_at);
    }

    #[tokio::test(start_paused = true)]
    async fn re_sends_leave_half_the_margin_to_answer_sqs() {
        let now = Instant::now();
        let deadline = now + Duration::from_secs(10);
        assert_eq!(
            stop_at(deadline, Duration::from_millis(500)),
            deadline - Duration::from_millis(250)
        );
        assert_eq!(stop_at(now, Duration::from_millis(500)), now);
    }
}
