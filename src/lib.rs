//! `edr-preprocessor`: the preprocessing stage of an EDR backend.
//!
//! An SQS batch of sensor submissions goes in; each valid submission comes
//! out as an ordered sequence of Kinesis records, one per event; the answer
//! to SQS names exactly the submissions that were not fully published. The
//! modules follow the data:
//!
//! - [`submission`]: body → validated submission, or a rejection with a reason
//! - [`event`]: the event model and the JSON record each event becomes
//! - [`publisher`]: PutRecords with packing, ordering, retries and the deadline
//! - [`rejects`]: where invalid submissions are kept
//! - [`transform`]: body → records, the pure path the handler runs per message
//! - [`handler`]: the batch, from SQS records to `batchItemFailures`
//! - [`config`], [`metrics`], [`logging`], [`backoff`]: the supporting cast
//! - `aws` (feature `lambda`, on by default): the AWS SDK adapters behind the
//!   publisher's and rejects' seams

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

#[cfg(feature = "lambda")]
pub mod aws;
pub mod backoff;
pub mod config;
pub mod event;
pub mod handler;
pub mod logging;
pub mod metrics;
pub mod publisher;
pub mod rejects;
pub mod submission;
pub mod transform;
