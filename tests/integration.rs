//! The integration tests, one module per file, in one test binary: each
//! binary links the library, the SDK and their generic code anew, and a
//! binary per file would make that most of `cargo test`'s build.
//! `tests/runtime_panic.rs` stays a binary of its own: it sets the
//! process environment that `lambda_runtime` reads.

mod support;

#[path = "aggregate.rs"]
mod aggregate;
#[path = "aggregated.rs"]
mod aggregated;
#[cfg(feature = "lambda")]
#[path = "aws_adapters.rs"]
mod aws_adapters;
#[path = "docs_numbers.rs"]
mod docs_numbers;
#[path = "guarantees.rs"]
mod guarantees;
#[path = "handler.rs"]
mod handler;
#[path = "hostile_input.rs"]
mod hostile_input;
#[path = "logs.rs"]
mod logs;
#[path = "resume.rs"]
mod resume;
#[path = "round_trip.rs"]
mod round_trip;
#[path = "runtime.rs"]
mod runtime;
#[path = "sample_events.rs"]
mod sample_events;
#[path = "shard_placement.rs"]
mod shard_placement;
#[path = "shard_split.rs"]
mod shard_split;
