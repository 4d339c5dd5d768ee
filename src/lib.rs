//! `edr-preprocessor`: the preprocessing stage of an EDR backend.
//!
//! An SQS batch of sensor submissions goes in; each valid submission comes
//! out as an ordered sequence of Kinesis records, one per event (or, with
//! `RECORD_FORMAT=aggregated`, its event records in one KPL aggregated
//! record, or a few consecutive ones: [`aggregate`]); the answer
//! to SQS names exactly the submissions that were not fully published.
//!
//! # The modules, in the order the data flows
//!
//! | module | stage |
//! | --- | --- |
//! | [`model`] | the input model: a submission, its events, the value rules, the rejection reasons (a leaf) |
//! | [`decode`] | SQS body → validated [`model::Submission`], or a [`model::Rejection`] with a reason |
//! | [`encode`] | submission → the JSON record of each event (`event_id`, `time_processed`) |
//! | [`transform`] | body → records: decode then encode, the pure path run per message |
//! | [`batch`] | what became of each message of a batch: triage, FIFO lanes and rounds, what each round's rejects and publishing did |
//! | [`rejects_queue`] | storing invalid submissions in the optional rejects queue (SendMessageBatch) |
//! | [`gates`] | each lane waits for its own rejects-queue entries alone; the entries go out one sender at a time |
//! | [`aggregate`] | the KPL aggregated record format: aggregator and deaggregator (`RECORD_FORMAT=aggregated`) |
//! | [`publisher`] | PutRecords: packing, strict/relaxed ordering, the deadline; [`publisher::retry`], the whole retry policy (what is retried, `MAX_ATTEMPTS`, the backoff, the SDK's own retries) |
//! | [`resume`] | a submission published part-way goes back to its queue with its progress, and resumes there: the decision, the marker, where a delivery starts, the copy's delay |
//! | [`shard_split`] | a submission acknowledged on more than one shard: counted, and logged at ERROR |
//! | [`answer`] | the answer to SQS: `batchItemFailures`, or the whole batch failed when a failed message has no id |
//! | [`handler`] | an invocation: triage, store rejects (those that gate publishing first, the others beside it), publish, apply, resume, respond |
//! | `aws` (feature `lambda`) | the AWS SDK adapters behind the seams, and the Lambda glue |
//!
//! The supporting cast: [`config`] (settings from the environment),
//! [`keys`] (the secret sensors never see: marker MACs, shard placement),
//! [`metrics`] (what an invocation did, counted from its batch, as EMF
//! documents on stdout), [`logging`] (JSON lines with the invocation's
//! request and trace ids; the crate's level applied in-process,
//! dependencies at WARN).
//!
//! Three seams keep AWS out of the domain: [`publisher::RecordSink`]
//! (Kinesis), [`rejects_queue::RejectSink`] and [`resume::ResendSink`] (SQS). Production plugs in the SDK
//! adapters of `aws`; the tests plug in scripted fakes, so every guarantee is
//! proven without an emulator and on a paused clock.

#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod aggregate;
pub mod answer;
#[cfg(feature = "lambda")]
pub mod aws;
pub mod batch;
pub mod config;
pub mod decode;
pub mod encode;
pub mod gates;
pub mod handler;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod publisher;
pub mod rejects_queue;
pub mod resume;
pub mod shard_split;
pub mod transform;
