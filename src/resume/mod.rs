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
//! message attribute ([`marker`]: the `sequence` of the first
//! unacknowledged event, the number of copies so far, the hash key that
//! places its records on the first delivery's shard, and a MAC that only
//! this function can compute), and acknowledges the original. The copy
//! starts at the first event whose `sequence` is at least `next` ([`Delivery::start`]):
//! events already acknowledged are not sent again, and only the in-doubt
//! records of a call abandoned at the deadline can be duplicated. The marker
//! names a `sequence`, not a position among the records, so that a copy read
//! under other settings (a record limit that drops one more oversized event
//! under `INVALID_EVENTS=drop-event`) can repeat an event but never skip
//! one; such an event is stored, logged and counted by the copy.
//! The copy's receive count starts at 1, so a submission that keeps making
//! progress is not sent to the dead-letter queue for being large, while one
//! that makes no progress is reported failed as before and reaches it after
//! `MaxReceiveCount` receives. One that needs more than `MAX_RESUME_HOPS`
//! copies is reported failed too: the function bounds its own loop, which
//! Lambda's recursive-loop detection is told to allow (template.yaml). Each
//! copy waits longer before SQS delivers it ([`CopyDelay`]).
//!
//! Why a message attribute rather than a table of checkpoints: the progress
//! travels with the message, so there is nothing to look up (no call on any
//! path but the one that failed part-way), nothing to expire, and no store
//! whose outage could lose it; and the re-sent copy is what resets the
//! receive count, which a checkpoint alone cannot do.
//!
//! A FIFO queue is never resumed this way: the copy would go to the end of
//! its group, behind messages that must follow it, so a FIFO submission is
//! reported failed and redelivered whole, exactly as before, and a marker
//! on a FIFO message is ignored. Any marker the function did not write for
//! this document on this queue is ignored, logged and counted
//! (`ResumeMarkersIgnored`): the submission is published from its first
//! event.
//!
//! The parts, a file each: which messages of a batch go back, as what copy
//! (`decision`, [`crate::batch::Batch::resends`]); the marker's format and
//! MAC ([`marker`]); where a delivery starts, from the marker it carries
//! (`start`, [`Delivery`]); how long a copy waits (`delay`, [`CopyDelay`]).
//! The sends themselves are [`resend_all`]'s, through the [`ResendSink`]
//! seam.

mod decision;
mod delay;
pub mod marker;
mod start;

pub use delay::{CopyDelay, MAX_DELAY_SECONDS};
pub use marker::{Ignored, Progress};
pub use start::{Delivery, Start};

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream;
use tokio::time::Instant;

use crate::config::Config;
use crate::keys::PipelineKey;
use crate::rejects_queue::{ATTRIBUTE_TYPE, MAX_MESSAGE_BYTES};

/// The message attribute that carries a submission's progress.
pub const RESUME_ATTRIBUTE: &str = "edr_resume_from";

/// Re-sends to the source queue in flight at once.
const MAX_CONCURRENT_SENDS: usize = 10;

/// Why a re-send that was still waiting at `stop_at` counts as failed.
pub const NOT_ANSWERED_IN_TIME: &str = "the source queue did not answer in time";

/// Whether `body` and its `marker` fit in one SQS message (attributes count
/// toward the 1 MiB limit). The marker written, not the longest one
/// ([`marker::MAX_MARKER_BYTES`]): a body that leaves room for the copy's
/// actual marker goes back.
pub fn fits(body: &str, marker: &str) -> bool {
    body.len() + RESUME_ATTRIBUTE.len() + ATTRIBUTE_TYPE.len() + marker.len() <= MAX_MESSAGE_BYTES
}

/// How markers are read and written, how many copies a submission may
/// take, and how long each waits: from the configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    key: Option<PipelineKey>,
    max_hops: u32,
    delay: CopyDelay,
}

/// Why a submission published part-way is not sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSent {
    /// It already took `MAX_RESUME_HOPS` copies: it is reported failed and
    /// reaches the dead-letter queue after `MaxReceiveCount` receives.
    HopLimit,
    /// No `PIPELINE_KEY` to sign a marker with.
    NoKey,
}

impl Policy {
    /// The policy `config` sets.
    pub fn from_config(config: &Config) -> Self {
        Policy {
            key: config.pipeline_key.clone(),
            max_hops: config.max_resume_hops,
            delay: CopyDelay::new(
                config.resume_base_delay_seconds,
                config.resume_max_delay_seconds,
            ),
        }
    }

    /// The progress `marker` carries, if this function wrote it for the
    /// document with `document_sha256` on the queue `source_arn`.
    pub fn read(
        &self,
        marker: &str,
        document_sha256: &[u8; 32],
        source_arn: Option<&str>,
    ) -> Result<Progress, Ignored> {
        marker::read(self.key.as_ref(), marker, document_sha256, source_arn)
    }

    /// The marker and the delay (seconds) of the copy carrying `progress`
    /// (`progress.hop` counts this copy), unless the submission used up its
    /// hops.
    pub fn copy(
        &self,
        progress: Progress,
        document_sha256: &[u8; 32],
        source_arn: &str,
    ) -> Result<(String, u32), NotSent> {
        if progress.hop > self.max_hops {
            return Err(NotSent::HopLimit);
        }
        let key = self.key.as_ref().ok_or(NotSent::NoKey)?;
        let marker = marker::write(key, progress, document_sha256, source_arn);
        Ok((marker, self.delay.draw(progress.hop)))
    }

    /// `MAX_RESUME_HOPS`.
    pub fn max_hops(&self) -> u32 {
        self.max_hops
    }
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
    /// How long SQS keeps the copy from being delivered (`DelaySeconds`,
    /// at most [`MAX_DELAY_SECONDS`]).
    pub delay_seconds: u32,
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

    #[test]
    fn a_body_at_the_size_limit_cannot_carry_its_marker() {
        let marker = "v3/4/1/1048576/-/".to_owned() + &"0".repeat(64);
        let room = MAX_MESSAGE_BYTES - RESUME_ATTRIBUTE.len() - ATTRIBUTE_TYPE.len() - marker.len();
        assert!(fits(&"x".repeat(room), &marker));
        assert!(!fits(&"x".repeat(room + 1), &marker));
        assert_eq!(
            marker::MAX_MARKER_BYTES,
            153,
            "docs/contract.md quotes 153 bytes"
        );
    }

    #[test]
    fn a_copy_past_the_hop_limit_is_not_sent() {
        let mut config = crate::config::Config::for_stream("s").unwrap();
        config.max_resume_hops = 2;
        let policy = Policy::from_config(&config);
        let progress = |hop| Progress {
            next: 1,
            hop,
            accounted_limit: 1,
            hash_key: None,
        };
        assert!(policy.copy(progress(2), &[0; 32], "arn").is_ok());
        assert_eq!(
            policy.copy(progress(3), &[0; 32], "arn"),
            Err(NotSent::HopLimit)
        );
        config.pipeline_key = None;
        let keyless = Policy::from_config(&config);
        assert_eq!(
            keyless.copy(progress(1), &[0; 32], "arn"),
            Err(NotSent::NoKey)
        );
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
            marker: "v3/1/1/1/-/00".into(),
            delay_seconds: 0,
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
