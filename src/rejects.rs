//! Forwarding invalid submissions to an optional rejects queue.
//!
//! A rejected submission is acknowledged, so SQS forgets it; without a
//! rejects queue its only trace is a log line and a metric. With
//! `REJECTS_QUEUE_URL` set, the original body and the reason are kept for
//! inspection and replay, and a failed send turns the message into a batch
//! item failure so nothing is lost silently.
//!
//! The sends are bounded in time like every other wait of the invocation: a
//! rejects queue that accepts and never answers costs at most one call
//! timeout, and every send not finished by then counts as failed.

use std::future::Future;

use futures_util::StreamExt as _;
use futures_util::stream;
use tokio::time::Instant;

use crate::submission::Reason;

/// Concurrent sends to the rejects queue.
const MAX_CONCURRENT_SENDS: usize = 10;

/// What goes to the rejects queue: the body unchanged, the reason beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedMessage<'a> {
    pub body: &'a str,
    pub reason: Reason,
    pub detail: &'a str,
    pub source_message_id: &'a str,
    /// The source message's FIFO group, if any.
    pub group_id: Option<&'a str>,
}

/// The seam to the rejects queue: SQS in production, scripted in tests.
pub trait RejectSink: Sync {
    /// Sends one message; `Err` carries a short reason for the log.
    fn send(
        &self,
        message: &RejectedMessage<'_>,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// Why a send that was still waiting at `stop_at` counts as failed.
pub const NOT_ANSWERED_IN_TIME: &str = "the rejects queue did not answer in time";

/// Sends every message, a few at a time, and returns one result per message
/// in input order. Sends still unanswered at `stop_at` are dropped and
/// reported as [`NOT_ANSWERED_IN_TIME`]; those that finished keep their result.
pub async fn send_all<R: RejectSink>(
    sink: &R,
    messages: &[RejectedMessage<'_>],
    stop_at: Instant,
) -> Vec<Result<(), String>> {
    let mut results: Vec<Result<(), String>> =
        vec![Err(NOT_ANSWERED_IN_TIME.to_owned()); messages.len()];
    let mut sends = stream::iter(messages.iter().enumerate())
        .map(|(i, m)| async move { (i, sink.send(m).await) })
        .buffer_unordered(MAX_CONCURRENT_SENDS);
    while let Ok(Some((i, result))) = tokio::time::timeout_at(stop_at, sends.next()).await {
        if let Some(slot) = results.get_mut(i) {
            *slot = result;
        }
    }
    results
}

/// A rejects queue that is not configured: nothing to send to.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRejectsQueue;

impl RejectSink for NoRejectsQueue {
    async fn send(&self, _: &RejectedMessage<'_>) -> Result<(), String> {
        Ok(())
    }
}
