//! Structured JSON logs through `tracing`.
//!
//! One JSON object per line on stdout, which CloudWatch Logs indexes as is.
//! The level comes from `RUST_LOG`, else from Lambda's own
//! `AWS_LAMBDA_LOG_LEVEL` (set by the function's logging configuration),
//! else `info`. Log lines carry ids, reason codes and counts, never a
//! message body or a command line.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let level = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| {
            std::env::var("AWS_LAMBDA_LOG_LEVEL")
                .ok()
                .map(|l| l.to_ascii_lowercase())
        })
        .unwrap_or_else(|| "info".into());
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    // `try_init` fails only if a subscriber is already set (as in tests).
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .with_current_span(false)
        .with_span_list(false)
        .flatten_event(true)
        .with_writer(std::io::stdout)
        .try_init();
}
