//! The KPL aggregated record format (`RECORD_FORMAT=aggregated`): many user
//! records in one Kinesis record, written or refused as a whole.
//!
//! | module | what |
//! | --- | --- |
//! | [`format`](mod@format) | the bytes: magic, protobuf message, MD5 |
//! | [`aggregator`](mod@aggregator) | user records → aggregated records within the record limit |
//! | [`deaggregate`](mod@deaggregate) | a Kinesis record → its user records, for consumers |
//!
//! Usable without the `lambda` feature; the feature `kinesis-event` adds
//! `deaggregate::deaggregate_event_record` over `aws_lambda_events`'
//! Kinesis event record (the tests build it always, the function never). docs/contract.md says which consumers read the
//! format by themselves.

pub mod aggregator;
pub mod deaggregate;
pub mod format;

pub use aggregator::{Aggregator, KinesisRecord, TooLarge, aggregate, record_size_alone};
pub use deaggregate::{DeaggregationError, UserRecord, deaggregate, is_aggregated};
