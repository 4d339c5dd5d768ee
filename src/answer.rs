//! The answer to SQS: `batchItemFailures`, the message ids of every
//! submission that was not fully published, so that SQS redelivers exactly
//! those and deletes the rest.
//!
//! Which messages failed is the batch's to say ([`crate::batch`]); this
//! module only tells SQS, under two rules of its protocol. An id is named
//! once, however often the batch repeats it: SQS reads the list as a set of
//! messages to keep. And a failed message without an id cannot be named at
//! all: an answer that left it out would tell SQS to delete it, so the
//! invocation fails instead ([`UnidentifiedFailure`]) and SQS redelivers
//! the whole batch: what was published is published again, but nothing is
//! lost.

use std::collections::HashSet;
use std::fmt;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};

use crate::batch::Batch;

/// Returned instead of a response when a message that must be retried has no
/// `messageId` to name it by: the invocation fails, so SQS retries the whole
/// batch rather than losing that message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnidentifiedFailure {
    /// Failed messages that have no `messageId`.
    pub failed_without_id: usize,
}

impl fmt::Display for UnidentifiedFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} message(s) without a messageId could not be processed; failing the whole batch so SQS retries it",
            self.failed_without_id
        )
    }
}

impl std::error::Error for UnidentifiedFailure {}

impl Batch<'_> {
    /// The answer to SQS: each failed message id once, in batch order.
    pub fn respond(&mut self) -> Result<SqsBatchResponse, UnidentifiedFailure> {
        self.fail_behind_failures();
        let mut seen: HashSet<&str> = HashSet::new();
        let mut response = SqsBatchResponse::default();
        let mut without_id = 0;
        for id in self.failed_ids() {
            match id {
                Some(id) => {
                    if seen.insert(id) {
                        let mut item = BatchItemFailure::default();
                        item.item_identifier = id.to_owned();
                        response.batch_item_failures.push(item);
                    }
                }
                None => without_id += 1,
            }
        }
        if without_id > 0 {
            tracing::error!(
                failed_without_id = without_id,
                "failing the whole batch: a failed message has no messageId"
            );
            return Err(UnidentifiedFailure {
                failed_without_id: without_id,
            });
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::fixtures::{failed_ids, record, report, triage, valid};

    #[test]
    fn a_duplicate_shares_the_fate_of_its_first_and_is_reported_once() {
        let records = [
            record("dup", None, &valid(0)),
            record("dup", None, &valid(0)),
        ];
        let mut batch = triage(&records);
        assert_eq!(batch.encoded().len(), 1, "processed once");
        batch.apply(0, &report(1, &[0]));
        assert_eq!(failed_ids(&mut batch), ["dup"]);
        let metrics = batch.count(true);
        assert_eq!((metrics.received, metrics.failed), (2, 2));
    }

    #[test]
    fn a_failed_message_without_an_id_fails_the_whole_batch() {
        let mut nameless = record("", None, &valid(0));
        nameless.message_id = None;
        let records = [nameless];
        let mut batch = triage(&records);
        batch.apply(0, &report(1, &[0]));
        assert_eq!(
            batch.respond().unwrap_err(),
            UnidentifiedFailure {
                failed_without_id: 1
            }
        );
    }
}
