//! What one invocation did, counted from its batch: the figures of
//! [`InvocationMetrics`] that come from the messages.
//!
//! Each message is counted once, by what SQS is told of it, so that the
//! counts add up the way an operator reads them: `SubmissionsReceived` is
//! `SubmissionsPublished + SubmissionsRejected + SubmissionsFailed +
//! SubmissionsResent`, whatever the batch held (duplicates, copies,
//! messages without an id). An invocation that fails as a whole
//! ([`crate::answer::UnidentifiedFailure`]) acknowledged nothing: every
//! message counts as failed.

use crate::batch::{Batch, Fate, Message};
use crate::metrics::InvocationMetrics;

impl Batch<'_> {
    /// Counts each message once, by what SQS is told of it: published (a
    /// valid submission, acknowledged), rejected (an invalid one,
    /// acknowledged) or failed (reported in `batchItemFailures`, or the
    /// whole batch when `answered` is false). A duplicate counts as its first.
    /// `split_across_shards` is left to the handler, which logs the splits
    /// it counts.
    pub fn count(&self, answered: bool) -> InvocationMetrics {
        let mut metrics = InvocationMetrics {
            received: self.messages().len() as u64,
            valid: self.encoded().len() as u64,
            ..InvocationMetrics::default()
        };
        for m in self.messages() {
            self.count_events(&mut metrics, m, answered);
            metrics.resume_markers_ignored += u64::from(m.marker_ignored.is_some());
            if answered {
                self.count_told(&mut metrics, m);
            }
        }
        if !answered {
            metrics.failed = metrics.received;
        }
        metrics
    }

    /// The events of a valid message: those this invocation published, and
    /// those it dropped and the answer acknowledged.
    fn count_events(&self, metrics: &mut InvocationMetrics, m: &Message<'_>, answered: bool) {
        let Fate::Valid(index) = &m.fate else {
            return;
        };
        let submission = self.encoded().get(*index);
        metrics.events_published += if m.resent {
            m.progress
        } else if !m.failed {
            submission.map_or(0, |e| e.records.len())
        } else {
            0
        } as u64;
        // Only what this delivery accounts for: a copy's earlier
        // drops were counted by the delivery that stored them.
        let acknowledged = answered && !m.failed;
        for dropped in (m.dropped.iter())
            .filter(|_| acknowledged)
            .flat_map(|d| &d.events)
        {
            *metrics.events_dropped.entry(dropped.reason).or_default() += 1;
        }
    }

    /// Counts `m` under what the answer told SQS of it (a duplicate, of
    /// its first).
    fn count_told(&self, metrics: &mut InvocationMetrics, m: &Message<'_>) {
        let first = match m.fate {
            Fate::Duplicate(first) => self.messages().get(first),
            _ => Some(m),
        };
        let fate = first.map(|f| &f.fate);
        let resent = first.is_some_and(|f| f.resent);
        match fate {
            _ if self.is_failed(m) => metrics.failed += 1,
            _ if resent => metrics.resent += 1,
            Some(Fate::Valid(_)) => metrics.published += 1,
            Some(Fate::Rejected(rejection)) => {
                *metrics.rejected.entry(rejection.reason).or_default() += 1
            }
            _ => metrics.failed += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::batch::IndependentReject;
    use crate::batch::fixtures::{record, report, triage, valid};

    #[test]
    fn each_message_is_counted_once() {
        let records = [
            record("p", None, &valid(0)),
            record("r", None, "%%%"),
            record("f", None, &valid(1)),
            record("n", None, "not base64!"),
        ];
        let mut batch = triage(&records);
        let positions: Vec<usize> = (batch.independent_rejects().iter())
            .map(IndependentReject::position)
            .collect();
        batch.rejects_stored(&positions, vec![Ok(()), Err("refused".into())]);
        batch.apply(0, &report(2, &[1]));
        let answered = batch.respond().is_ok();
        let m = batch.count(answered);
        assert_eq!((m.published, m.rejected_total(), m.failed), (1, 1, 2));
        assert_eq!(m.events_published, 1);
        let unanswered = batch.count(false);
        assert_eq!((unanswered.published, unanswered.failed), (0, 4));
    }
}
