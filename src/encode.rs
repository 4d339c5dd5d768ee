//! The JSON of the Kinesis record each event becomes.
//!
//! Every event of a submission is published as its own record, wrapped with
//! enough context (ids, position, count, times) that a consumer can process
//! it alone, put a submission back together, and de-duplicate redeliveries:
//! `event_id` is a UUIDv5 over `device_id`, `submission_id`, a digest of the
//! document and `sequence`, so the same message always yields the same ids
//! and different content never shares one, even under a reused
//! `submission_id`.

use std::sync::Arc;

use bytes::Bytes;
use sha1::{Digest, Sha1};
use time::OffsetDateTime;
use time::macros::format_description;
use uuid::Uuid;

use crate::aggregate;
use crate::config::{Config, PartitionKey, ShardPlacement};
use crate::keys::PipelineKey;
use crate::model::{DroppedEvent, Event, Reason, RecordFormat, Rejection, Submission};

/// The namespace of `event_id`:
/// `event_id = uuid5(EVENT_ID_NAMESPACE, "{device_id}/{submission_id}/{sha256}/{sequence}")`
/// with both ids in lowercase hyphenated form, `sha256` the lowercase hex
/// SHA-256 of the document the body carries (base64-decoded, or a plain-JSON
/// body without the blanks around it) and `sequence` in decimal.
pub const EVENT_ID_NAMESPACE: Uuid = uuid::uuid!("112ae2df-81a4-48c5-9844-96005350b137");

/// How a submission's records are keyed: the partition key consumers see
/// (`PARTITION_KEY`) and what places them on a shard (`SHARD_PLACEMENT`).
#[derive(Debug, Clone, Copy)]
pub struct RecordKeys<'k> {
    /// Which id becomes the partition key.
    pub partition_key: PartitionKey,
    /// `SHARD_PLACEMENT=keyed`: the key of every record's `ExplicitHashKey`
    /// ([`RecordKeys::hash_key`]). `None`: no `ExplicitHashKey`,
    /// Kinesis places each record by the MD5 of its partition key, which a
    /// sensor can aim at a shard by choosing its ids.
    pub placement: Option<&'k PipelineKey>,
    /// Under keyed placement with `PARTITION_KEY=submission_id`: the SQS
    /// message id the hash key is bound to
    /// ([`PipelineKey::explicit_hash_key_of_message`]), so that a sensor
    /// that reuses one `submission_id` for all its messages still spreads
    /// over the stream. `None`: the partition key alone.
    pub message_id: Option<&'k str>,
    /// Under keyed placement: a resumed copy's hash key, the one its first
    /// delivery used, which its marker carries ([`crate::resume`]); it wins
    /// over computing one, so that every copy lands on that delivery's shard.
    pub carried_hash_key: Option<u128>,
}

impl<'k> RecordKeys<'k> {
    /// The keys the settings describe. `Config::from_env` refuses
    /// `SHARD_PLACEMENT=keyed` without a `PIPELINE_KEY`.
    pub fn of(config: &'k Config) -> Self {
        RecordKeys {
            partition_key: config.partition_key,
            placement: match config.shard_placement {
                ShardPlacement::Keyed => config.pipeline_key.as_ref(),
                ShardPlacement::PartitionKey => None,
            },
            message_id: None,
            carried_hash_key: None,
        }
    }

    /// The `ExplicitHashKey` of the records with `partition_key`: `None`
    /// unless placement is keyed.
    pub fn hash_key(&self, partition_key: &str) -> Option<u128> {
        let key = self.placement?;
        Some(
            match (self.carried_hash_key, self.partition_key, self.message_id) {
                (Some(carried), _, _) => carried,
                (None, PartitionKey::SubmissionId, Some(id)) => {
                    key.explicit_hash_key_of_message(partition_key, id)
                }
                (None, _, _) => key.explicit_hash_key(partition_key),
            },
        )
    }
}

/// Kinesis' own placement (no `ExplicitHashKey`) with `partition_key`.
impl From<PartitionKey> for RecordKeys<'_> {
    fn from(partition_key: PartitionKey) -> Self {
        RecordKeys {
            partition_key,
            placement: None,
            message_id: None,
            carried_hash_key: None,
        }
    }
}

/// A submission ready to publish: its records in `sequence` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedSubmission {
    /// The submission's id.
    pub submission_id: Uuid,
    /// The sensor's id.
    pub device_id: Uuid,
    /// The partition key of every record (`PARTITION_KEY`).
    pub partition_key: Arc<str>,
    /// The `ExplicitHashKey` of every record under `SHARD_PLACEMENT=keyed`:
    /// the decimal of [`RecordKeys::hash_key`] of `partition_key`,
    /// computed once per submission, so all its records still share one
    /// shard. `None` under `partition-key` placement. Kinesis does not count
    /// it toward the record size limit (data plus partition key).
    pub explicit_hash_key: Option<Arc<str>>,
    /// The records' JSON, in `sequence` order, slices of one buffer.
    pub records: Vec<Bytes>,
    /// The events left out (`INVALID_EVENTS=drop-event`), by sequence.
    pub dropped: Vec<DroppedEvent>,
    /// SHA-256 of the document (what a resume marker names).
    pub document_sha256: [u8; 32],
    /// Records acknowledged in an earlier delivery and left out of
    /// `records` ([`crate::resume`]): `records[0]` is record `skipped`.
    pub skipped: usize,
}

impl EncodedSubmission {
    /// The `sequence` of the submission's record number `record` (counted
    /// from its first record, the skipped ones included): the same number
    /// unless events were dropped before it.
    pub fn sequence_of(&self, record: usize) -> usize {
        let mut sequence = record;
        for dropped in &self.dropped {
            if dropped.sequence <= sequence {
                sequence += 1;
            } else {
                break;
            }
        }
        sequence
    }
}

/// The deterministic id of the event at `sequence` in a submission whose
/// document has the SHA-256 `document_sha256`.
pub fn event_id(
    device_id: &Uuid,
    submission_id: &Uuid,
    document_sha256: &[u8; 32],
    sequence: usize,
) -> Uuid {
    EventIds::new(device_id, submission_id, document_sha256).id(sequence)
}

/// `event_id`s of one submission: the SHA-1 state after the namespace and
/// `"{device_id}/{submission_id}/{sha256}/"` (two 64-byte blocks and some) is
/// computed once, so each id hashes only its sequence number and the padding.
struct EventIds {
    prefix: Sha1,
}

impl EventIds {
    fn new(device_id: &Uuid, submission_id: &Uuid, document_sha256: &[u8; 32]) -> Self {
        let mut prefix = Sha1::new();
        prefix.update(EVENT_ID_NAMESPACE.as_bytes());
        prefix.update(
            device_id
                .hyphenated()
                .encode_lower(&mut Uuid::encode_buffer())
                .as_bytes(),
        );
        prefix.update(b"/");
        prefix.update(
            submission_id
                .hyphenated()
                .encode_lower(&mut Uuid::encode_buffer())
                .as_bytes(),
        );
        prefix.update(b"/");
        prefix.update(hex(document_sha256));
        prefix.update(b"/");
        EventIds { prefix }
    }

    fn id(&self, sequence: usize) -> Uuid {
        let mut digits = [0u8; 20];
        let mut sha = self.prefix.clone();
        sha.update(decimal(sequence, &mut digits));
        let hash = sha.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(hash.get(..16).unwrap_or(&[0; 16]));
        uuid::Builder::from_sha1_bytes(bytes).into_uuid()
    }
}

/// Lowercase hex, as Python's `hexdigest()` writes it.
pub(crate) fn hex(digest: &[u8; 32]) -> [u8; 64] {
    let digit = |n: u8| if n < 10 { b'0' + n } else { b'a' + n - 10 };
    let mut out = [0u8; 64];
    for (pair, byte) in out.chunks_exact_mut(2).zip(digest) {
        pair.copy_from_slice(&[digit(byte >> 4), digit(byte & 0xf)]);
    }
    out
}

/// `n` in decimal, written at the end of `buf`.
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(d) = buf.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    buf.get(i..).unwrap_or_default()
}

/// `hash_key` in decimal, as `ExplicitHashKey` takes it, in one allocation
/// (the digits go through the stack, not a `String`).
fn hash_key_decimal(hash_key: u128) -> Arc<str> {
    use std::io::Write as _;
    // u128::MAX has 39 digits.
    let mut digits = [0u8; 39];
    let mut free: &mut [u8] = &mut digits;
    let written = write!(free, "{hash_key}").map(|()| 39 - free.len());
    let text = written
        .ok()
        .and_then(|len| digits.get(..len))
        .and_then(|d| std::str::from_utf8(d).ok());
    text.map_or_else(|| Arc::from(hash_key.to_string()), Arc::from)
}

/// `time_processed`: RFC 3339, UTC, microseconds, `Z`.
pub fn format_time_processed(now: OffsetDateTime) -> String {
    let utc = now.to_offset(time::UtcOffset::UTC);
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    // Formatting a UTC date-time with numeric components only fails for years
    // beyond 9999, which a clock does not produce; fall back to RFC 3339.
    utc.format(&format)
        .or_else(|_| utc.format(&time::format_description::well_known::Rfc3339))
        .unwrap_or_default()
}

/// The stream's record limit, as the record format counts an event's
/// record against it: data plus partition key for a record of its own, the
/// whole aggregated record ([`crate::aggregate::record_size_alone`]) for a
/// user record, which must fit in one even alone. A bare `usize` is the
/// per-event limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimit {
    /// `KINESIS_MAX_RECORD_SIZE_KIB`, in bytes.
    pub max_record_bytes: usize,
    /// `RECORD_FORMAT`.
    pub format: RecordFormat,
}

impl From<usize> for RecordLimit {
    fn from(max_record_bytes: usize) -> Self {
        RecordLimit {
            max_record_bytes,
            format: RecordFormat::PerEvent,
        }
    }
}

impl RecordLimit {
    /// Whether an event's record of `data_len` bytes can be published.
    fn fits(&self, data_len: usize, partition_key: &str, explicit_hash_key: Option<&str>) -> bool {
        let size = match self.format {
            RecordFormat::PerEvent => data_len + partition_key.len(),
            RecordFormat::Aggregated => {
                aggregate::record_size_alone(partition_key, explicit_hash_key, data_len)
            }
        };
        size <= self.max_record_bytes
    }
}

/// Builds the record of every event. Fails with `event_too_large` if any
/// record would exceed the stream's record limit (data plus partition key;
/// under `RECORD_FORMAT=aggregated`, the aggregated record it alone would
/// make), so that nothing of an unpublishable submission is sent.
///
/// The fields every record of a submission shares are rendered once; all
/// records are written into one buffer, and each record is a slice of it.
pub fn encode<'k>(
    submission: &Submission<'_>,
    keys: impl Into<RecordKeys<'k>>,
    time_processed: &str,
    limit: impl Into<RecordLimit>,
) -> Result<EncodedSubmission, Rejection> {
    let limit = limit.into();
    encode_records(submission, keys.into(), time_processed, limit)
        .map_err(|oversized| too_large(submission, oversized.sequence, limit.max_record_bytes))
}

/// [`encode`], dropping each event whose record is too large instead of
/// rejecting the submission (`INVALID_EVENTS=drop-event`). The records are
/// built again after a drop, since `event_count` changes; a record only
/// outgrows the limit by being nearly as large as the body, so that happens
/// once or twice at most.
pub fn encode_dropping_oversized<'k>(
    mut submission: Submission<'_>,
    keys: impl Into<RecordKeys<'k>>,
    time_processed: &str,
    limit: impl Into<RecordLimit>,
) -> EncodedSubmission {
    let (keys, limit) = (keys.into(), limit.into());
    loop {
        match encode_records(&submission, keys, time_processed, limit) {
            Ok(encoded) => return encoded,
            Err(Oversized { index, sequence }) => {
                submission.events.remove(index);
                let at = submission
                    .dropped
                    .partition_point(|d| d.sequence < sequence);
                submission.dropped.insert(
                    at,
                    DroppedEvent {
                        sequence,
                        reason: Reason::EventTooLarge,
                    },
                );
            }
        }
    }
}

/// The event at `index` of `Submission::events` (at `sequence` in the
/// submission) does not fit in a record.
struct Oversized {
    index: usize,
    sequence: usize,
}

fn encode_records(
    submission: &Submission<'_>,
    keys: RecordKeys<'_>,
    time_processed: &str,
    limit: RecordLimit,
) -> Result<EncodedSubmission, Oversized> {
    let partition_key: Arc<str> = match keys.partition_key {
        PartitionKey::SubmissionId => submission.submission_id.to_string().into(),
        PartitionKey::DeviceId => submission.device_id.to_string().into(),
    };
    let event_count = submission.events.len();
    let ids = EventIds::new(
        &submission.device_id,
        &submission.submission_id,
        &submission.document_sha256,
    );
    let (middle, tail) = shared_fields(submission, time_processed).map_err(|_| Oversized {
        index: 0,
        sequence: 0,
    })?;

    // One keyed hash per submission, after the records, so that a submission
    // that does not fit costs none; before them for an aggregated record,
    // whose size counts it.
    let hash_key = |partition_key: &str| -> Option<Arc<str>> {
        (keys.hash_key(partition_key)).map(hash_key_decimal)
    };
    let early_hash_key = match limit.format {
        RecordFormat::Aggregated => hash_key(&partition_key),
        RecordFormat::PerEvent => None,
    };
    let mut buf: Vec<u8> = Vec::with_capacity(event_count * (middle.len() + tail.len() + 200));
    let mut ends = Vec::with_capacity(event_count);
    for (index, (sequence, event)) in submission.sequenced().enumerate() {
        let oversized = Oversized { index, sequence };
        let start = buf.len();
        let shared = (middle.as_slice(), tail.as_slice());
        write_record(&mut buf, ids.id(sequence), sequence, event, shared).map_err(|_| oversized)?;
        // Kinesis' record limit counts data plus partition key; the
        // ExplicitHashKey is not counted (PutRecordsRequestEntry, `Data`),
        // but an aggregated record holds it in its key table.
        if !limit.fits(buf.len() - start, &partition_key, early_hash_key.as_deref()) {
            return Err(Oversized { index, sequence });
        }
        ends.push(buf.len());
    }
    let records = slices(Bytes::from(buf), ends);
    let explicit_hash_key = early_hash_key.or_else(|| hash_key(&partition_key));
    Ok(EncodedSubmission {
        submission_id: submission.submission_id,
        device_id: submission.device_id,
        partition_key,
        explicit_hash_key,
        records,
        dropped: submission.dropped.clone(),
        document_sha256: submission.document_sha256,
        skipped: 0,
    })
}

/// Appends the record of `event`, whose id is `id` and which is at
/// `sequence`, to `buf`; `shared` is the fields between its type and its
/// sequence, and those after ([`shared_fields`]).
fn write_record(
    buf: &mut Vec<u8>,
    id: Uuid,
    sequence: usize,
    event: &Event<'_>,
    (middle, tail): (&[u8], &[u8]),
) -> serde_json::Result<()> {
    buf.extend_from_slice(b"{\"event_id\":\"");
    buf.extend_from_slice(
        id.hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    buf.extend_from_slice(b"\",\"event_type\":\"");
    buf.extend_from_slice(event.event_type().as_bytes());
    buf.extend_from_slice(middle);
    buf.extend_from_slice(decimal(sequence, &mut [0u8; 20]));
    buf.extend_from_slice(tail);
    // The strings are raw JSON text (`RawString`): written as sent.
    serde_json::to_writer(&mut *buf, event)?;
    buf.push(b'}');
    Ok(())
}

/// The records written one after the other into `all`, each ending at its
/// entry of `ends`: slices that share the one buffer.
fn slices(all: Bytes, ends: Vec<usize>) -> Vec<Bytes> {
    let mut start = 0;
    ends.into_iter()
        .map(|end| {
            let record = all.slice(start..end);
            start = end;
            record
        })
        .collect()
}

/// The fields every record of a submission shares, rendered once: the
/// middle, `","submission_id":"…","device_id":"…","sequence":`, and the
/// tail, `,"event_count":…,"time_created":"…","time_processed":"…","event_data":`.
fn shared_fields(
    submission: &Submission<'_>,
    time_processed: &str,
) -> Result<(Vec<u8>, Vec<u8>), serde_json::Error> {
    let mut middle = Vec::with_capacity(128);
    middle.extend_from_slice(b"\",\"submission_id\":\"");
    middle.extend_from_slice(
        submission
            .submission_id
            .hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    middle.extend_from_slice(b"\",\"device_id\":\"");
    middle.extend_from_slice(
        submission
            .device_id
            .hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    middle.extend_from_slice(b"\",\"sequence\":");
    let mut tail = Vec::with_capacity(160);
    tail.extend_from_slice(b",\"event_count\":");
    tail.extend_from_slice(decimal(submission.events.len(), &mut [0u8; 20]));
    tail.extend_from_slice(b",\"time_created\":");
    tail.extend_from_slice(submission.time_created.json().as_bytes());
    tail.extend_from_slice(b",\"time_processed\":");
    serde_json::to_writer(&mut tail, time_processed)?;
    tail.extend_from_slice(b",\"event_data\":");
    Ok((middle, tail))
}

fn too_large(submission: &Submission<'_>, sequence: usize, max_record_bytes: usize) -> Rejection {
    Rejection {
        reason: Reason::EventTooLarge,
        detail: format!(
            "event {sequence} exceeds the Kinesis record limit of {max_record_bytes} bytes"
        ),
        submission_id: Some(submission.submission_id.to_string()),
        device_id: Some(submission.device_id.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::parse_json;
    use crate::model::{Event, Limits, MAX_RECORD_BYTES, MAX_RECORD_BYTES_LIMIT, RawString};
    use serde::Serialize;
    use serde_json::{Value, json};
    use sha2::Sha256;

    const SUBMISSION: &str = "4a1b3c5d-0000-4000-8000-000000000001";
    const DEVICE: &str = "9f8e7d6c-0000-4000-8000-000000000002";
    const PROCESSED: &str = "2026-11-22T18:47:44.758345Z";

    /// A literal, so that the ids below can be recomputed in Python from it.
    fn sample() -> String {
        r#"{"submission_id":"4a1b3c5d-0000-4000-8000-000000000001","device_id":"9f8e7d6c-0000-4000-8000-000000000002","time_created":"2021-03-29T12:06:09.576033","events":{"new_process":[{"cmdl":"C:\\Windows\\calc.exe \"x\"","user":"admin"}],"network_connection":[{"source_ip":"192.168.0.1","destination_ip":"2001:db8::1","destination_port":443}]}}"#.to_owned()
    }

    fn encoded(key: PartitionKey) -> EncodedSubmission {
        let text = sample();
        let submission = parse_json(text.as_bytes(), Limits::with_max_events(10)).unwrap();
        encode(&submission, key, PROCESSED, MAX_RECORD_BYTES).unwrap()
    }

    fn records(key: PartitionKey) -> Vec<Value> {
        encoded(key)
            .records
            .iter()
            .map(|r| serde_json::from_slice(r).unwrap())
            .collect()
    }

    #[derive(Serialize)]
    struct EventRecord<'a> {
        event_id: Uuid,
        event_type: &'static str,
        submission_id: Uuid,
        device_id: Uuid,
        sequence: usize,
        event_count: usize,
        time_created: &'a RawString<'a>,
        time_processed: &'a str,
        event_data: &'a Event<'a>,
    }

    #[test]
    fn records_are_byte_identical_to_serde_of_the_record_struct() {
        let doc = json!({
            "submission_id": "4A1B3C5D-0000-4000-8000-000000000001",
            "device_id": DEVICE,
            "time_created": "2021-03-29T12:06:09.576033+02:00",
            "events": {
                "new_process": (0..7).map(|i| json!({"cmdl": format!("C:\\x\"{i}\u{e9}\u{1}"), "user": "ad\tmin"})).collect::<Vec<_>>(),
                "network_connection": (0..5).map(|i| json!({"source_ip": "::1", "destination_ip": "10.0.0.1", "destination_port": i})).collect::<Vec<_>>()
            }
        })
        .to_string();
        let submission = parse_json(doc.as_bytes(), Limits::with_max_events(100)).unwrap();
        let got = encode(
            &submission,
            PartitionKey::SubmissionId,
            "2026-\"11",
            MAX_RECORD_BYTES,
        )
        .unwrap();
        assert_eq!(got.records.len(), 12);
        for (sequence, (event, record)) in submission.events.iter().zip(&got.records).enumerate() {
            let expected = serde_json::to_vec(&EventRecord {
                event_id: event_id(
                    &submission.device_id,
                    &submission.submission_id,
                    &submission.document_sha256,
                    sequence,
                ),
                event_type: event.event_type(),
                submission_id: submission.submission_id,
                device_id: submission.device_id,
                sequence,
                event_count: 12,
                time_created: &submission.time_created,
                time_processed: "2026-\"11",
                event_data: event,
            })
            .unwrap();
            assert_eq!(
                std::str::from_utf8(record).unwrap(),
                std::str::from_utf8(&expected).unwrap()
            );
        }
        let digest: String = Sha256::digest(doc.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        for sequence in [0usize, 9, 10, 99, 100, 12345, usize::MAX] {
            let name = format!(
                "{}/{}/{digest}/{sequence}",
                submission.device_id, submission.submission_id
            );
            assert_eq!(
                event_id(
                    &submission.device_id,
                    &submission.submission_id,
                    &submission.document_sha256,
                    sequence
                ),
                Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes())
            );
        }
    }

    #[test]
    fn each_event_becomes_a_record_with_every_field() {
        let records = records(PartitionKey::SubmissionId);
        assert_eq!(records.len(), 2);
        let first = records[0].as_object().unwrap();
        let keys: Vec<&str> = first.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "event_id",
                "event_type",
                "submission_id",
                "device_id",
                "sequence",
                "event_count",
                "time_created",
                "time_processed",
                "event_data"
            ]
        );
        // Python: uuid.uuid5(NS, f"{device}/{submission}/{hashlib.sha256(sample).hexdigest()}/0")
        assert_eq!(first["event_id"], "733fed30-9cdf-5757-b5a3-be3800d0c212");
        assert_eq!(first["event_type"], "new_process");
        assert_eq!(first["submission_id"], SUBMISSION);
        assert_eq!(first["device_id"], DEVICE);
        assert_eq!(first["sequence"], 0);
        assert_eq!(first["event_count"], 2);
        assert_eq!(first["time_created"], "2021-03-29T12:06:09.576033");
        assert_eq!(first["time_processed"], PROCESSED);
        assert_eq!(
            first["event_data"],
            json!({"cmdl": "C:\\Windows\\calc.exe \"x\"", "user": "admin"})
        );

        let second = &records[1];
        assert_eq!(second["event_id"], "6817cfd4-180a-5274-a0ae-9c946fe07e4a");
        assert_eq!(second["event_type"], "network_connection");
        assert_eq!(second["sequence"], 1);
        assert_eq!(second["event_count"], 2);
        assert_eq!(
            second["event_data"],
            json!({"source_ip": "192.168.0.1", "destination_ip": "2001:db8::1", "destination_port": 443})
        );
    }

    #[test]
    fn event_ids_are_uuid5_of_device_submission_digest_and_sequence() {
        let device = Uuid::parse_str(DEVICE).unwrap();
        let submission = Uuid::parse_str(SUBMISSION).unwrap();
        let digest: [u8; 32] = Sha256::digest(b"{}").into();
        let id = event_id(&device, &submission, &digest, 7);
        assert_eq!(id.get_version_num(), 5);
        assert_eq!(
            id,
            Uuid::new_v5(
                &EVENT_ID_NAMESPACE,
                format!(
                    "{DEVICE}/{SUBMISSION}/44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a/7"
                )
                .as_bytes()
            )
        );
        assert_eq!(
            id,
            event_id(&device, &submission, &digest, 7),
            "deterministic"
        );
        assert_ne!(id, event_id(&device, &submission, &digest, 8));
        assert_ne!(id, event_id(&submission, &device, &digest, 7));
        assert_ne!(id, event_id(&device, &submission, &[0; 32], 7));
    }

    #[test]
    fn ids_are_published_in_lowercase_whatever_the_sensor_sent() {
        let text = sample().replace(DEVICE, &DEVICE.to_uppercase());
        let submission = parse_json(text.as_bytes(), Limits::with_max_events(10)).unwrap();
        let e = encode(
            &submission,
            PartitionKey::DeviceId,
            PROCESSED,
            MAX_RECORD_BYTES,
        )
        .unwrap();
        let record: Value = serde_json::from_slice(&e.records[0]).unwrap();
        assert_eq!(record["device_id"], DEVICE);
        // The name holds the lowercase ids; the digest covers the document
        // as sent, so this is another document than `sample()` (Python gives
        // the same id for it).
        assert_eq!(record["event_id"], "df17285e-2fda-58e0-87a9-b3b0fef7df84");
        assert_eq!(&*e.partition_key, DEVICE);
    }

    #[test]
    fn partition_key_follows_the_setting() {
        assert_eq!(
            &*encoded(PartitionKey::SubmissionId).partition_key,
            SUBMISSION
        );
        assert_eq!(&*encoded(PartitionKey::DeviceId).partition_key, DEVICE);
    }

    #[test]
    fn time_processed_is_rfc3339_utc_with_microseconds_and_z() {
        let t = time::macros::datetime!(2026-11-22 20:47:44.758345678 +02:00);
        assert_eq!(format_time_processed(t), "2026-11-22T18:47:44.758345Z");
        let now = format_time_processed(OffsetDateTime::now_utc());
        assert_eq!(now.len(), PROCESSED.len());
        assert!(now.ends_with('Z'));
        assert!(
            OffsetDateTime::parse(&now, &time::format_description::well_known::Rfc3339).is_ok()
        );
    }

    #[test]
    fn the_record_limit_follows_the_setting_up_to_ten_mebibytes() {
        let text = sample().replace("admin", &"a".repeat(3 * 1024 * 1024));
        let submission = parse_json(text.as_bytes(), Limits::with_max_events(10)).unwrap();
        let encode_with = |max| encode(&submission, PartitionKey::SubmissionId, PROCESSED, max);
        assert_eq!(
            encode_with(MAX_RECORD_BYTES).unwrap_err().reason,
            Reason::EventTooLarge
        );
        assert_eq!(
            encode_with(3 * 1024 * 1024).unwrap_err().reason,
            Reason::EventTooLarge,
            "data plus partition key counts"
        );
        let e = encode_with(MAX_RECORD_BYTES_LIMIT).unwrap();
        assert!(e.records[0].len() > 3 * 1024 * 1024);
        assert!(e.records[0].len() + e.partition_key.len() <= MAX_RECORD_BYTES_LIMIT);
    }

    #[test]
    fn a_record_over_one_mebibyte_rejects_the_submission() {
        let fits = MAX_RECORD_BYTES - 36 - 600;
        for (len, ok) in [(fits, true), (MAX_RECORD_BYTES, false)] {
            let text = sample().replace("admin", &"a".repeat(len));
            let submission = parse_json(text.as_bytes(), Limits::with_max_events(10)).unwrap();
            let result = encode(
                &submission,
                PartitionKey::SubmissionId,
                PROCESSED,
                MAX_RECORD_BYTES,
            );
            assert_eq!(result.is_ok(), ok, "user of {len} bytes");
            if let Ok(e) = result {
                assert!(e.records[0].len() + e.partition_key.len() <= MAX_RECORD_BYTES);
            } else {
                assert_eq!(result.unwrap_err().reason, Reason::EventTooLarge);
            }
        }
    }

    #[test]
    fn an_aggregated_record_counts_its_framing_and_keys_against_the_limit() {
        let key = PipelineKey::from_secret(b"0123456789abcdef0123456789abcdef").unwrap();
        for placement in [None, Some(&key)] {
            let keys = RecordKeys {
                partition_key: PartitionKey::SubmissionId,
                placement,
                message_id: None,
                carried_hash_key: None,
            };
            let text = sample().replace("admin", &"a".repeat(5_000));
            let submission = parse_json(text.as_bytes(), Limits::with_max_events(10)).unwrap();
            let base = encode(&submission, keys, PROCESSED, MAX_RECORD_BYTES).unwrap();
            let largest = base.records.iter().map(|r| r.len()).max().unwrap();
            let (pk, ehk) = (&*base.partition_key, base.explicit_hash_key.as_deref());
            let aggregated_size = crate::aggregate::record_size_alone(pk, ehk, largest);
            assert!(aggregated_size > largest + pk.len());
            let aggregated = |max_record_bytes| RecordLimit {
                max_record_bytes,
                format: RecordFormat::Aggregated,
            };
            // Fits a record of its own, not an aggregated record.
            let per_event_limit = largest + pk.len();
            assert!(encode(&submission, keys, PROCESSED, per_event_limit).is_ok());
            let refused = encode(&submission, keys, PROCESSED, aggregated(per_event_limit));
            assert_eq!(refused.unwrap_err().reason, Reason::EventTooLarge);
            assert!(
                encode(
                    &submission,
                    keys,
                    PROCESSED,
                    aggregated(aggregated_size - 1)
                )
                .is_err()
            );
            let e = encode(&submission, keys, PROCESSED, aggregated(aggregated_size)).unwrap();
            assert_eq!(
                e.explicit_hash_key, base.explicit_hash_key,
                "the same placement"
            );
            assert_eq!(e.records, base.records);
            let dropped = encode_dropping_oversized(
                submission.clone(),
                keys,
                PROCESSED,
                aggregated(per_event_limit),
            );
            assert_eq!(dropped.dropped.len(), 1, "drop-event drops it");
        }
    }

    #[test]
    fn hash_keys_are_written_in_decimal_whole() {
        for n in [0, 7, 10, u128::from(u64::MAX), u128::MAX - 1, u128::MAX] {
            assert_eq!(&*hash_key_decimal(n), n.to_string());
        }
    }

    #[test]
    fn keyed_placement_adds_one_hash_key_that_the_record_limit_does_not_count() {
        let key = PipelineKey::from_secret(b"0123456789abcdef0123456789abcdef").unwrap();
        let keyed = RecordKeys {
            partition_key: PartitionKey::SubmissionId,
            placement: Some(&key),
            message_id: None,
            carried_hash_key: None,
        };
        // A `user` long enough that data plus partition key is exactly the limit.
        let with_user = |len: usize| sample().replace("admin", &"a".repeat(len));
        let text = with_user(1000);
        let submission = parse_json(text.as_bytes(), Limits::with_max_events(10)).unwrap();
        let base = encode(&submission, keyed, PROCESSED, MAX_RECORD_BYTES).unwrap();
        let len = 1000 + MAX_RECORD_BYTES - base.records[0].len() - base.partition_key.len();
        let text = with_user(len);
        let submission = parse_json(text.as_bytes(), Limits::with_max_events(10)).unwrap();
        let e = encode(&submission, keyed, PROCESSED, MAX_RECORD_BYTES).unwrap();
        assert_eq!(e.records[0].len() + e.partition_key.len(), MAX_RECORD_BYTES);
        let hash = key.explicit_hash_key(SUBMISSION).to_string();
        assert_eq!(e.explicit_hash_key.as_deref(), Some(hash.as_str()));
        let over = encode(&submission, keyed, PROCESSED, MAX_RECORD_BYTES - 1);
        assert_eq!(over.unwrap_err().reason, Reason::EventTooLarge);
        let unkeyed = encode(
            &submission,
            PartitionKey::SubmissionId,
            PROCESSED,
            MAX_RECORD_BYTES,
        );
        assert_eq!(unkeyed.unwrap().explicit_hash_key, None);
    }

    #[test]
    fn a_submission_id_is_placed_with_its_message_id_a_device_id_alone_a_copy_as_carried() {
        let key = PipelineKey::from_secret(b"0123456789abcdef0123456789abcdef").unwrap();
        let keys = |partition_key, message_id, carried_hash_key| RecordKeys {
            partition_key,
            placement: Some(&key),
            message_id,
            carried_hash_key,
        };
        let by_submission = keys(PartitionKey::SubmissionId, Some("m-1"), None);
        assert_eq!(
            by_submission.hash_key("s"),
            Some(key.explicit_hash_key_of_message("s", "m-1"))
        );
        let by_device = keys(PartitionKey::DeviceId, Some("m-1"), None);
        assert_eq!(by_device.hash_key("d"), Some(key.explicit_hash_key("d")));
        for partition_key in [PartitionKey::SubmissionId, PartitionKey::DeviceId] {
            assert_eq!(
                keys(partition_key, Some("m-2"), Some(7)).hash_key("s"),
                Some(7)
            );
        }
        let unkeyed = RecordKeys {
            placement: None,
            ..by_submission
        };
        assert_eq!(unkeyed.hash_key("s"), None);
    }
}

#[cfg(test)]
mod content_bound_ids {
    use std::collections::HashSet;

    use base64::Engine as _;

    use crate::config::PartitionKey;
    use crate::model::Limits;
    use crate::transform::transform;

    const LIMITS: Limits = Limits::with_max_events(10);

    fn doc(submission: &str, cmdl: &str, port: u16) -> String {
        format!(
            r#"{{"submission_id":"{submission}","device_id":"9f8e7d6c-0000-4000-8000-000000000002","time_created":"2021-03-29T12:06:09","events":{{"new_process":[{{"cmdl":"{cmdl}","user":"u"}}],"network_connection":[{{"source_ip":"10.0.0.1","destination_ip":"10.0.0.2","destination_port":{port}}},{{"source_ip":"10.0.0.1","destination_ip":"10.0.0.3","destination_port":53}}]}}}}"#
        )
    }

    fn ids(body: &str, time_processed: &str) -> Vec<String> {
        let encoded = transform(body, LIMITS, PartitionKey::SubmissionId, time_processed).unwrap();
        encoded
            .records
            .iter()
            .map(|r| {
                serde_json::from_slice::<serde_json::Value>(r).unwrap()["event_id"].to_string()
            })
            .collect()
    }

    const SUBMISSION: &str = "4a1b3c5d-0000-4000-8000-000000000001";
    const NIL: &str = "00000000-0000-0000-0000-000000000000";

    #[test]
    fn a_redelivered_message_keeps_its_ids_in_either_transport_encoding() {
        let text = doc(SUBMISSION, "calc.exe", 443);
        let first = ids(&text, "2026-11-22T18:47:44.758345Z");
        assert_eq!(
            first,
            ids(&text, "2026-11-23T00:00:00.000000Z"),
            "a later invocation"
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(&text);
        assert_eq!(first, ids(&b64, "t"), "base64 of the same document");
        assert_eq!(
            first,
            ids(&format!("\n {text} \n"), "t"),
            "blanks around the body"
        );
        assert_eq!(first.len(), 3);
    }

    #[test]
    fn a_reused_submission_id_with_one_changed_field_gets_all_new_ids() {
        // One changed field makes another submission: every one of its ids
        // changes (its events are other events, even where they look equal),
        // and nothing else does.
        let original = ids(&doc(SUBMISSION, "calc.exe", 443), "t");
        for changed in [
            doc(SUBMISSION, "calc.exe", 444),
            doc(SUBMISSION, "notepad.exe", 443),
            doc(SUBMISSION, "calc.exe", 443).replace("12:06:09", "12:06:10"),
        ] {
            let other = ids(&changed, "t");
            let shared: HashSet<_> = original.iter().filter(|id| other.contains(id)).collect();
            assert!(shared.is_empty(), "{changed}: shares {shared:?}");
            assert_eq!(other, ids(&changed, "t"), "and is deterministic");
        }
    }

    #[test]
    fn drop_event_drops_an_event_too_large_for_a_record_and_recounts_the_rest() {
        let huge = "x".repeat(crate::model::MAX_RECORD_BYTES);
        let body = doc(SUBMISSION, &huge, 443);
        let reject = transform(&body, LIMITS, PartitionKey::SubmissionId, "t").unwrap_err();
        assert_eq!(reject.reason, crate::model::Reason::EventTooLarge);
        let limits = LIMITS.with_invalid_events(crate::model::InvalidEvents::DropEvent);
        let encoded = transform(&body, limits, PartitionKey::SubmissionId, "t").unwrap();
        let dropped: Vec<_> = encoded
            .dropped
            .iter()
            .map(|d| (d.sequence, d.reason))
            .collect();
        assert_eq!(dropped, [(0, crate::model::Reason::EventTooLarge)]);
        let records: Vec<serde_json::Value> = encoded
            .records
            .iter()
            .map(|r| serde_json::from_slice(r).unwrap())
            .collect();
        let sequences: Vec<_> = records.iter().map(|r| r["sequence"].clone()).collect();
        assert_eq!(sequences, [1, 2]);
        assert!(
            records.iter().all(|r| r["event_count"] == 2),
            "recounted after the drop"
        );
    }

    #[test]
    fn a_record_number_maps_to_its_sequence_across_dropped_events() {
        let body = doc(SUBMISSION, "calc.exe", 443)
            .replace(r#""cmdl":"calc.exe""#, r#""cmdl":null"#)
            .replace("10.0.0.3", "not-an-ip");
        let limits = LIMITS.with_invalid_events(crate::model::InvalidEvents::DropEvent);
        let encoded = transform(&body, limits, PartitionKey::SubmissionId, "t").unwrap();
        // Sequences 0 and 2 dropped: the one record left is sequence 1.
        assert_eq!(encoded.records.len(), 1);
        assert_eq!(encoded.sequence_of(0), 1);
        assert_eq!(encoded.sequence_of(1), 3);
    }

    #[test]
    fn a_nil_submission_id_is_accepted_and_cannot_merge_two_submissions() {
        let a = ids(&doc(NIL, "calc.exe", 443), "t");
        let b = ids(&doc(NIL, "cmd.exe", 443), "t");
        assert_eq!(a.len(), 3);
        assert!(a.iter().all(|id| !b.contains(id)));
    }
}
