//! The bookkeeping of one SQS batch: what became of each message, without
//! any I/O.
//!
//! [`Batch::triage`] decodes, validates and encodes every message and sets
//! apart repeats of a message id. The handler then runs the batch in rounds,
//! each "store the rejects the round waits for, then publish"
//! ([`Batch::gating_rejects`], [`Batch::lanes`], [`Batch::apply`]), while
//! the rejects that gate nothing are stored beside them
//! ([`Batch::independent_rejects`]). What became of each message is then
//! read, each in its own module, by the resume decision ([`crate::resume`],
//! [`Batch::resends`]: which messages go back to their queue with their
//! progress), by the answer to SQS ([`crate::answer`], [`Batch::respond`]),
//! which names the messages SQS must redeliver, and by the counts
//! ([`crate::metrics`], [`Batch::count`]), one per message.
//!
//! For a FIFO queue a message group is one lane: once a message of a group
//! fails, every later message of that group in the batch fails too, and
//! nothing of them is published or forwarded, so SQS redelivers the group
//! in order.

use std::collections::{HashMap, HashSet};

use aws_lambda_events::event::sqs::SqsMessage;

use crate::encode::{EncodedSubmission, RecordKeys};
use crate::gates;
use crate::model::{DroppedEvent, InvalidEvents, Limits, Reason, Rejection};
use crate::publisher::{Outcome, PublishFailure, PublishReport};
use crate::rejects_queue::RejectedMessage;
use crate::resume::{self, Ignored, Policy, Start};
use crate::shard_split::ShardSplit;
use crate::transform::{transform, transform_with};

/// What became of one SQS message.
#[derive(Debug, Clone)]
pub(crate) enum Fate {
    /// Valid; its records are `encoded[index]`.
    Valid(usize),
    /// Invalid and acknowledged.
    Rejected(Rejection),
    /// Invalid, but the rejects queue could not take it, so it is retried.
    RejectNotStored,
    /// A repeat of an earlier message id in this batch; follows that message.
    Duplicate(usize),
}

/// One SQS message and what became of it.
pub(crate) struct Message<'e> {
    /// Its `messageId`, unless it has none (or an empty one).
    pub(crate) id: Option<&'e str>,
    /// Its FIFO message group: its lane (none on a standard queue).
    pub(crate) group: Option<&'e str>,
    pub(crate) body: &'e str,
    pub(crate) fate: Fate,
    /// A valid submission published without some invalid events
    /// (`INVALID_EVENTS=drop-event`) that no earlier delivery accounted for:
    /// what goes to the rejects queue for it, and what is counted.
    pub(crate) dropped: Option<Dropped>,
    /// The source queue, for a re-send ([`crate::resume`]).
    pub(crate) source_arn: Option<&'e str>,
    /// A fair queue's message group (kept on a re-send).
    pub(crate) group_attribute: Option<&'e str>,
    /// Copies of the message sent before this delivery (its marker's hop; 0
    /// for a first delivery).
    pub(crate) hop: u32,
    /// The record limit under which its drops at or after its progress are
    /// accounted for (what its copy's marker carries).
    pub(crate) accounted_limit: usize,
    /// The resume marker it carried, ignored: why.
    pub(crate) marker_ignored: Option<Ignored>,
    /// Records acknowledged in this invocation, for a valid submission that
    /// was not fully published.
    pub(crate) progress: usize,
    /// Sent back to its queue with its progress, and acknowledged.
    pub(crate) resent: bool,
    /// To be named in `batchItemFailures` (a duplicate: see
    /// [`Batch::is_failed`]).
    pub(crate) failed: bool,
    /// The round in which the message is stored or published.
    pub(crate) round: usize,
}

impl<'e> Message<'e> {
    /// The message `record`, named `id`, as its reading left it: its fate,
    /// where it started, and the drops it accounts for. `limit` is the
    /// record limit of this delivery.
    fn new(
        record: &'e SqsMessage,
        id: Option<&'e str>,
        fifo: bool,
        (fate, start, dropped): (Fate, Option<Start>, Option<Dropped>),
        limit: usize,
    ) -> Self {
        let group_attribute = record.attributes.get("MessageGroupId").map(String::as_str);
        Message {
            id,
            group: group_attribute.filter(|_| fifo),
            body: record.body.as_deref().unwrap_or_default(),
            fate,
            dropped,
            source_arn: record.event_source_arn.as_deref(),
            group_attribute,
            hop: start.as_ref().map_or(0, |s| s.hop),
            accounted_limit: start.as_ref().map_or(limit, |s| s.accounted_limit),
            marker_ignored: start.and_then(|s| s.ignored),
            progress: 0,
            resent: false,
            failed: false,
            round: 0,
        }
    }
}

/// The rejects-queue entry of a submission published without some events.
#[derive(Debug, Clone)]
pub(crate) struct Dropped {
    /// The first dropped event's reason (the `reason` attribute).
    pub(crate) reason: Reason,
    /// The events, by sequence.
    pub(crate) events: Vec<DroppedEvent>,
    /// `sequence:reason` pairs, comma-separated.
    pub(crate) list: String,
    pub(crate) detail: String,
}

impl Dropped {
    /// The entry for the events `start` leaves this delivery to account for.
    fn of(submission: &EncodedSubmission, start: &Start) -> Option<Self> {
        let events = start.unaccounted.clone();
        let reason = events.first()?.reason;
        let list: Vec<String> = (events.iter())
            .map(|d| format!("{}:{}", d.sequence, d.reason))
            .collect();
        let total = submission.dropped.len() + submission.skipped + submission.records.len();
        let detail = match start.resumed_at {
            None => format!(
                "{} of {total} events dropped, the others published",
                events.len()
            ),
            Some(next) => format!(
                "{} of {total} events dropped by a copy resumed at sequence {next} (earlier deliveries accounted for the others they dropped)",
                events.len()
            ),
        };
        Some(Dropped {
            reason,
            events,
            list: list.join(","),
            detail,
        })
    }
}

/// Who a rejects-queue entry is sent for ([`Batch::gating_rejects`]'s
/// order), or which lane waits for it ([`Batch::lane_waits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Sender<'e> {
    Group(&'e str),
    Device(uuid::Uuid),
    Message(usize),
}

/// A whole-message reject of a standard queue, with what its rejects-queue
/// entry needs ([`Batch::independent_rejects`]).
#[derive(Debug, Clone)]
pub struct IndependentReject<'e> {
    position: usize,
    body: &'e str,
    reason: Reason,
    detail: String,
    source_message_id: &'e str,
}

impl IndependentReject<'_> {
    /// Its position, for [`Batch::rejects_stored`].
    pub fn position(&self) -> usize {
        self.position
    }

    /// Its rejects-queue entry.
    pub fn message(&self) -> RejectedMessage<'_> {
        RejectedMessage {
            body: self.body,
            reason: self.reason,
            detail: &self.detail,
            dropped_events: None,
            source_message_id: self.source_message_id,
            group_id: None,
        }
    }
}

/// One SQS batch, message by message.
pub struct Batch<'e> {
    messages: Vec<Message<'e>>,
    encoded: Vec<EncodedSubmission>,
    /// Per encoded submission, the shards its records were acknowledged on.
    shards: Vec<Vec<String>>,
    fifo: bool,
    rounds: usize,
    policy: &'e Policy,
}

impl<'e> Batch<'e> {
    /// Decodes, validates and encodes every message; repeats of a message id
    /// follow the first message with that id.
    pub fn triage(
        records: &'e [SqsMessage],
        limits: Limits,
        keys: RecordKeys<'_>,
        time_processed: &str,
        policy: &'e Policy,
    ) -> Self {
        let fifo = records.iter().any(is_fifo);
        let reading = Reading {
            limits,
            keys,
            time_processed,
            policy,
        };
        let mut encoded: Vec<EncodedSubmission> = Vec::new();
        let mut first_with_id: HashMap<&str, usize> = HashMap::new();
        let mut messages: Vec<Message<'_>> = Vec::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            let id = record.message_id.as_deref().filter(|id| !id.is_empty());
            let read = match id.and_then(|id| first_with_id.get(id)) {
                Some(&first) => {
                    tracing::warn!(
                        message_id = id,
                        "duplicate messageId in batch; processed once"
                    );
                    (Fate::Duplicate(first), None, None)
                }
                None => reading.read(record, id, &mut encoded),
            };
            if let Some(id) = id {
                first_with_id.entry(id).or_insert(index);
            }
            messages.push(Message::new(
                record,
                id,
                fifo,
                read,
                limits.max_record_bytes,
            ));
        }
        let mut batch = Batch {
            messages,
            shards: vec![Vec::new(); encoded.len()],
            encoded,
            fifo,
            rounds: 1,
            policy,
        };
        batch.assign_rounds();
        batch
    }

    /// The valid submissions, encoded; lanes index into it.
    pub fn encoded(&self) -> &[EncodedSubmission] {
        &self.encoded
    }

    /// How many rounds of "store rejects, then publish" the batch needs.
    pub fn rounds(&self) -> usize {
        self.rounds
    }

    /// Splits the batch into rounds.
    ///
    /// A standard queue's messages are independent: one round. In a FIFO
    /// group an invalid message that follows a valid one may be forwarded to
    /// the rejects queue only once that valid one is published: if it is
    /// not, the invalid message is reported failed and comes back, and
    /// forwarding it now would store it again on every redelivery. So each
    /// time a group turns from valid to invalid messages, its later messages
    /// go to the next round.
    fn assign_rounds(&mut self) {
        if !self.fifo {
            return;
        }
        // Per group: its current round, and whether its last message was valid.
        let mut groups: HashMap<&str, (usize, bool)> = HashMap::new();
        for m in self.messages.iter_mut() {
            let Some(group) = m.group else { continue };
            let (round, after_valid) = groups.entry(group).or_insert((0, false));
            match m.fate {
                // Its rejects-queue entry, too, waits for the valid ones before it.
                Fate::Valid(_) if m.dropped.is_some() => {
                    if std::mem::replace(after_valid, true) {
                        *round += 1;
                    }
                }
                Fate::Valid(_) => *after_valid = true,
                Fate::Rejected(_) | Fate::RejectNotStored => {
                    if std::mem::replace(after_valid, false) {
                        *round += 1;
                    }
                }
                Fate::Duplicate(_) => continue,
            }
            m.round = *round;
            self.rounds = self.rounds.max(*round + 1);
        }
    }

    /// In a FIFO batch, marks every message of a group after its first
    /// failed message as failed (before each round, and before the answer).
    pub fn fail_behind_failures(&mut self) {
        if !self.fifo {
            return;
        }
        let mut failed_groups: HashSet<&str> = HashSet::new();
        for m in self.messages.iter_mut() {
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

    /// The rejects-queue entries that must be stored before `round` is
    /// published, with their positions for [`Batch::rejects_stored`]: the
    /// entry of each valid submission that lost events (if the rejects
    /// queue refuses it, the submission is not published and comes back
    /// whole), and in a FIFO batch every entry of the round (a refused one
    /// blocks the rest of its group). A standard queue's whole-message
    /// rejects gate nothing: [`Batch::independent_rejects`].
    ///
    /// In the order they are to be sent: one sender after the other in turn
    /// ([`gates::round_robin`]: by device on a standard queue, by group on a
    /// FIFO queue, whose order within a group is kept), so that one device's
    /// flood of partly valid submissions fills the later requests, not the
    /// ones the others wait for.
    pub fn gating_rejects(&self, round: usize) -> (Vec<usize>, Vec<RejectedMessage<'_>>) {
        let entries = (self.messages.iter().enumerate())
            .filter(|(_, m)| m.round == round && !m.failed)
            .filter_map(|(i, m)| {
                let (reason, detail, dropped_events) = match (&m.fate, &m.dropped) {
                    (Fate::Rejected(r), _) if self.fifo => (r.reason, r.detail.as_str(), None),
                    (Fate::Valid(_), Some(d)) => (d.reason, d.detail.as_str(), Some(&*d.list)),
                    _ => return None,
                };
                let message = RejectedMessage {
                    body: m.body,
                    reason,
                    detail,
                    source_message_id: m.id.unwrap_or_default(),
                    group_id: m.group,
                    dropped_events,
                };
                Some((self.sender(i), (i, message)))
            });
        gates::round_robin(entries).into_iter().unzip()
    }

    /// Who sent the message at `position`, for the order of the entries:
    /// its FIFO group, or on a standard queue the device of a valid
    /// submission; otherwise the message alone.
    fn sender(&self, position: usize) -> Sender<'_> {
        let Some(m) = self.messages.get(position) else {
            return Sender::Message(position);
        };
        match (m.group, &m.fate) {
            (Some(group), _) => Sender::Group(group),
            (None, Fate::Valid(index)) => (self.encoded.get(*index))
                .map_or(Sender::Message(position), |s| Sender::Device(s.device_id)),
            (None, _) => Sender::Message(position),
        }
    }

    /// For each of `lanes` (those of `round`), the indices into `gating`
    /// (the positions [`Batch::gating_rejects`] returned) of the entries it
    /// waits for: a partly valid submission's own entry, a FIFO group's
    /// entries of the round (which all come before its valid messages).
    pub fn lane_waits(&self, lanes: &[Vec<usize>], gating: &[usize]) -> Vec<Vec<usize>> {
        let position_of: HashMap<usize, usize> = (self.messages.iter().enumerate())
            .filter_map(|(p, m)| match m.fate {
                Fate::Valid(index) => Some((index, p)),
                _ => None,
            })
            .collect();
        let key = |p: usize| match self.messages.get(p).and_then(|m| m.group) {
            Some(group) => Sender::Group(group),
            None => Sender::Message(p),
        };
        let mut entries_of: HashMap<Sender<'_>, Vec<usize>> = HashMap::new();
        for (entry, &p) in gating.iter().enumerate() {
            entries_of.entry(key(p)).or_default().push(entry);
        }
        (lanes.iter())
            .map(|lane| {
                (lane.first().and_then(|i| position_of.get(i)))
                    .and_then(|&first| entries_of.get(&key(first)))
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The whole-message rejects of a standard queue: each one's result
    /// decides its own message's fate and nothing else, so they are stored
    /// while the batch is published, and a flood of them holds no valid
    /// submission back. Detached from the batch, which is changed meanwhile.
    pub fn independent_rejects(&self) -> Vec<IndependentReject<'e>> {
        if self.fifo {
            return Vec::new();
        }
        (self.messages.iter().enumerate())
            .filter_map(|(position, m)| match &m.fate {
                Fate::Rejected(r) if !m.failed => Some(IndependentReject {
                    position,
                    body: m.body,
                    reason: r.reason,
                    detail: r.detail.clone(),
                    source_message_id: m.id.unwrap_or_default(),
                }),
                _ => None,
            })
            .collect()
    }

    /// Records what the rejects queue said: a refused or unanswered send
    /// fails its message, which SQS then redelivers.
    pub fn rejects_stored(&mut self, positions: &[usize], results: Vec<Result<(), String>>) {
        for (&i, result) in positions.iter().zip(results) {
            let (Err(error), Some(message)) = (result, self.messages.get_mut(i)) else {
                continue;
            };
            match &message.fate {
                Fate::Rejected(rejection) => {
                    tracing::warn!(
                        message_id = message.id,
                        reason = rejection.reason.as_str(),
                        error = %error,
                        "rejects queue did not take an invalid submission; it will be retried"
                    );
                    message.fate = Fate::RejectNotStored;
                    message.failed = true;
                }
                Fate::Valid(_) => {
                    tracing::warn!(
                        message_id = message.id,
                        error = %error,
                        "rejects queue did not take a submission with dropped events; it is not published and will be retried"
                    );
                    message.failed = true;
                }
                _ => {}
            }
        }
    }

    /// The lanes of `round`: each valid submission alone, or each FIFO
    /// group's valid submissions in batch order, cut at the first message
    /// that already failed (whose successors are then failed unpublished).
    pub fn lanes(&mut self, round: usize) -> Vec<Vec<usize>> {
        let fifo = self.fifo;
        let mut lanes: Vec<Vec<usize>> = Vec::new();
        let mut lane_of_group: HashMap<&str, usize> = HashMap::new();
        let mut blocked: HashSet<&str> = HashSet::new();
        for m in self.messages.iter_mut().filter(|m| m.round == round) {
            let group = m.group.filter(|_| fifo);
            if let Some(group) = group {
                if blocked.contains(group) {
                    m.failed = true;
                    continue;
                }
                if m.failed {
                    blocked.insert(group);
                    continue;
                }
            }
            let Fate::Valid(i) = m.fate else { continue };
            if m.failed {
                continue;
            }
            // A FIFO message always has a group; without one it stands alone.
            match group.and_then(|g| lane_of_group.get(g).copied()) {
                Some(lane) => lanes.get_mut(lane).into_iter().for_each(|l| l.push(i)),
                None => {
                    if let Some(group) = group {
                        lane_of_group.insert(group, lanes.len());
                    }
                    lanes.push(vec![i]);
                }
            }
        }
        lanes
    }

    /// Marks the valid messages of `round` that were not fully published
    /// failed, and keeps the shards their records were acknowledged on.
    pub fn apply(&mut self, round: usize, report: &PublishReport) {
        for (seen, named) in self.shards.iter_mut().zip(&report.shards) {
            for shard in named {
                if !seen.contains(shard) {
                    seen.push(shard.clone());
                }
            }
        }
        for message in self.messages.iter_mut().filter(|m| m.round == round) {
            if let Fate::Valid(index) = message.fate {
                match report.outcomes.get(index).cloned().flatten() {
                    Some(Outcome::Published) => {}
                    Some(Outcome::Failed(failure)) => {
                        log_publish_failure(message.id, self.encoded.get(index), &failure);
                        message.progress = failure.sequence;
                        message.failed = true;
                    }
                    None => message.failed = true,
                }
            }
        }
    }

    /// Marks the message at `position` sent back to its queue with its
    /// progress ([`crate::resume`]), and so acknowledged.
    pub(crate) fn mark_resent(&mut self, position: usize) {
        if let Some(message) = self.messages.get_mut(position) {
            message.failed = false;
            message.resent = true;
        }
    }

    /// The valid submissions whose records were acknowledged on more than
    /// one shard in this invocation ([`crate::shard_split`]).
    pub fn shard_splits(&self) -> Vec<ShardSplit<'_>> {
        self.messages
            .iter()
            .filter_map(|m| {
                let Fate::Valid(index) = m.fate else {
                    return None;
                };
                let shards = self.shards.get(index).filter(|s| s.len() > 1)?;
                Some(ShardSplit {
                    message_id: m.id,
                    submission_id: self.encoded.get(index)?.submission_id,
                    shards,
                })
            })
            .collect()
    }

    /// Whether `m` is reported failed: a duplicate shares the fate of the
    /// first message with its id.
    pub(crate) fn is_failed(&self, m: &Message<'_>) -> bool {
        match m.fate {
            Fate::Duplicate(first) => self.messages.get(first).is_some_and(|f| f.failed),
            _ => m.failed,
        }
    }

    /// Whether the batch comes from a FIFO queue.
    pub(crate) fn is_fifo(&self) -> bool {
        self.fifo
    }

    /// How resume markers are read and written.
    pub(crate) fn policy(&self) -> &'e Policy {
        self.policy
    }

    /// The messages, in batch order, for what reads the batch (the counts,
    /// the resume decision); they change only here.
    pub(crate) fn messages(&self) -> &[Message<'e>] {
        &self.messages
    }

    /// The id of each message reported failed, in batch order (`None` for
    /// one without an id), for the answer ([`crate::answer`]); a message
    /// whose id appeared before is named again.
    pub(crate) fn failed_ids(&self) -> impl Iterator<Item = Option<&'e str>> + '_ {
        (self.messages.iter())
            .filter(|m| self.is_failed(m))
            .map(|m| m.id)
    }
}

/// What reading a message needs.
struct Reading<'a> {
    limits: Limits,
    keys: RecordKeys<'a>,
    time_processed: &'a str,
    policy: &'a Policy,
}

impl Reading<'_> {
    /// Decodes, validates and encodes one message that repeats no earlier
    /// id; a valid one is added to `encoded` and starts where its marker
    /// says, with the drops it must account for.
    fn read(
        &self,
        record: &SqsMessage,
        id: Option<&str>,
        encoded: &mut Vec<EncodedSubmission>,
    ) -> (Fate, Option<Start>, Option<Dropped>) {
        let body = record.body.as_deref().unwrap_or_default();
        let mut delivery = resume::Delivery::of(self.policy, record);
        // The marker is read once the document is known and before the
        // records are placed: a copy's records carry the hash key of its
        // first delivery, which only a marker the function wrote can name.
        let mut keys = self.keys;
        let keys_for = |document_sha256: &[u8; 32]| {
            keys = RecordKeys {
                message_id: id,
                carried_hash_key: delivery.read(document_sha256),
                ..self.keys
            };
            keys
        };
        let transformed = transform_with(body, self.limits, keys_for, self.time_processed);
        let mut submission = match transformed {
            Ok(submission) => submission,
            Err(rejection) => {
                log_rejection(id, &rejection);
                return (Fate::Rejected(rejection), None, None);
            }
        };
        let start = delivery.start(id, &mut submission, self.limits.max_record_bytes, |limit| {
            self.dropped_under(body, keys, limit)
        });
        let dropped = Dropped::of(&submission, &start);
        if let Some(d) = &dropped {
            log_dropped_events(id, &submission, d);
        }
        encoded.push(submission);
        (Fate::Valid(encoded.len() - 1), Some(start), dropped)
    }

    /// The events `body` drops under the record limit `limit`
    /// (`drop-event`), for a copy read under another limit than its
    /// earlier deliveries.
    fn dropped_under(
        &self,
        body: &str,
        keys: RecordKeys<'_>,
        limit: usize,
    ) -> Option<Vec<DroppedEvent>> {
        let limits = Limits {
            max_record_bytes: limit,
            invalid_events: InvalidEvents::DropEvent,
            ..self.limits
        };
        transform(body, limits, keys, self.time_processed)
            .ok()
            .map(|earlier| earlier.dropped)
    }
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

fn log_dropped_events(message_id: Option<&str>, submission: &EncodedSubmission, dropped: &Dropped) {
    tracing::warn!(
        message_id,
        submission_id = %submission.submission_id,
        device_id = %submission.device_id,
        dropped_events = dropped.list.as_str(),
        published_events = submission.records.len(),
        "invalid events dropped; the others are published"
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
        // Counted in the whole submission, whatever this delivery skipped.
        first_unwritten_sequence = submission.map(|s| s.sequence_of(s.skipped + failure.sequence)),
        acknowledged_records = submission.map(|s| s.skipped + failure.sequence),
        error_code = failure.code.as_deref(),
        error_message = failure.message.as_deref(),
        "submission not fully published; it will be resumed or retried"
    );
}

/// Batches for the tests of the batch and of what reads it (the answer,
/// the counts).
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::publisher::{FailureCause, PublishStats};

    pub(crate) const VALID: &str = r#"{"submission_id":"5b000000-0000-4000-8000-000000000000","device_id":"de000000-0000-4000-8000-000000000000","time_created":"2021-03-29T12:06:09","events":{"new_process":[{"cmdl":"a","user":"b"}]}}"#;

    pub(crate) fn valid(n: u8) -> String {
        VALID.replace(
            "000000000000\",\"device",
            &format!("0000000000{n:02x}\",\"device"),
        )
    }

    pub(crate) fn record(id: &str, group: Option<&str>, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body.into());
        m.event_source_arn = Some(match group {
            Some(_) => "arn:aws:sqs:eu-west-1:1:q.fifo".into(),
            None => "arn:aws:sqs:eu-west-1:1:q".into(),
        });
        if let Some(g) = group {
            m.attributes.insert("MessageGroupId".into(), g.into());
        }
        m
    }

    pub(crate) static POLICY: std::sync::LazyLock<Policy> = std::sync::LazyLock::new(|| {
        Policy::from_config(&crate::config::Config::for_stream("s").unwrap())
    });

    pub(crate) fn triage(records: &[SqsMessage]) -> Batch<'_> {
        Batch::triage(
            records,
            Limits::with_max_events(10),
            crate::config::PartitionKey::SubmissionId.into(),
            "t",
            &POLICY,
        )
    }

    /// A report in which the submissions at `failed` failed, the rest were published.
    pub(crate) fn report(encoded: usize, failed: &[usize]) -> PublishReport {
        let failure = PublishFailure {
            cause: FailureCause::NonRetryable,
            sequence: 0,
            code: None,
            message: None,
        };
        PublishReport {
            outcomes: (0..encoded)
                .map(|i| {
                    Some(if failed.contains(&i) {
                        Outcome::Failed(failure.clone())
                    } else {
                        Outcome::Published
                    })
                })
                .collect(),
            shards: vec![Vec::new(); encoded],
            stats: PublishStats::default(),
        }
    }

    pub(crate) fn failed_ids(batch: &mut Batch<'_>) -> Vec<String> {
        let response = batch.respond().unwrap();
        response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{POLICY, VALID, failed_ids, record, report, triage, valid};
    use super::*;
    use crate::model::InvalidEvents;

    #[test]
    fn a_standard_batch_is_one_round_of_one_lane_per_valid_submission() {
        let records = [
            record("a", None, &valid(0)),
            record("bad", None, "%%%"),
            record("b", None, &valid(1)),
        ];
        let mut batch = triage(&records);
        assert_eq!(batch.rounds(), 1);
        assert_eq!(batch.encoded().len(), 2);
        assert_eq!(batch.lanes(0), [vec![0], vec![1]]);
        assert!(batch.gating_rejects(0).0.is_empty(), "nothing waits for it");
        let rejects = batch.independent_rejects();
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].position(), 1);
        assert_eq!(rejects[0].message().source_message_id, "bad");
    }

    #[test]
    fn only_the_entries_of_partly_valid_submissions_gate_a_standard_batch() {
        let partial = VALID.replace(
            r#"[{"cmdl":"a","user":"b"}]"#,
            r#"[{"cmdl":"a","user":"b"},{"cmdl":null,"user":"b"}]"#,
        );
        let records = [
            record("bad", None, "%%%"),
            record("partial", None, &partial),
            record("ok", None, &valid(1)),
        ];
        let limits = Limits::with_max_events(10).with_invalid_events(InvalidEvents::DropEvent);
        let key = crate::config::PartitionKey::SubmissionId.into();
        let batch = Batch::triage(&records, limits, key, "t", &POLICY);
        let (positions, gating) = batch.gating_rejects(0);
        assert_eq!(positions, [1]);
        assert_eq!(gating[0].dropped_events, Some("1:null_value"));
        let independent = batch.independent_rejects();
        assert_eq!(independent.len(), 1);
        assert_eq!(independent[0].position(), 0);
        assert_eq!(independent[0].message().reason, Reason::InvalidBase64);
    }

    #[test]
    fn each_lane_waits_for_its_own_entries_sent_one_sender_at_a_time() {
        // Standard: a partly valid submission waits for its own entry, a
        // fully valid one for none; the flood of device 0 is sent in turn
        // with device 1's entry, not before it.
        let partial = |n: u8, device: u8| {
            valid(n)
                .replace(
                    r#"[{"cmdl":"a","user":"b"}]"#,
                    r#"[{"cmdl":"a","user":"b"},{"cmdl":null,"user":"b"}]"#,
                )
                .replace("de000000-", &format!("de0000{device:02x}-"))
        };
        let records = [
            record("p0", None, &partial(0, 0)),
            record("p1", None, &partial(1, 0)),
            record("p2", None, &partial(2, 0)),
            record("ok", None, &valid(3)),
            record("other", None, &partial(4, 1)),
        ];
        let limits = Limits::with_max_events(10).with_invalid_events(InvalidEvents::DropEvent);
        let key = crate::config::PartitionKey::SubmissionId.into();
        let mut batch = Batch::triage(&records, limits, key, "t", &POLICY);
        let lanes = batch.lanes(0);
        assert_eq!(lanes, [vec![0], vec![1], vec![2], vec![3], vec![4]]);
        let (positions, _) = batch.gating_rejects(0);
        assert_eq!(positions, [0, 4, 1, 2], "p0, other, p1, p2");
        let waits = batch.lane_waits(&lanes, &positions);
        assert_eq!(waits, [vec![0], vec![2], vec![3], vec![], vec![1]]);

        // FIFO: a group waits for its entries of the round, another group
        // for none.
        let records = [
            record("g-bad", Some("g"), "%%%"),
            record("g-ok", Some("g"), &valid(0)),
            record("h-ok", Some("h"), &valid(1)),
        ];
        let mut batch = triage(&records);
        let lanes = batch.lanes(0);
        assert_eq!(lanes, [vec![0], vec![1]]);
        let (positions, _) = batch.gating_rejects(0);
        assert_eq!(positions, [0]);
        assert_eq!(batch.lane_waits(&lanes, &positions), [vec![0], vec![]]);
    }

    #[test]
    fn a_fifo_group_turning_from_valid_to_invalid_starts_a_new_round() {
        let records = [
            record("g1", Some("g"), "%%%"),
            record("g2", Some("g"), &valid(0)),
            record("g3", Some("g"), "%%%"),
            record("g4", Some("g"), &valid(1)),
            record("h1", Some("h"), &valid(2)),
        ];
        let mut batch = triage(&records);
        assert_eq!(batch.rounds(), 2);
        assert_eq!(
            batch.gating_rejects(0).0,
            [0],
            "g1 before g's first valid message"
        );
        assert_eq!(batch.lanes(0), [vec![0], vec![2]]);
        assert_eq!(batch.gating_rejects(1).0, [2], "g3 once g2 is published");
        assert_eq!(batch.lanes(1), [vec![1]]);
    }

    #[test]
    fn a_failure_in_a_fifo_group_fails_the_rest_of_it_unpublished_and_unforwarded() {
        let records = [
            record("a", Some("g"), &valid(0)),
            record("bad", Some("g"), "%%%"),
            record("b", Some("g"), &valid(1)),
            record("other", Some("h"), &valid(2)),
        ];
        let mut batch = triage(&records);
        assert_eq!(batch.lanes(0), [vec![0], vec![2]]);
        batch.apply(0, &report(3, &[0]));
        batch.fail_behind_failures();
        assert!(batch.gating_rejects(1).1.is_empty(), "bad is not forwarded");
        assert!(
            batch.independent_rejects().is_empty(),
            "a FIFO batch has none"
        );
        assert!(batch.lanes(1).is_empty(), "b is not published");
        assert_eq!(failed_ids(&mut batch), ["a", "bad", "b"]);
    }

    #[test]
    fn a_refused_reject_fails_its_message() {
        let records = [record("a", None, &valid(0)), record("bad", None, "%%%")];
        let mut batch = triage(&records);
        let positions: Vec<usize> = (batch.independent_rejects().iter())
            .map(IndependentReject::position)
            .collect();
        batch.rejects_stored(&positions, vec![Err("no queue".into())]);
        batch.apply(0, &report(1, &[]));
        assert_eq!(failed_ids(&mut batch), ["bad"]);
    }
}
