//! Structured JSON logs through `tracing`.
//!
//! One JSON object per line on stdout, which CloudWatch Logs indexes as is.
//! Log lines carry ids, reason codes and counts, never a message body or a
//! command line. A line written during an invocation carries the span
//! `lambda_runtime` opens for it: `"span": {"requestId", "xrayTraceId" (when
//! Lambda sends a trace header), "name"}`; lines written at start-up have no
//! `span`.
//!
//! The level is applied here, in the process, not by Lambda: with JSON logs
//! Lambda drops every line whose `level` is below its `ApplicationLogLevel`
//! and counts a line without a `level` as INFO, and the EMF metric documents
//! (`metrics`) have none. At `ApplicationLogLevel=WARN` Lambda would drop
//! every metric, and the alarms that watch them would never fire. So the
//! template leaves Lambda's filter at TRACE and passes the chosen level as
//! `LOG_LEVEL`, which applies to this crate only: [`filter`] says which
//! lines are written, and why dependencies stay at WARN.

pub mod filter;

use filter::{CRATE_TARGET, LogFilter};

use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The target of this module's lines (the start-up lines about the log
/// settings), written at WARN and above whatever the level.
const TARGET: &str = module_path!();

/// Lambda's log levels, lowest first (its `ApplicationLogLevel` values).
pub const LAMBDA_LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// Installs the JSON subscriber on stdout with the filter the environment
/// sets (see [`LogFilter::from_lookup`]); `binary_target` is the calling
/// binary's target (`module_path!()` in its `main`), logged like this crate.
pub fn init(binary_target: &str) {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let filter = LogFilter::from_lookup(var, &[CRATE_TARGET, binary_target]);
    let max_level = filter.max_level();
    let layer_filter = {
        let filter = filter.clone();
        filter_fn(move |metadata| filter.enabled(metadata)).with_max_level_hint(max_level)
    };
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .with_target(false)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_writer(std::io::stdout)
        .with_filter(layer_filter);
    // `try_init` fails only if a subscriber is already set (as in tests).
    let _ = tracing_subscriber::registry().with(layer).try_init();
    filter.report(var("RUST_LOG").as_deref());
    if let Some(lambda_level) = var("AWS_LAMBDA_LOG_LEVEL")
        && drops_metrics(&lambda_level)
    {
        tracing::error!(
            application_log_level = lambda_level.as_str(),
            "Lambda's ApplicationLogLevel drops the EMF metric documents (Lambda counts a line without a level as INFO): set it to TRACE and choose the function's level with LOG_LEVEL"
        );
    }
}

/// Whether Lambda, filtering at `application_log_level`, drops a line that
/// has no `level` (which it counts as INFO).
pub fn drops_metrics(application_log_level: &str) -> bool {
    let rank = |level: &str| {
        LAMBDA_LEVELS
            .iter()
            .position(|l| l.eq_ignore_ascii_case(level.trim()))
    };
    matches!((rank(application_log_level), rank("INFO")), (Some(a), Some(info)) if a > info)
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_stricter_than_info_drop_the_metrics() {
        for level in ["TRACE", "debug", "INFO", "", "nonsense"] {
            assert!(!drops_metrics(level), "{level}");
        }
        for level in ["WARN", "error", "FATAL"] {
            assert!(drops_metrics(level), "{level}");
        }
    }
}
