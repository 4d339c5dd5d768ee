//! Body in, records out: the pure part of the function.
//!
//! Everything between an SQS message body and the Kinesis records of its
//! events, with no I/O: the handler calls it per message, and the fuzz
//! target and the benchmarks call it directly, so what they exercise is
//! exactly what runs in production.

use crate::decode;
use crate::encode::{self, EncodedSubmission, RecordKeys, RecordLimit};
use crate::model::{InvalidEvents, Limits, Rejection};

/// Decodes, validates and encodes one submission; `keys` is a
/// [`RecordKeys`], or a bare [`crate::config::PartitionKey`] for Kinesis'
/// own placement.
pub fn transform<'k>(
    body: &str,
    limits: Limits,
    keys: impl Into<RecordKeys<'k>>,
    time_processed: &str,
) -> Result<EncodedSubmission, Rejection> {
    let keys = keys.into();
    transform_with(body, limits, |_| keys, time_processed)
}

/// [`transform`], with the keys chosen once the body is known to be valid:
/// `keys_for` gets the SHA-256 of its document, which a resume marker is
/// bound to, so that a copy's marker is verified before its records are
/// placed by the hash key it carries.
pub fn transform_with<'k>(
    body: &str,
    limits: Limits,
    keys_for: impl FnOnce(&[u8; 32]) -> RecordKeys<'k>,
    time_processed: &str,
) -> Result<EncodedSubmission, Rejection> {
    let decoded = decode::decode_body(body)?;
    let submission = decode::parse_json(&decoded, limits)?;
    let keys = keys_for(&submission.document_sha256);
    let limit = RecordLimit {
        max_record_bytes: limits.max_record_bytes,
        format: limits.record_format,
    };
    match limits.invalid_events {
        InvalidEvents::RejectSubmission => encode::encode(&submission, keys, time_processed, limit),
        InvalidEvents::DropEvent => Ok(encode::encode_dropping_oversized(
            submission,
            keys,
            time_processed,
            limit,
        )),
    }
}
