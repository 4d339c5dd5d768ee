//! Fuzzes the whole path from an SQS message body to the Kinesis records of
//! its events. Any input must either be rejected with a reason or give
//! records that are JSON, within Kinesis' size limit, one per event, in
//! sequence order; nothing may panic, hang or allocate without bound.
#![no_main]

use edr_preprocessor::config::PartitionKey;
use edr_preprocessor::model::MAX_RECORD_BYTES;
use edr_preprocessor::decode;
use edr_preprocessor::model::{self, Limits};
use edr_preprocessor::transform::transform;
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits::with_max_events(10_000);

fuzz_target!(|data: &[u8]| {
    // As an SQS body (always a string): base64 or plain JSON.
    if let Ok(body) = std::str::from_utf8(data) {
        check(transform(body, LIMITS, PartitionKey::SubmissionId, "2026-11-22T18:47:44.758345Z"));
    }
    // As a decoded document, invalid UTF-8 included.
    if let Ok(submission) = decode::parse_json(data, LIMITS) {
        let encoded = edr_preprocessor::encode::encode(&submission, PartitionKey::DeviceId, "t", MAX_RECORD_BYTES);
        if let Ok(encoded) = &encoded {
            assert_eq!(encoded.records.len(), submission.events.len());
        }
        check(encoded);
    }
});

fn check(result: Result<edr_preprocessor::encode::EncodedSubmission, model::Rejection>) {
    match result {
        Ok(encoded) => {
            for (sequence, record) in encoded.records.iter().enumerate() {
                assert!(record.len() + encoded.partition_key.len() <= MAX_RECORD_BYTES);
                let value: serde_json::Value = serde_json::from_slice(record).expect("records are JSON");
                assert_eq!(value["sequence"], sequence);
                assert_eq!(value["event_count"], encoded.records.len());
            }
        }
        Err(rejection) => {
            assert!(!rejection.reason.as_str().is_empty());
            assert!(rejection.detail.len() <= 256, "detail of {} bytes", rejection.detail.len());
            assert!(rejection.submission_id.as_ref().is_none_or(|s| s.len() <= 64));
            assert!(rejection.device_id.as_ref().is_none_or(|s| s.len() <= 64));
        }
    }
}
