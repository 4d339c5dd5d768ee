//! Body in, records out: the pure part of the function.
//!
//! Everything between an SQS message body and the Kinesis records of its
//! events, with no I/O: the handler calls it per message, and the fuzz
//! target and the benchmarks call it directly, so what they exercise is
//! exactly what runs in production.

use crate::config::PartitionKey;
use crate::decode;
use crate::encode::{self, EncodedSubmission};
use crate::model::{InvalidEvents, Limits, Rejection};

/// Decodes, validates and encodes one submission.
pub fn transform(
    body: &str,
    limits: Limits,
    key: PartitionKey,
    time_processed: &str,
) -> Result<EncodedSubmission, Rejection> {
    let decoded = decode::decode_body(body)?;
    let submission = decode::parse_json(&decoded, limits)?;
    match limits.invalid_events {
        InvalidEvents::RejectSubmission => {
            encode::encode(&submission, key, time_processed, limits.max_record_bytes)
        }
        InvalidEvents::DropEvent => Ok(encode::encode_dropping_oversized(
            submission,
            key,
            time_processed,
            limits.max_record_bytes,
        )),
    }
}
