//! The batch handler: an SQS batch in, `batchItemFailures` out.
//!
//! The flow, top to bottom: decode and validate every message; drop the
//! invalid ones (logged, counted, forwarded to the rejects queue if there is
//! one); encode the valid ones into records; publish them lane by lane; and
//! answer with the message ids of every submission that was not fully
//! published, so SQS redelivers exactly those.
//!
//! For a FIFO queue a message group is one lane: once a message of a group
//! fails, every later message of that group in the batch fails too, and
//! nothing of them is published, so SQS redelivers the group in order.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
#[cfg(feature = "lambda")]
use lambda_runtime::LambdaEvent;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::config::Config;
use crate::event::{self, EncodedSubmission};
use crate::metrics::InvocationMetrics;
use crate::publisher::{
    Outcome, PublishFailure, PublishReport, PublishStats, Publisher, RecordSink,
};
use crate::rejects::{self, RejectSink, RejectedMessage};
use crate::submission::{Limits, Rejection};
use crate::transform::transform;

/// The function: configuration plus its two outlets.
pub struct Handler<K, R> {
    config: Config,
    publisher: Publisher,
    kinesis: K,
    rejects: Option<R>,
    function_name: String,
}

/// Returned instead of a response when a message that must be retried has no
/// `messageId` to name it by: the invocation fails, so SQS retries the whole
/// batch rather than losing that message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnidentifiedFailure {
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

#[cfg(feature = "lambda")]
impl From<UnidentifiedFailure> for lambda_runtime::Diagnostic {
    fn from(e: UnidentifiedFailure) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "UnidentifiedFailure".into(),
            error_message: e.to_string(),
        }
    }
}

/// What became of one SQS message.
#[derive(Debug, Clone)]
enum Fate {
    /// Valid; its records are `encoded[index]`.
    Valid(usize),
    /// Invalid and acknowledged.
    Rejected(Rejection),
    /// Invalid, but the rejects queue could not take it, so it is retried.
    RejectNotStored,
    /// A repeat of an earlier message id in this batch; follows that message.
    Duplicate(usize),
}

struct Message<'e> {
    id: Option<&'e str>,
    group: Option<&'e str>,
    body: &'e str,
    fate: Fate,
    failed: bool,
    /// The round in which the message is stored or published (see [`rounds`]).
    round: usize,
}

impl<K: RecordSink, R: RejectSink> Handler<K, R> {
    pub fn new(config: Config, kinesis: K, rejects: Option<R>) -> Self {
        let function_name =
            std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "edr-preprocessor".into());
        Handler {
            publisher: Publisher::from_config(&config),
            config,
            kinesis,
            rejects,
            function_name,
        }
    }

    /// The Kinesis outlet (for tests that inspect what was sent).
    pub fn kinesis(&self) -> &K {
        &self.kinesis
    }

    pub fn rejects(&self) -> Option<&R> {
        self.rejects.as_ref()
    }

    /// The Lambda entry point: takes the deadline from the invocation context.
    #[cfg(feature = "lambda")]
    pub async fn invoke(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, UnidentifiedFailure> {
        let deadline = deadline_instant(event.context.deadline);
        self.handle(event.payload, deadline).await
    }

    /// Processes one batch; no PutRecords call is in flight after
    /// `deadline - DEADLINE_MARGIN_MS`. Logs the summary and emits the metrics.
    pub async fn handle(
        &self,
        event: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, UnidentifiedFailure> {
        let started = Instant::now();
        let (response, metrics) = self.process(&event.records, deadline).await;
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            received = metrics.received,
            valid = metrics.valid,
            rejected = metrics.rejected_total(),
            published = metrics.published,
            failed = metrics.failed,
            records = metrics.events_published,
            calls = metrics.put_records_calls,
            retries = metrics.records_retried,
            duration_ms,
            "batch processed"
        );
        metrics.emit(
            &self.config.metrics_namespace,
            &self.function_name,
            unix_millis(),
        );
        response
    }

    /// [`Handler::handle`] without the summary line and the metrics output:
    /// the answer, and what the invocation did.
    pub async fn process(
        &self,
        records: &[SqsMessage],
        deadline: Instant,
    ) -> (
        Result<SqsBatchResponse, UnidentifiedFailure>,
        InvocationMetrics,
    ) {
        let fifo = records.iter().any(is_fifo);
        let (mut messages, encoded) = self.triage(records, fifo);
        let rounds = rounds(&mut messages, fifo);
        // A rejects queue that does not answer costs at most one call
        // timeout, over all rounds together.
        let rejects_stop_at =
            (Instant::now() + self.config.call_timeout).min(self.publisher.stop_at(deadline));
        let mut stats = PublishStats::default();
        let mut publish_time = Duration::ZERO;
        for round in 0..rounds {
            if fifo {
                fail_rest_of_groups(&mut messages);
            }
            self.store_rejects(&mut messages, round, rejects_stop_at)
                .await;
            let lanes = lanes(&mut messages, round, fifo);
            let publish_started = Instant::now();
            let report = self
                .publisher
                .publish(&self.kinesis, &encoded, lanes, deadline)
                .await;
            publish_time += publish_started.elapsed();
            stats += report.stats;
            apply(&mut messages, round, &encoded, &report);
        }
        if fifo {
            fail_rest_of_groups(&mut messages);
        }
        let response = respond(&messages);
        let mut metrics = count(&messages, &encoded, response.is_ok());
        metrics.put_records_calls = stats.calls;
        metrics.records_retried = stats.records_retried;
        metrics.publish_latency_ms = publish_time.as_secs_f64() * 1000.0;
        (response, metrics)
    }

    /// Decodes, validates and encodes every message; repeats of a message id
    /// follow the first message with that id.
    fn triage<'e>(
        &self,
        records: &'e [SqsMessage],
        fifo: bool,
    ) -> (Vec<Message<'e>>, Vec<EncodedSubmission>) {
        let time_processed = event::format_time_processed(OffsetDateTime::now_utc());
        let limits = Limits {
            max_events: self.config.max_events_per_submission,
            max_record_bytes: self.config.max_record_bytes,
        };
        let mut encoded: Vec<EncodedSubmission> = Vec::new();
        let mut first_with_id: HashMap<&str, usize> = HashMap::new();
        let mut messages: Vec<Message<'_>> = Vec::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            let id = record.message_id.as_deref().filter(|id| !id.is_empty());
            let body = record.body.as_deref().unwrap_or_default();
            let fate = match id.and_then(|id| first_with_id.get(id)) {
                Some(&first) => {
                    tracing::warn!(
                        message_id = id,
                        "duplicate messageId in batch; processed once"
                    );
                    Fate::Duplicate(first)
                }
                None => match transform(body, limits, self.config.partition_key, &time_processed) {
                    Ok(submission) => {
                        encoded.push(submission);
                        Fate::Valid(encoded.len() - 1)
                    }
                    Err(rejection) => {
                        log_rejection(id, &rejection);
                        Fate::Rejected(rejection)
                    }
                },
            };
            if let Some(id) = id {
                first_with_id.entry(id).or_insert(index);
            }
            let group = if fifo {
                record.attributes.get("MessageGroupId").map(String::as_str)
            } else {
                None
            };
            messages.push(Message {
                id,
                group,
                body,
                fate,
                failed: false,
                round: 0,
            });
        }
        (messages, encoded)
    }

    /// Sends the invalid messages of `round` that have not failed to the
    /// rejects queue, if there is one; a refused or unanswered send fails its
    /// message, which SQS then redelivers.
    async fn store_rejects(&self, messages: &mut [Message<'_>], round: usize, stop_at: Instant) {
        let Some(sink) = &self.rejects else { return };
        let pending: Vec<(usize, RejectedMessage<'_>)> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m.round == round && !m.failed)
            .filter_map(|(i, m)| match &m.fate {
                Fate::Rejected(r) => Some((
                    i,
                    RejectedMessage {
                        body: m.body,
                        reason: r.reason,
                        detail: &r.detail,
                        source_message_id: m.id.unwrap_or_default(),
                        group_id: m.group,
                    },
                )),
                _ => None,
            })
            .collect();
        if pending.is_empty() {
            return;
        }
        let (indices, outgoing): (Vec<usize>, Vec<RejectedMessage<'_>>) =
            pending.into_iter().unzip();
        let results = rejects::send_all(sink, &outgoing, stop_at).await;
        drop(outgoing);
        for (i, result) in indices.into_iter().zip(results) {
            if let Err(error) = result {
                let Some(message) = messages.get_mut(i) else {
                    continue;
                };
                if let Fate::Rejected(rejection) = &message.fate {
                    tracing::warn!(
                        message_id = message.id,
                        reason = rejection.reason.as_str(),
                        error = %error,
                        "rejects queue did not take an invalid submission; it will be retried"
                    );
                    message.fate = Fate::RejectNotStored;
                    message.failed = true;
                }
            }
        }
    }
}

/// Splits the batch into rounds, each one "store rejects, then publish", and
/// returns how many there are.
///
/// A standard queue's messages are independent: one round. In a FIFO group an
/// invalid message that follows a valid one may be forwarded to the rejects
/// queue only once that valid one is published: if it is not, the invalid
/// message is reported failed and comes back, and forwarding it now would
/// store it again on every redelivery. So each time a group turns from valid
/// to invalid messages, its later messages go to the next round.
fn rounds(messages: &mut [Message<'_>], fifo: bool) -> usize {
    if !fifo {
        return 1;
    }
    // Per group: its current round, and whether its last message was valid.
    let mut groups: HashMap<&str, (usize, bool)> = HashMap::new();
    let mut rounds = 1;
    for m in messages.iter_mut() {
        let Some(group) = m.group else { continue };
        let (round, after_valid) = groups.entry(group).or_insert((0, false));
        match m.fate {
            Fate::Valid(_) => *after_valid = true,
            Fate::Rejected(_) | Fate::RejectNotStored => {
                if std::mem::replace(after_valid, false) {
                    *round += 1;
                }
            }
            Fate::Duplicate(_) => continue,
        }
        m.round = *round;
        rounds = rounds.max(*round + 1);
    }
    rounds
}

/// Builds the lanes of `round`: each valid submission alone, or each FIFO
/// group's valid submissions in batch order, cut at the first message that
/// already failed (whose successors are then failed without being published).
fn lanes(messages: &mut [Message<'_>], round: usize, fifo: bool) -> Vec<Vec<usize>> {
    if !fifo {
        return messages
            .iter()
            .filter(|m| m.round == round)
            .filter_map(|m| match m.fate {
                Fate::Valid(i) => Some(vec![i]),
                _ => None,
            })
            .collect();
    }
    let mut lanes: Vec<Vec<usize>> = Vec::new();
    let mut lane_of_group: HashMap<&str, usize> = HashMap::new();
    let mut blocked: HashSet<&str> = HashSet::new();
    for m in messages.iter_mut().filter(|m| m.round == round) {
        let Some(group) = m.group else {
            // A FIFO message always has a group; without one it stands alone.
            if let Fate::Valid(i) = m.fate {
                lanes.push(vec![i]);
            }
            continue;
        };
        if blocked.contains(group) {
            m.failed = true;
            continue;
        }
        if m.failed {
            blocked.insert(group);
            continue;
        }
        if let Fate::Valid(i) = m.fate {
            match lane_of_group
                .get(group)
                .and_then(|&lane| lanes.get_mut(lane))
            {
                Some(lane) => lane.push(i),
                None => {
                    lane_of_group.insert(group, lanes.len());
                    lanes.push(vec![i]);
                }
            }
        }
    }
    lanes
}

/// Marks the valid messages of `round` that were not fully published failed.
fn apply(
    messages: &mut [Message<'_>],
    round: usize,
    encoded: &[EncodedSubmission],
    report: &PublishReport,
) {
    for message in messages.iter_mut().filter(|m| m.round == round) {
        if let Fate::Valid(index) = message.fate {
            match report.outcomes.get(index).cloned().flatten() {
                Some(Outcome::Published) => {}
                Some(Outcome::Failed(failure)) => {
                    log_publish_failure(message.id, encoded.get(index), &failure);
                    message.failed = true;
                }
                None => message.failed = true,
            }
        }
    }
}

/// Marks every message of a group after its first failed message as failed.
fn fail_rest_of_groups(messages: &mut [Message<'_>]) {
    let mut failed_groups: HashSet<&str> = HashSet::new();
    for m in messages.iter_mut() {
        let failed = m.failed;
        if let Some(group) = m.group {
            if failed_groups.contains(group) {
                m.failed = true;
            } else if failed {
                failed_groups.insert(group);
            }
        }
    }
}

/// Whether the message is reported failed: a duplicate shares the fate of
/// the first message with its id.
fn is_failed(messages: &[Message<'_>], m: &Message<'_>) -> bool {
    match m.fate {
        Fate::Duplicate(first) => messages.get(first).is_some_and(|f| f.failed),
        _ => m.failed,
    }
}

/// The answer to SQS: each failed message id once, in batch order.
fn respond(messages: &[Message<'_>]) -> Result<SqsBatchResponse, UnidentifiedFailure> {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut response = SqsBatchResponse::default();
    let mut without_id = 0;
    for m in messages.iter().filter(|m| is_failed(messages, m)) {
        match m.id {
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

/// Counts each message of the batch once, by what SQS is told of it:
/// published (a valid submission, acknowledged), rejected (an invalid one,
/// acknowledged) or failed (reported in `batchItemFailures`, or the whole
/// batch when the answer is an error). A duplicate counts as its first.
fn count(
    messages: &[Message<'_>],
    encoded: &[EncodedSubmission],
    answered: bool,
) -> InvocationMetrics {
    let mut metrics = InvocationMetrics {
        received: messages.len() as u64,
        valid: encoded.len() as u64,
        ..InvocationMetrics::default()
    };
    for m in messages {
        if let (Fate::Valid(index), false) = (&m.fate, m.failed) {
            metrics.events_published += encoded.get(*index).map_or(0, |e| e.records.len() as u64);
        }
        if !answered {
            continue;
        }
        let fate = match m.fate {
            Fate::Duplicate(first) => messages.get(first).map(|f| &f.fate),
            _ => Some(&m.fate),
        };
        match fate {
            _ if is_failed(messages, m) => metrics.failed += 1,
            Some(Fate::Valid(_)) => metrics.published += 1,
            Some(Fate::Rejected(rejection)) => {
                *metrics.rejected.entry(rejection.reason).or_default() += 1
            }
            _ => metrics.failed += 1,
        }
    }
    if !answered {
        metrics.failed = metrics.received;
    }
    metrics
}

/// Only a FIFO queue's ARN ends in `.fifo`. A `MessageGroupId` attribute does
/// not make a queue FIFO: SQS fair queues are standard queues whose messages
/// carry one (the tenant), and they promise no order to keep.
fn is_fifo(record: &SqsMessage) -> bool {
    record
        .event_source_arn
        .as_deref()
        .is_some_and(|arn| arn.ends_with(".fifo"))
}

fn log_rejection(message_id: Option<&str>, rejection: &Rejection) {
    tracing::warn!(
        message_id,
        reason = rejection.reason.as_str(),
        detail = rejection.detail.as_str(),
        submission_id = rejection.submission_id.as_deref(),
        device_id = rejection.device_id.as_deref(),
        "submission rejected"
    );
}

fn log_publish_failure(
    message_id: Option<&str>,
    submission: Option<&EncodedSubmission>,
    failure: &PublishFailure,
) {
    tracing::warn!(
        message_id,
        submission_id = submission.map(|s| s.submission_id.to_string()),
        device_id = submission.map(|s| s.device_id.to_string()),
        cause = failure.cause.as_str(),
        first_unwritten_sequence = failure.sequence,
        error_code = failure.code.as_deref(),
        error_message = failure.message.as_deref(),
        "submission not fully published; it will be retried"
    );
}

/// The longest a Lambda invocation can run.
pub const MAX_INVOCATION: Duration = Duration::from_secs(15 * 60);

/// Deadlines below this (milliseconds since the epoch, March 1973) cannot
/// come from Lambda: they are a local runtime's duration, not an instant.
/// `cargo lambda watch` sends a fixed 600000 (ten minutes).
pub const PLAUSIBLE_DEADLINE_EPOCH_MS: u64 = 100_000_000_000;

/// Converts Lambda's deadline (milliseconds since the Unix epoch) into an
/// instant of the tokio clock.
///
/// A deadline that cannot be an epoch instant (below
/// [`PLAUSIBLE_DEADLINE_EPOCH_MS`]) comes from a local runtime emulator: it
/// is treated as no deadline, and the invocation gets Lambda's maximum of 15
/// minutes. A plausible deadline that has already passed means the
/// invocation is out of time: it is taken as now, so nothing is published and
/// every valid submission is reported at once, rather than running on until
/// Lambda kills the invocation and SQS redelivers the whole batch.
pub fn deadline_instant(deadline_epoch_ms: u64) -> Instant {
    deadline_at(deadline_epoch_ms, unix_millis(), Instant::now())
}

fn deadline_at(deadline_epoch_ms: u64, now_epoch_ms: u64, now: Instant) -> Instant {
    if deadline_epoch_ms < PLAUSIBLE_DEADLINE_EPOCH_MS {
        tracing::warn!(
            deadline_epoch_ms,
            "the invocation's deadline is not an epoch instant; assuming a local runtime and no deadline"
        );
        return now + MAX_INVOCATION;
    }
    match deadline_epoch_ms.checked_sub(now_epoch_ms) {
        Some(left) if left > 0 => now + Duration::from_millis(left).min(MAX_INVOCATION),
        _ => {
            tracing::error!(
                deadline_epoch_ms,
                now_epoch_ms,
                "the invocation's deadline has already passed; publishing nothing"
            );
            now
        }
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_is_taken_from_the_context() {
        let now = Instant::now();
        assert_eq!(
            deadline_at(1_700_000_030_000, 1_700_000_000_000, now),
            now + Duration::from_secs(30)
        );
    }

    #[test]
    fn an_implausible_deadline_means_a_local_runtime_without_one() {
        let now = Instant::now();
        // What `cargo lambda watch` sends: a duration, not an instant.
        assert_eq!(
            deadline_at(600_000, 1_700_000_000_000, now),
            now + MAX_INVOCATION
        );
        assert_eq!(
            deadline_at(PLAUSIBLE_DEADLINE_EPOCH_MS - 1, 1_700_000_000_000, now),
            now + MAX_INVOCATION
        );
    }

    #[test]
    fn a_plausible_deadline_already_past_means_out_of_time_now() {
        let now = Instant::now();
        for deadline in [
            1_700_000_000_000,
            1_699_999_999_999,
            PLAUSIBLE_DEADLINE_EPOCH_MS,
        ] {
            assert_eq!(
                deadline_at(deadline, 1_700_000_000_000, now),
                now,
                "{deadline}"
            );
        }
        assert_eq!(
            deadline_at(1_700_000_000_001, 1_700_000_000_000, now),
            now + Duration::from_millis(1)
        );
    }
}
