//! Fuzzes the whole path from an SQS message body to the Kinesis records of
//! its events, in both `INVALID_EVENTS` modes. Any input must either be
//! rejected with a reason or give records that are strict JSON, within
//! Kinesis' size limit, one per published event, in sequence order, whose
//! addresses carry no zone but an interface index or name; nothing may
//! panic, hang or allocate without bound.
//!
//! Strict JSON: serde_json reads every record into a `Value` where it can;
//! the one thing it refuses that JSON's grammar allows is a lone surrogate
//! escape, which strings carry through as the sensor wrote them, so such a
//! record is checked with serde_json's grammar alone (`IgnoredAny` checks
//! every token, escapes and control characters included, without decoding
//! strings). Python's `json.loads` accepts both: `tests/round_trip.rs`
//! runs it on such records.
#![no_main]

use edr_preprocessor::config::PartitionKey;
use edr_preprocessor::decode;
use edr_preprocessor::model::{self, InvalidEvents, Limits, MAX_RECORD_BYTES};
use edr_preprocessor::transform::transform;
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

const LIMITS: Limits = Limits::with_max_events(10_000);
const MODES: [InvalidEvents; 2] = [InvalidEvents::RejectSubmission, InvalidEvents::DropEvent];

fuzz_target!(|data: &[u8]| {
    for mode in MODES {
        let limits = LIMITS.with_invalid_events(mode);
        // As an SQS body (always a string): base64 or plain JSON.
        if let Ok(body) = std::str::from_utf8(data) {
            check(transform(body, limits, PartitionKey::SubmissionId, "2026-11-22T18:47:44.758345Z"));
        }
        // As a decoded document, invalid UTF-8 included.
        if let Ok(submission) = decode::parse_json(data, limits) {
            let encoded = edr_preprocessor::encode::encode(&submission, PartitionKey::DeviceId, "t", MAX_RECORD_BYTES);
            if let Ok(encoded) = &encoded {
                assert_eq!(encoded.records.len(), submission.events.len());
            }
            check(encoded);
        }
    }
});

/// What a consumer reads of every record to put a submission back together.
#[derive(Deserialize)]
struct Envelope<'a> {
    sequence: usize,
    event_count: usize,
    #[serde(borrow)]
    event_data: &'a serde_json::value::RawValue,
}

fn check(result: Result<edr_preprocessor::encode::EncodedSubmission, model::Rejection>) {
    match result {
        Ok(encoded) => {
            let mut previous: Option<usize> = None;
            for record in &encoded.records {
                assert!(record.len() + encoded.partition_key.len() <= MAX_RECORD_BYTES);
                let envelope: Envelope<'_> = serde_json::from_slice(record).expect("records are JSON");
                if serde_json::from_slice::<serde_json::Value>(record).is_err() {
                    serde_json::from_str::<serde::de::IgnoredAny>(envelope.event_data.get())
                        .expect("event_data is JSON");
                    assert!(envelope.event_data.get().contains("\\u"), "only a surrogate escape stops serde_json");
                }
                check_zones(envelope.event_data.get());
                assert!(previous.is_none_or(|p| p < envelope.sequence), "sequence order");
                previous = Some(envelope.sequence);
                assert_eq!(envelope.event_count, encoded.records.len());
            }
            let gaps = encoded.dropped.len();
            assert_eq!(previous.map_or(0, |p| p + 1), encoded.records.len() + gaps - trailing_drops(&encoded));
        }
        Err(rejection) => {
            assert!(!rejection.reason.as_str().is_empty());
            assert!(rejection.detail.len() <= 256, "detail of {} bytes", rejection.detail.len());
            assert!(rejection.submission_id.as_ref().is_none_or(|s| s.len() <= 64));
            assert!(rejection.device_id.as_ref().is_none_or(|s| s.len() <= 64));
        }
    }
}

/// The addresses of a published event (absent in a `new_process` one).
#[derive(Deserialize)]
struct Addresses {
    source_ip: Option<String>,
    destination_ip: Option<String>,
}

/// A published address holds no zone but an interface index or name
/// (docs/contract.md): at most 15 of `[A-Za-z0-9._-]`, so no text a consumer
/// could take for a query or a command. Checked on the decoded value, as
/// the function checks it; other fields are skipped unread, so a lone
/// surrogate elsewhere does not stop the check.
fn check_zones(event_data: &str) {
    let addresses: Addresses = serde_json::from_str(event_data).expect("addresses are strings");
    for ip in [addresses.source_ip, addresses.destination_ip].into_iter().flatten() {
        if let Some((_, zone)) = ip.split_once('%') {
            let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
            assert!((1..=15).contains(&zone.len()) && zone.bytes().all(allowed), "zone {zone:?}");
        }
    }
}

/// Dropped events after the last published one leave no gap to count.
fn trailing_drops(encoded: &edr_preprocessor::encode::EncodedSubmission) -> usize {
    let total = encoded.records.len() + encoded.dropped.len();
    encoded.dropped.iter().rev().enumerate().take_while(|(i, d)| d.sequence == total - 1 - i).count()
}
