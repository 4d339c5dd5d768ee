//! The JSON of the Kinesis record each event becomes.
//!
//! Every event of a submission is published as its own record, wrapped with
//! enough context (ids, position, count, times) that a consumer can process
//! it alone, put a submission back together, and de-duplicate redeliveries:
//! `event_id` is a UUIDv5 over `device_id`, `submission_id` and `sequence`,
//! so the same submission always yields the same ids.

use std::sync::Arc;

use bytes::Bytes;
use time::OffsetDateTime;
use time::macros::format_description;
use uuid::Uuid;

use crate::config::PartitionKey;
use crate::model::{Reason, Rejection, Submission};

/// The namespace of `event_id`:
/// `event_id = uuid5(EVENT_ID_NAMESPACE, "{device_id}/{submission_id}/{sequence}")`
/// with both ids in lowercase hyphenated form and `sequence` in decimal.
pub const EVENT_ID_NAMESPACE: Uuid = uuid::uuid!("112ae2df-81a4-48c5-9844-96005350b137");

/// A submission ready to publish: its records in `sequence` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedSubmission {
    /// The submission's id.
    pub submission_id: Uuid,
    /// The sensor's id.
    pub device_id: Uuid,
    /// The partition key of every record (`PARTITION_KEY`).
    pub partition_key: Arc<str>,
    /// The records' JSON, in `sequence` order, slices of one buffer.
    pub records: Vec<Bytes>,
}

/// The deterministic id of the event at `sequence` in a submission.
pub fn event_id(device_id: &Uuid, submission_id: &Uuid, sequence: usize) -> Uuid {
    EventIds::new(device_id, submission_id).id(sequence)
}

/// `event_id`s of one submission: the SHA-1 state after the namespace and
/// `"{device_id}/{submission_id}/"` (more than one 64-byte block) is computed
/// once, so each id hashes only its sequence number and the padding.
struct EventIds {
    prefix: sha1_smol::Sha1,
}

impl EventIds {
    fn new(device_id: &Uuid, submission_id: &Uuid) -> Self {
        let mut prefix = sha1_smol::Sha1::new();
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
        EventIds { prefix }
    }

    fn id(&self, sequence: usize) -> Uuid {
        let mut digits = [0u8; 20];
        let mut sha = self.prefix.clone();
        sha.update(decimal(sequence, &mut digits));
        let hash = sha.digest().bytes();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(hash.get(..16).unwrap_or(&[0; 16]));
        uuid::Builder::from_sha1_bytes(bytes).into_uuid()
    }
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

/// Builds the record of every event. Fails with `event_too_large` if any
/// record (data plus partition key) would exceed `max_record_bytes`, the
/// stream's record limit, so that nothing of an unpublishable submission is
/// sent.
///
/// The fields every record of a submission shares are rendered once; all
/// records are written into one buffer, and each record is a slice of it.
pub fn encode(
    submission: &Submission<'_>,
    key: PartitionKey,
    time_processed: &str,
    max_record_bytes: usize,
) -> Result<EncodedSubmission, Rejection> {
    let partition_key: Arc<str> = match key {
        PartitionKey::SubmissionId => submission.submission_id.to_string().into(),
        PartitionKey::DeviceId => submission.device_id.to_string().into(),
    };
    let event_count = submission.events.len();
    let ids = EventIds::new(&submission.device_id, &submission.submission_id);
    let (middle, tail) = shared_fields(submission, time_processed)
        .map_err(|_| too_large(submission, 0, max_record_bytes))?;

    let mut buf: Vec<u8> = Vec::with_capacity(event_count * (middle.len() + tail.len() + 200));
    let mut ends = Vec::with_capacity(event_count);
    for (sequence, event) in submission.events.iter().enumerate() {
        let start = buf.len();
        buf.extend_from_slice(b"{\"event_id\":\"");
        buf.extend_from_slice(
            ids.id(sequence)
                .hyphenated()
                .encode_lower(&mut Uuid::encode_buffer())
                .as_bytes(),
        );
        buf.extend_from_slice(b"\",\"event_type\":\"");
        buf.extend_from_slice(event.event_type().as_bytes());
        buf.extend_from_slice(&middle);
        buf.extend_from_slice(decimal(sequence, &mut [0u8; 20]));
        buf.extend_from_slice(&tail);
        serde_json::to_writer(&mut buf, event)
            .map_err(|_| too_large(submission, sequence, max_record_bytes))?;
        buf.push(b'}');
        if buf.len() - start + partition_key.len() > max_record_bytes {
            return Err(too_large(submission, sequence, max_record_bytes));
        }
        ends.push(buf.len());
    }
    let all = Bytes::from(buf);
    let mut start = 0;
    let records = ends
        .into_iter()
        .map(|end| {
            let record = all.slice(start..end);
            start = end;
            record
        })
        .collect();
    Ok(EncodedSubmission {
        submission_id: submission.submission_id,
        device_id: submission.device_id,
        partition_key,
        records,
    })
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
    serde_json::to_writer(&mut tail, submission.time_created.as_ref())?;
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
    use crate::model::{Event, Limits, MAX_RECORD_BYTES, MAX_RECORD_BYTES_LIMIT};
    use serde::Serialize;
    use serde_json::{Value, json};

    const SUBMISSION: &str = "4a1b3c5d-0000-4000-8000-000000000001";
    const DEVICE: &str = "9f8e7d6c-0000-4000-8000-000000000002";
    const PROCESSED: &str = "2026-11-22T18:47:44.758345Z";

    fn sample() -> String {
        json!({
            "submission_id": SUBMISSION,
            "device_id": DEVICE,
            "time_created": "2021-03-29T12:06:09.576033",
            "events": {
                "new_process": [{"cmdl": "C:\\Windows\\calc.exe \"x\"", "user": "admin"}],
                "network_connection": [{"source_ip": "192.168.0.1", "destination_ip": "2001:db8::1", "destination_port": 443}]
            }
        })
        .to_string()
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
        time_created: &'a str,
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
                event_id: event_id(&submission.device_id, &submission.submission_id, sequence),
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
        for sequence in [0usize, 9, 10, 99, 100, 12345, usize::MAX] {
            let name = format!(
                "{}/{}/{sequence}",
                submission.device_id, submission.submission_id
            );
            assert_eq!(
                event_id(&submission.device_id, &submission.submission_id, sequence),
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
        assert_eq!(first["event_id"], "b8bae67c-9b80-575c-b226-8aae6abe54f8");
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
        assert_eq!(second["event_id"], "e9df8d64-8eac-5403-a69a-863a5e6764f1");
        assert_eq!(second["event_type"], "network_connection");
        assert_eq!(second["sequence"], 1);
        assert_eq!(second["event_count"], 2);
        assert_eq!(
            second["event_data"],
            json!({"source_ip": "192.168.0.1", "destination_ip": "2001:db8::1", "destination_port": 443})
        );
    }

    #[test]
    fn event_ids_are_uuid5_of_device_submission_and_sequence() {
        let device = Uuid::parse_str(DEVICE).unwrap();
        let submission = Uuid::parse_str(SUBMISSION).unwrap();
        let id = event_id(&device, &submission, 7);
        assert_eq!(id.get_version_num(), 5);
        assert_eq!(
            id,
            Uuid::new_v5(
                &EVENT_ID_NAMESPACE,
                format!("{DEVICE}/{SUBMISSION}/7").as_bytes()
            )
        );
        assert_eq!(id, event_id(&device, &submission, 7), "deterministic");
        assert_ne!(id, event_id(&device, &submission, 8));
        assert_ne!(id, event_id(&submission, &device, 7));
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
        assert_eq!(record["event_id"], "b8bae67c-9b80-575c-b226-8aae6abe54f8");
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
}
