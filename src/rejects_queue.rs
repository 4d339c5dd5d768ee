//! Forwarding invalid submissions to an optional rejects queue.
//!
//! A rejected submission is acknowledged, so SQS forgets it; without a
//! rejects queue its only trace is a log line and a metric. With
//! `REJECTS_QUEUE_URL` set, the original body and the reason are kept for
//! inspection and replay, and a failed send turns the message into a batch
//! item failure so nothing is lost silently.
//!
//! Messages go out with `SendMessageBatch`, ten to a request: when a sensor
//! release breaks every submission of the fleet, the rejects queue takes the
//! whole stream of traffic, and one request per message would make it the
//! bottleneck. The sends are bounded in time like every other wait of the
//! invocation: a rejects queue that accepts and never answers costs at most
//! one call timeout, and every send not finished by then counts as failed.
//!
//! SQS counts message attributes toward its size limit. The body is what must
//! be kept (it is the only copy), so when body and attributes do not fit, the
//! attributes that do not fit are dropped, least useful first, never the body.

use std::future::Future;
use std::pin::pin;

use futures_util::StreamExt as _;
use futures_util::stream::{self, Stream};
use tokio::time::Instant;

use crate::model::Reason;

/// Requests in flight at once, per [`send_all`]. The handler runs two at
/// once (the entries publishing waits for, and the others), so the entries
/// that gate publishing never queue behind a flood of the others.
const MAX_CONCURRENT_SENDS: usize = 10;

/// SQS's limit on one message, body plus attributes, and on the sum of the
/// messages of one `SendMessageBatch` request: 1 MiB.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// SQS's limit on the entries of one `SendMessageBatch` request.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// The data type of every attribute; its name counts toward the size limit.
pub const ATTRIBUTE_TYPE: &str = "String";

/// What goes to the rejects queue: the body unchanged, the reason beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedMessage<'a> {
    /// The SQS body, unchanged.
    pub body: &'a str,
    /// Why it was rejected.
    pub reason: Reason,
    /// The rejection's detail.
    pub detail: &'a str,
    /// For a submission published without its invalid events
    /// (`INVALID_EVENTS=drop-event`): what was dropped, as
    /// `sequence:reason` pairs separated by commas. `None` for a rejected one.
    pub dropped_events: Option<&'a str>,
    /// The SQS message id it came with.
    pub source_message_id: &'a str,
    /// The source message's FIFO group, if any.
    pub group_id: Option<&'a str>,
}

impl<'a> RejectedMessage<'a> {
    /// The message attributes, most useful first, as many as fit beside the
    /// body in [`MAX_MESSAGE_BYTES`]. SQS refuses empty values: `-` stands in.
    /// `dropped_events` is there only for a submission that was published
    /// without them.
    pub fn attributes(&self) -> Vec<(&'static str, &'a str)> {
        let mut size = self.body.len();
        let mut kept = Vec::with_capacity(4);
        let dropped = self.dropped_events.map(|d| ("dropped_events", d));
        let attributes = [("reason", self.reason.as_str())]
            .into_iter()
            .chain(dropped)
            .chain([
                ("source_message_id", self.source_message_id),
                ("detail", self.detail),
            ]);
        for (name, value) in attributes {
            let value = if value.is_empty() { "-" } else { value };
            let cost = attribute_size(name, value);
            if size + cost <= MAX_MESSAGE_BYTES {
                size += cost;
                kept.push((name, value));
            }
        }
        kept
    }

    /// What SQS counts of this message: body and kept attributes.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes()
                .iter()
                .map(|(name, value)| attribute_size(name, value))
                .sum::<usize>()
    }
}

fn attribute_size(name: &str, value: &str) -> usize {
    name.len() + ATTRIBUTE_TYPE.len() + value.len()
}

/// The seam to the rejects queue: SQS in production, scripted in tests.
pub trait RejectSink: Sync {
    /// Sends up to [`MAX_BATCH_ENTRIES`] messages in one request; returns one
    /// result per message, in order (`Err` carries a short reason for the log).
    fn send_batch(
        &self,
        messages: &[RejectedMessage<'_>],
    ) -> impl Future<Output = Vec<Result<(), String>>> + Send;
}

/// Why a send that was still waiting at `stop_at` counts as failed.
pub const NOT_ANSWERED_IN_TIME: &str = "the rejects queue did not answer in time";

/// Sends every message, packed into batches, a few batches at a time, and
/// returns one result per message in input order. Batches still unanswered at
/// `stop_at` are dropped and their messages reported as
/// [`NOT_ANSWERED_IN_TIME`]; those that finished keep their result.
pub async fn send_all<R: RejectSink>(
    sink: &R,
    messages: &[RejectedMessage<'_>],
    stop_at: Instant,
) -> Vec<Result<(), String>> {
    let mut results: Vec<Result<(), String>> =
        vec![Err(NOT_ANSWERED_IN_TIME.to_owned()); messages.len()];
    let mut answers = pin!(answers(sink, messages, stop_at));
    while let Some(answered) = answers.next().await {
        record(&mut results, answered);
    }
    results
}

/// Puts each of one request's answers into its message's slot of
/// `results` (an index past the end is ignored).
pub fn record(results: &mut [Result<(), String>], answered: Answered) {
    for (i, result) in answered {
        if let Some(slot) = results.get_mut(i) {
            *slot = result;
        }
    }
}

/// What one request's answer said of each of its messages, by the
/// message's index in what was sent.
pub type Answered = Vec<(usize, Result<(), String>)>;

/// [`send_all`], as the answers come: one item per request, in the order
/// they are answered, so that what waits for a given message can go on as
/// soon as its own request is answered. The stream ends when every request
/// was answered, or at `stop_at`: a request still unanswered then yields
/// nothing (its messages are not stored, as far as anyone can tell).
pub fn answers<'a, R: RejectSink>(
    sink: &'a R,
    messages: &'a [RejectedMessage<'a>],
    stop_at: Instant,
) -> impl Stream<Item = Answered> + 'a {
    log_dropped_attributes(messages);
    let sends = stream::iter(pack(messages))
        .map(move |range| async move {
            let answers = match messages.get(range.clone()) {
                Some(batch) => sink.send_batch(batch).await,
                None => Vec::new(),
            };
            let mut answers = answers.into_iter();
            let missing = || Err("the rejects queue gave no result for it".to_owned());
            (range.map(|i| (i, answers.next().unwrap_or_else(missing)))).collect()
        })
        .buffer_unordered(MAX_CONCURRENT_SENDS);
    stream::unfold(Box::pin(sends), move |mut sends| async move {
        match tokio::time::timeout_at(stop_at, sends.next()).await {
            Ok(Some(answered)) => Some((answered, sends)),
            Ok(None) | Err(_) => None,
        }
    })
}

/// Cuts `messages` into consecutive batches of at most [`MAX_BATCH_ENTRIES`]
/// messages and [`MAX_MESSAGE_BYTES`] in all.
pub fn pack(messages: &[RejectedMessage<'_>]) -> Vec<std::ops::Range<usize>> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, message) in messages.iter().enumerate() {
        let size = message.size();
        if i > start && (i - start == MAX_BATCH_ENTRIES || bytes + size > MAX_MESSAGE_BYTES) {
            batches.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < messages.len() {
        batches.push(start..messages.len());
    }
    batches
}

fn log_dropped_attributes(messages: &[RejectedMessage<'_>]) {
    for message in messages {
        let kept = message.attributes();
        if kept.len() < 3 {
            let kept: Vec<&str> = kept.iter().map(|(name, _)| *name).collect();
            tracing::warn!(
                message_id = message.source_message_id,
                body_bytes = message.body.len(),
                kept = ?kept,
                "the rejected body leaves no room for all its attributes; sending the body with those that fit"
            );
        }
    }
}

/// A rejects queue that is not configured: nothing to send to.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRejectsQueue;

impl RejectSink for NoRejectsQueue {
    async fn send_batch(&self, messages: &[RejectedMessage<'_>]) -> Vec<Result<(), String>> {
        vec![Ok(()); messages.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> RejectedMessage<'_> {
        RejectedMessage {
            body,
            reason: Reason::InvalidBase64,
            detail: "invalid base64 character at offset 0",
            source_message_id: "m-1",
            group_id: None,
            dropped_events: None,
        }
    }

    #[test]
    fn a_small_body_keeps_every_attribute() {
        let m = message("%%%");
        assert_eq!(
            m.attributes(),
            [
                ("reason", "invalid_base64"),
                ("source_message_id", "m-1"),
                ("detail", "invalid base64 character at offset 0"),
            ]
        );
        assert_eq!(
            m.size(),
            3 + (6 + 6 + 14) + (17 + 6 + 3) + (6 + 6 + 36),
            "names, types and values count"
        );
    }

    #[test]
    fn a_body_near_the_limit_keeps_the_body_and_drops_what_does_not_fit() {
        // Room for the reason and the id, not for the detail.
        let body = "x".repeat(MAX_MESSAGE_BYTES - (6 + 6 + 14) - (17 + 6 + 3));
        let m = message(&body);
        assert_eq!(
            m.attributes(),
            [("reason", "invalid_base64"), ("source_message_id", "m-1")]
        );
        assert_eq!(m.size(), MAX_MESSAGE_BYTES);
        // A body of the full limit goes alone.
        let body = "x".repeat(MAX_MESSAGE_BYTES);
        let m = message(&body);
        assert!(m.attributes().is_empty());
        assert_eq!(m.size(), MAX_MESSAGE_BYTES);
    }

    #[test]
    fn a_published_submission_names_its_dropped_events_second() {
        let mut m = message("x");
        m.reason = Reason::NullValue;
        m.dropped_events = Some("1:null_value,4:invalid_destination_port");
        let names: Vec<&str> = m.attributes().iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            ["reason", "dropped_events", "source_message_id", "detail"]
        );
    }

    #[test]
    fn empty_values_are_sent_as_a_dash() {
        let mut m = message("x");
        m.detail = "";
        assert_eq!(m.attributes()[2], ("detail", "-"));
    }

    #[test]
    fn batches_hold_at_most_ten_messages_and_one_mebibyte() {
        let small: Vec<RejectedMessage<'_>> = (0..25).map(|_| message("%%%")).collect();
        assert_eq!(pack(&small), [0..10, 10..20, 20..25]);
        let big = "x".repeat(400 * 1024);
        let mixed: Vec<RejectedMessage<'_>> = [&big[..], "a", &big, &big, "b"]
            .into_iter()
            .map(message)
            .collect();
        // 400 KiB + a + 400 KiB fit; the third 400 KiB body does not.
        assert_eq!(pack(&mixed), [0..3, 3..5]);
        for range in pack(&mixed) {
            let bytes: usize = mixed[range].iter().map(RejectedMessage::size).sum();
            assert!(bytes <= MAX_MESSAGE_BYTES);
        }
        assert!(pack(&[]).is_empty());
    }
}
