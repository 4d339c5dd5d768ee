//! The resume decision: which messages of a batch go back to their queue
//! with their progress, as what copy, and what becomes of them once the
//! queue has answered.
//!
//! A message goes back when it is a valid submission of a standard queue
//! that failed after some of its records were acknowledged in this
//! invocation: sent back, it is acknowledged, and its copy resumes where
//! this delivery stopped. It does not go back, and is reported failed as
//! before, when its copy would break a promise: a FIFO message (the copy
//! would land behind its group), a submission that used up its copies
//! (`MAX_RESUME_HOPS`), a function without a `PIPELINE_KEY` to sign the
//! marker with, or a body too close to the SQS size limit to carry it. A
//! message that made no progress goes back whole through SQS's own
//! redelivery, which counts it toward the dead-letter queue.

use crate::batch::{Batch, Fate, Message};

use super::{NotSent, Progress, Resend, fits};

impl<'e> Batch<'e> {
    /// The valid messages of a standard queue that failed after some progress
    /// in this invocation, to send back to their queue with their progress
    /// ([`crate::resume`]), with their positions for [`Batch::resent`]. A
    /// FIFO message never goes back: the copy would land behind its group.
    pub fn resends(&self) -> (Vec<usize>, Vec<Resend<'_>>) {
        if self.is_fifo() {
            return (Vec::new(), Vec::new());
        }
        (self.messages().iter().enumerate())
            .filter(|(_, m)| m.failed && m.progress > 0)
            .filter_map(|(i, m)| Some((i, self.copy_of(m)?)))
            .unzip()
    }

    /// The copy of `m` to send back, unless it cannot go back: a
    /// submission that used up its hops, or a body too close to the SQS
    /// size limit to carry its marker.
    fn copy_of(&self, m: &Message<'e>) -> Option<Resend<'e>> {
        let (Fate::Valid(index), Some(source_arn)) = (&m.fate, m.source_arn) else {
            return None;
        };
        let submission = self.encoded().get(*index)?;
        let progress = Progress {
            next: submission.sequence_of(submission.skipped + m.progress),
            hop: m.hop.saturating_add(1),
            accounted_limit: m.accounted_limit,
            // The decimal this delivery sent to Kinesis, so it parses.
            hash_key: (submission.explicit_hash_key.as_deref()).and_then(|h| h.parse().ok()),
        };
        let copy = (self.policy()).copy(progress, &submission.document_sha256, source_arn);
        let (marker, delay_seconds) = match copy {
            Ok(copy) => copy,
            Err(NotSent::HopLimit) => {
                tracing::warn!(
                    message_id = m.id,
                    submission_id = %submission.submission_id,
                    hops = m.hop,
                    max_resume_hops = self.policy().max_hops(),
                    "partly published submission used up its copies (MAX_RESUME_HOPS); reported failed, it reaches the dead-letter queue after MaxReceiveCount receives"
                );
                return None;
            }
            Err(NotSent::NoKey) => {
                tracing::warn!(
                    message_id = m.id,
                    "no PIPELINE_KEY to sign a resume marker with; it will be redelivered whole"
                );
                return None;
            }
        };
        if !fits(m.body, &marker) {
            tracing::warn!(
                message_id = m.id,
                "a body this close to the SQS size limit cannot carry its progress; it will be redelivered whole"
            );
            return None;
        }
        Some(Resend {
            source_arn,
            body: m.body,
            group_id: m.group_attribute,
            marker,
            delay_seconds,
            source_message_id: m.id.unwrap_or_default(),
        })
    }

    /// Records what the source queue said: a message sent back is
    /// acknowledged; one that was not is reported failed as before.
    pub fn resent(&mut self, positions: &[usize], results: Vec<Result<(), String>>) {
        for (&i, result) in positions.iter().zip(results) {
            let Some(id) = self.messages().get(i).map(|m| m.id) else {
                continue;
            };
            match result {
                Ok(()) => {
                    tracing::info!(
                        message_id = id,
                        "partly published submission sent back to its queue with its progress"
                    );
                    self.mark_resent(i);
                }
                Err(error) => tracing::warn!(
                    message_id = id,
                    error = %error,
                    "could not send a partly published submission back with its progress; it will be redelivered whole"
                ),
            }
        }
    }
}
