//! Forwarding invalid submissions to an optional rejects queue.
//!
//! A rejected submission is acknowledged, so SQS forgets it; without a
//! rejects queue its only trace is a log line and a metric. With
//! `REJECTS_QUEUE_URL` set, the original body and the reason are kept for
//! inspection and replay, and a failed send turns the message into a batch
//! item failure so nothing is lost silently.

use std::future::Future;

use futures_util::StreamExt as _;
use futures_util::stream;

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

/// Sends every message, a few at a time, and returns one result per message
/// in input order.
pub async fn send_all<R: RejectSink>(
    sink: &R,
    messages: &[RejectedMessage<'_>],
) -> Vec<Result<(), String>> {
    let mut results: Vec<Result<(), String>> = vec![Ok(()); messages.len()];
    let sends = stream::iter(messages.iter().enumerate())
        .map(|(i, m)| async move { (i, sink.send(m).await) })
        .buffer_unordered(MAX_CONCURRENT_SENDS);
    let done: Vec<(usize, Result<(), String>)> = sends.collect().await;
    for (i, r) in done {
        if let Some(slot) = results.get_mut(i) {
            *slot = r;
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
