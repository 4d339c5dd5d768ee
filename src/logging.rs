//! Structured JSON logs through `tracing`.
//!
//! One JSON object per line on stdout, which CloudWatch Logs indexes as is.
//! Log lines carry ids, reason codes and counts, never a message body or a
//! command line.
//!
//! The level is applied here, in the process, not by Lambda: with JSON logs
//! Lambda drops every line whose `level` is below its `ApplicationLogLevel`
//! and counts a line without a `level` as INFO, and the EMF metric documents
//! (`metrics`) have none. At `ApplicationLogLevel=WARN` Lambda would drop
//! every metric, and the alarms that watch them would never fire. So the
//! template leaves Lambda's filter at TRACE and passes the chosen level as
//! `LOG_LEVEL`. The filter comes from `RUST_LOG` (any `tracing` directive),
//! else `LOG_LEVEL`, else Lambda's own `AWS_LAMBDA_LOG_LEVEL`, else `info`.

use tracing_subscriber::EnvFilter;

/// Lambda's log levels, lowest first (its `ApplicationLogLevel` values).
pub const LAMBDA_LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// Installs the JSON subscriber on stdout at the level the environment sets
/// (see the module documentation).
pub fn init() {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let level = var("RUST_LOG")
        .or_else(|| {
            var("LOG_LEVEL")
                .or_else(|| var("AWS_LAMBDA_LOG_LEVEL"))
                .map(|l| l.trim().to_ascii_lowercase())
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
