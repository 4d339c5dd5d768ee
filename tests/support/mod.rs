//! Test doubles and builders shared by the integration tests: a Kinesis that
//! answers from a script and remembers every call, a rejects queue that
//! remembers or refuses, and builders for submissions and SQS batches.
#![allow(dead_code)]

pub mod runtime_api;
pub mod samples;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use base64::Engine as _;
use edr_preprocessor::aggregate::deaggregate;
use edr_preprocessor::config::Config;
use edr_preprocessor::handler::Handler;
use edr_preprocessor::publisher::{CallError, EntryResult, OutboundRecord, RecordSink};
use edr_preprocessor::rejects_queue::{RejectSink, RejectedMessage};
use edr_preprocessor::resume::{Resend, ResendSink};
use serde_json::{Value, json};

/// One record as the fake saw it: an event's record, or an aggregated
/// record (`RECORD_FORMAT=aggregated`), which the fields describe by its
/// first user record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub submission_id: String,
    pub sequence: u64,
    pub event_count: u64,
    pub json: Value,
    /// The shard the fake acknowledged it on (set once written).
    pub shard: Option<String>,
    /// An aggregated record's user records, deaggregated, each seen as an
    /// event's record; empty for an event's record.
    pub user_records: Vec<Seen>,
    /// The Kinesis record's size as Kinesis counts it (data plus partition key).
    pub size: usize,
    /// The event's record, byte for byte (an aggregated record's first user record's).
    pub data: Vec<u8>,
}

impl Seen {
    fn from(record: &OutboundRecord) -> Seen {
        let size = record.data.len() + record.partition_key.len();
        let users = deaggregate(&record.data, &record.partition_key).expect("well-formed records");
        if users.first().is_some_and(|u| u.aggregated) {
            let user_records: Vec<Seen> = users
                .iter()
                .map(|u| {
                    assert_eq!(
                        u.partition_key, *record.partition_key,
                        "the user record's key is the record's"
                    );
                    assert_eq!(
                        u.explicit_hash_key.as_deref(),
                        record.explicit_hash_key.as_deref()
                    );
                    Seen::event(&u.data, &u.partition_key, u.explicit_hash_key.as_deref())
                })
                .collect();
            let first = user_records
                .first()
                .expect("an aggregated record holds user records");
            return Seen {
                user_records: user_records.clone(),
                size,
                ..first.clone()
            };
        }
        Seen {
            size,
            ..Seen::event(
                &record.data,
                &record.partition_key,
                record.explicit_hash_key.as_deref(),
            )
        }
    }

    fn event(data: &[u8], partition_key: &str, explicit_hash_key: Option<&str>) -> Seen {
        let json: Value = serde_json::from_slice(data).expect("records are JSON");
        Seen {
            partition_key: partition_key.to_owned(),
            explicit_hash_key: explicit_hash_key.map(str::to_owned),
            submission_id: json["submission_id"].as_str().unwrap().to_owned(),
            sequence: json["sequence"].as_u64().unwrap(),
            event_count: json["event_count"].as_u64().unwrap(),
            json,
            shard: None,
            user_records: Vec::new(),
            size: data.len() + partition_key.len(),
            data: data.to_vec(),
        }
    }

    /// The events the record carries: its user records, or itself.
    pub fn events(&self) -> Vec<&Seen> {
        if self.user_records.is_empty() {
            vec![self]
        } else {
            self.user_records.iter().collect()
        }
    }
}

/// The 128-bit hash key Kinesis places a record by: its `ExplicitHashKey`,
/// else the MD5 of its partition key (big-endian, as Kinesis reads it).
pub fn hash_key(seen: &Seen) -> u128 {
    use md5::{Digest, Md5};
    match &seen.explicit_hash_key {
        Some(decimal) => decimal
            .parse()
            .expect("an ExplicitHashKey is a decimal u128"),
        None => u128::from_be_bytes(Md5::digest(seen.partition_key.as_bytes()).into()),
    }
}

/// The shard, among `shards` that split the hash key space evenly (as
/// CreateStream lays a stream out), whose range holds `hash_key`.
pub fn shard_index(hash_key: u128, shards: u128) -> u128 {
    (hash_key / (u128::MAX / shards + 1)).min(shards - 1)
}

/// The `ShardId` of shard `index`, as Kinesis names it.
pub fn shard_name(index: u128) -> String {
    format!("shardId-{index:012}")
}

/// What the script decides for one call.
pub enum Answer {
    Entries(Vec<EntryResult>),
    Call(CallError),
}

type Script = Box<dyn FnMut(usize, &[Seen]) -> Answer + Send>;
type ShardOf = Box<dyn Fn(&Seen) -> String + Send + Sync>;

/// A Kinesis stand-in: answers each call from a script, appends written
/// records to a stream log in the order they were acknowledged (the user
/// records of an aggregated record, deaggregated, each as an event's
/// record), and checks the strict-order rule on every call it receives. An entry the script
/// answers written is acknowledged on the shard `shard_of` names (by
/// default the one shard of a 1-shard stream).
pub struct ScriptedKinesis {
    state: Mutex<State>,
    shard_of: ShardOf,
    delay: Duration,
    pub check_strict_order: bool,
    /// Events dropped before publishing (`INVALID_EVENTS=drop-event`), by
    /// (submission id, sequence): the order check steps over them.
    dropped: HashSet<(String, u64)>,
}

#[derive(Default)]
pub struct State {
    script: Option<Script>,
    pub calls: Vec<Vec<Seen>>,
    /// Every acknowledged record, in acknowledgement order.
    pub written: Vec<Seen>,
    acked: HashSet<(String, u64)>,
    /// Strict-order violations seen: a record sent before its predecessor was acknowledged.
    pub order_violations: Vec<String>,
}

/// Written, on the shard the fake's placement gives the record.
pub fn written() -> EntryResult {
    EntryResult::WRITTEN
}

pub fn throttled() -> EntryResult {
    EntryResult::Failed {
        code: "ProvisionedThroughputExceededException".into(),
        message: "Rate exceeded for shard shardId-000000000000".into(),
    }
}

pub fn internal() -> EntryResult {
    EntryResult::Failed {
        code: "InternalFailure".into(),
        message: "Internal service failure.".into(),
    }
}

pub fn kms_denied() -> EntryResult {
    EntryResult::Failed {
        code: "KMSAccessDeniedException".into(),
        message: "denied".into(),
    }
}

pub fn call_error(retryable: bool, code: &str) -> CallError {
    CallError {
        retryable,
        code: code.into(),
        message: format!("{code} (scripted)"),
    }
}

impl ScriptedKinesis {
    /// Every entry written.
    pub fn healthy() -> Self {
        Self::scripted(|_, seen| Answer::Entries(seen.iter().map(|_| written()).collect()))
    }

    pub fn scripted(script: impl FnMut(usize, &[Seen]) -> Answer + Send + 'static) -> Self {
        ScriptedKinesis {
            state: Mutex::new(State {
                script: Some(Box::new(script)),
                ..State::default()
            }),
            shard_of: Box::new(|_| shard_name(0)),
            delay: Duration::ZERO,
            check_strict_order: true,
            dropped: HashSet::new(),
        }
    }

    /// Answers each entry by a function of the record.
    pub fn per_record(mut f: impl FnMut(&Seen) -> EntryResult + Send + 'static) -> Self {
        Self::scripted(move |_, seen| Answer::Entries(seen.iter().map(&mut f).collect()))
    }

    /// Acknowledges each record on the shard of a stream of `shards` even
    /// shards that holds its hash key, as Kinesis places records.
    pub fn with_shards(self, shards: u128) -> Self {
        self.with_shard_of(move |seen| shard_name(shard_index(hash_key(seen), shards)))
    }

    /// Acknowledges each record on the shard `shard_of` names (`""`: the
    /// answer names none, as some emulators do).
    pub fn with_shard_of(
        mut self,
        shard_of: impl Fn(&Seen) -> String + Send + Sync + 'static,
    ) -> Self {
        self.shard_of = Box::new(shard_of);
        self
    }

    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sequences that are never published, so that their successor's
    /// predecessor is the event before them.
    pub fn with_dropped(mut self, dropped: HashSet<(String, u64)>) -> Self {
        self.dropped = dropped;
        self
    }

    pub fn relaxed(mut self) -> Self {
        self.check_strict_order = false;
        self
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Written records of one submission, in acknowledgement order.
    pub fn written_sequences(&self, submission_id: &str) -> Vec<u64> {
        self.state()
            .written
            .iter()
            .filter(|s| s.submission_id == submission_id)
            .map(|s| s.sequence)
            .collect()
    }

    pub fn calls(&self) -> usize {
        self.state().calls.len()
    }
}

impl RecordSink for ScriptedKinesis {
    async fn put_records(
        &self,
        records: Vec<OutboundRecord>,
    ) -> Result<Vec<EntryResult>, CallError> {
        let seen: Vec<Seen> = records.iter().map(Seen::from).collect();
        let answer = {
            let mut state = self.state.lock().unwrap();
            if self.check_strict_order {
                let mut violations = Vec::new();
                let mut in_call: HashSet<&str> = HashSet::new();
                for s in &seen {
                    if !in_call.insert(&s.submission_id) {
                        violations.push(format!("{} has two records in one call", s.submission_id));
                    }
                    let mut predecessor = s.sequence.checked_sub(1);
                    while let Some(p) = predecessor
                        && self.dropped.contains(&(s.submission_id.clone(), p))
                    {
                        predecessor = p.checked_sub(1);
                    }
                    if let Some(p) = predecessor
                        && !state.acked.contains(&(s.submission_id.clone(), p))
                    {
                        violations.push(format!(
                            "{} seq {} sent before seq {p} was acknowledged",
                            s.submission_id, s.sequence
                        ));
                    }
                }
                state.order_violations.extend(violations);
            }
            let index = state.calls.len();
            state.calls.push(seen.clone());
            let mut script = state.script.take().unwrap();
            let answer = script(index, &seen);
            state.script = Some(script);
            answer
        };
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        match answer {
            Answer::Call(e) => Err(e),
            Answer::Entries(mut entries) => {
                let mut state = self.state.lock().unwrap();
                for (s, e) in seen.iter().zip(&mut entries) {
                    if let EntryResult::Written { shard_id } = e {
                        let shard = shard_id.take().unwrap_or_else(|| (self.shard_of)(s));
                        *shard_id = Some(shard).filter(|id| !id.is_empty());
                        for event in s.events() {
                            state
                                .acked
                                .insert((event.submission_id.clone(), event.sequence));
                            let mut written = event.clone();
                            written.shard = shard_id.clone();
                            written.user_records.clear();
                            state.written.push(written);
                        }
                    }
                }
                Ok(entries)
            }
        }
    }
}

/// Message attributes as (name, value).
pub type Attributes = Vec<(String, String)>;

/// A rejects queue that remembers what it was sent, or refuses everything,
/// or never answers a request that holds one of the source message ids in
/// `never_answer`, or answers every request after `delay` (a slow or
/// flooded queue). `batches` counts the requests.
#[derive(Default)]
pub struct RecordingRejects {
    pub sent: Mutex<Vec<(String, String, String)>>,
    /// The attributes of every message sent, by source message id.
    pub attributes: Mutex<Vec<(String, Attributes)>>,
    pub batches: Mutex<Vec<usize>>,
    pub refuse: bool,
    pub never_answer: Vec<&'static str>,
    pub delay: Duration,
}

impl RejectSink for RecordingRejects {
    async fn send_batch(&self, batch: &[RejectedMessage<'_>]) -> Vec<Result<(), String>> {
        self.batches.lock().unwrap().push(batch.len());
        if batch
            .iter()
            .any(|m| self.never_answer.contains(&m.source_message_id))
        {
            std::future::pending::<()>().await;
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self.refuse {
            return vec![
                Err("AWS.SimpleQueueService.NonExistentQueue: scripted".into());
                batch.len()
            ];
        }
        for m in batch {
            self.sent.lock().unwrap().push((
                m.source_message_id.to_owned(),
                m.reason.as_str().to_owned(),
                m.body.to_owned(),
            ));
            self.attributes.lock().unwrap().push((
                m.source_message_id.to_owned(),
                m.attributes()
                    .into_iter()
                    .map(|(n, v)| (n.to_owned(), v.to_owned()))
                    .collect(),
            ));
        }
        vec![Ok(()); batch.len()]
    }
}

/// A source queue that remembers what was sent back to it, and when (on
/// the tests' clock), or refuses.
#[derive(Default)]
pub struct RecordingResend {
    pub sent: Mutex<Vec<Sent>>,
    pub refuse: bool,
    /// When each re-send was asked for, refused or not.
    pub called_at: Mutex<Vec<tokio::time::Instant>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub source_message_id: String,
    pub source_arn: String,
    pub body: String,
    pub group_id: Option<String>,
    pub marker: String,
    pub delay_seconds: u32,
}

impl ResendSink for RecordingResend {
    async fn resend(&self, m: &Resend<'_>) -> Result<(), String> {
        (self.called_at.lock().unwrap()).push(tokio::time::Instant::now());
        if self.refuse {
            return Err("AccessDenied: scripted".into());
        }
        self.sent.lock().unwrap().push(Sent {
            source_message_id: m.source_message_id.to_owned(),
            source_arn: m.source_arn.to_owned(),
            body: m.body.to_owned(),
            group_id: m.group_id.map(str::to_owned),
            marker: m.marker.clone(),
            delay_seconds: m.delay_seconds,
        });
        Ok(())
    }
}

/// The `next` and `hop` a resume marker
/// (`v3/{next}/{hop}/{limit}/{hash_key}/{mac}`) carries.
pub fn marker_progress(marker: &str) -> (usize, u32) {
    let fields: Vec<&str> = marker.split('/').collect();
    assert_eq!(fields.len(), 6, "{marker}");
    assert_eq!(fields[0], "v3", "{marker}");
    (fields[1].parse().unwrap(), fields[2].parse().unwrap())
}

/// The JSON log lines written on this thread while it is held: a
/// `tracing` subscriber into a shared buffer (a `#[tokio::test]` runs on
/// the thread that creates it).
pub struct Logs {
    buffer: std::sync::Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

#[derive(Clone)]
struct LogBuffer(std::sync::Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}

impl Logs {
    pub fn capture() -> Logs {
        let buffer = std::sync::Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(LogBuffer(buffer.clone()))
            .finish();
        Logs {
            buffer,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    /// Every line as written.
    pub fn text(&self) -> String {
        String::from_utf8(self.buffer.lock().unwrap().clone()).unwrap()
    }

    /// Each line's `fields` (the message is `fields.message`), with its level.
    pub fn lines(&self) -> Vec<Value> {
        let text = self.text();
        text.lines()
            .map(|line| {
                let line: Value = serde_json::from_str(line).unwrap();
                let mut fields = line["fields"].clone();
                fields["level"] = line["level"].clone();
                fields
            })
            .collect()
    }

    /// The lines whose message starts with `message`.
    pub fn with_message(&self, message: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| {
                l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            })
            .collect()
    }
}

pub const STREAM: &str = "events";

pub fn config(pairs: &[(&str, &str)]) -> Config {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("STREAM_NAME".to_string(), STREAM.to_string())])
        .collect();
    // The test secret unless the scenario sets its own (or none: "").
    let mut map = map;
    map.entry("PIPELINE_KEY".to_string())
        .or_insert_with(|| edr_preprocessor::config::TEST_PIPELINE_KEY.to_string());
    Config::from_lookup(|k| map.get(k).cloned()).unwrap()
}

pub fn handler<K: RecordSink>(kinesis: K, pairs: &[(&str, &str)]) -> Handler<K, RecordingRejects> {
    Handler::new(config(pairs), kinesis, None)
}

/// The `n`-th test UUID of a kind (stable, readable in failures).
pub fn uuid(kind: u8, n: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{n:012x}")
}

/// A submission with `processes` new_process events then `connections`
/// network_connection events.
pub fn submission(n: usize, processes: usize, connections: usize) -> Value {
    let new_process: Vec<Value> = (0..processes)
        .map(|i| json!({"cmdl": format!("proc-{n}-{i}.exe --flag"), "user": "alice"}))
        .collect();
    let network_connection: Vec<Value> = (0..connections)
        .map(|i| json!({"source_ip": "10.0.0.5", "destination_ip": format!("192.0.2.{}", i % 250), "destination_port": 443 + i}))
        .collect();
    json!({
        "submission_id": uuid(0x5b, n),
        "device_id": uuid(0xde, n % 3),
        "time_created": "2021-03-29T12:06:09.576033",
        "events": {"new_process": new_process, "network_connection": network_connection}
    })
}

pub fn b64(doc: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(doc.to_string())
}

pub fn message(id: &str, body: &str) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.to_owned());
    m.body = Some(body.to_owned());
    m.event_source = Some("aws:sqs".into());
    m.event_source_arn = Some("arn:aws:sqs:eu-west-1:123456789012:submissions".into());
    m
}

pub fn fifo_message(id: &str, group: &str, body: &str) -> SqsMessage {
    let mut m = message(id, body);
    m.event_source_arn = Some("arn:aws:sqs:eu-west-1:123456789012:submissions.fifo".into());
    m.attributes.insert("MessageGroupId".into(), group.into());
    m
}

pub fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages;
    event
}

pub fn failed_ids(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
pub struct LogCapture(std::sync::Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> LogCapture {
        self.clone()
    }
}

/// Runs `future` on a current-thread runtime with a paused clock, every
/// level logged as JSON; returns its output and the log lines.
pub fn with_logs<F: std::future::Future>(future: F) -> (F::Output, Vec<Value>) {
    let capture = LogCapture::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let output = tracing::subscriber::with_default(subscriber, || runtime.block_on(future));
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let lines = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (output, lines)
}

pub fn far_deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(300)
}
