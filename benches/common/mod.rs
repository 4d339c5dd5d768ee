//! Shared by the Rust benchmarks: the sample generator of the tests
//! (tests/support/samples.rs, included here), SQS batches of its
//! submissions, and where results go.
#![allow(dead_code)]

#[path = "../../tests/support/samples.rs"]
mod samples;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};

pub use samples::*;

/// An SQS event as Lambda delivers it from a standard queue.
pub fn sqs_event(bodies: &[String]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("00000000-0000-4000-8000-{i:012x}"));
            m.body = Some(b.clone());
            m.event_source = Some("aws:sqs".into());
            m.event_source_arn = Some("arn:aws:sqs:eu-west-1:123456789012:submissions".into());
            m
        })
        .collect();
    event
}

/// Where the benchmarks write their machine-readable results
/// (`BENCH_OUT`, default `target/bench`), read by `edr_tools.bench.report`
/// (python/edr_tools/bench/report.py).
pub fn out_dir() -> std::path::PathBuf {
    let dir = std::env::var_os("BENCH_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("target/bench"));
    let _ = std::fs::create_dir_all(&dir);
    dir
}
