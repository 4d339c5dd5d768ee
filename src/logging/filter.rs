//! Which log lines are written: this crate's at the chosen level, its
//! dependencies' at WARN, and the span `lambda_runtime` opens around each
//! invocation.
//!
//! Why not the chosen level everywhere: at TRACE `lambda_runtime` logs every
//! event it receives, whole (every SQS body, in clear or in base64), and
//! other dependencies log requests at DEBUG or TRACE; none of that may reach
//! CloudWatch Logs because someone asked for this crate's details. `RUST_LOG`
//! stays the explicit way to ask for a dependency's: its `target=level`
//! directives (and a bare level, the default for every target not named) are
//! applied over these, and asking for a dependency below WARN is logged as a
//! warning at start-up.

use std::str::FromStr;

use tracing::Metadata;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;

/// The level of every target that is not this crate's, unless `RUST_LOG`
/// names it.
pub const DEPENDENCY_LEVEL: LevelFilter = LevelFilter::WARN;

/// The level of this crate when `LOG_LEVEL` (and `AWS_LAMBDA_LOG_LEVEL`) are
/// unset or unreadable.
pub const DEFAULT_LEVEL: LevelFilter = LevelFilter::INFO;

/// The target of the span `lambda_runtime` opens around each invocation
/// (`requestId`, and `xrayTraceId` when Lambda sends a trace header): its
/// `TracingLayer`, which `lambda_runtime::run` installs.
const INVOCATION_SPAN_TARGET: &str = "lambda_runtime::layers::trace";

/// The crate's own target (its name as `tracing` writes it).
pub const CRATE_TARGET: &str = env!("CARGO_CRATE_NAME");

/// The log filter, and what reading the settings found to warn about.
#[derive(Debug, Clone)]
pub struct LogFilter {
    /// The level of each target (events only).
    pub targets: Targets,
    /// The level `LOG_LEVEL` gave this crate.
    pub own_level: LevelFilter,
    /// `RUST_LOG` directives that let a dependency log below WARN.
    pub below_warn: Vec<String>,
    /// Settings that could not be read, each with what is used instead.
    pub unreadable: Vec<String>,
}

impl LogFilter {
    /// The filter the environment asks for (`lookup` reads a variable;
    /// `own_targets` are this crate's targets: the library's and the
    /// binary's): `LOG_LEVEL`, else `AWS_LAMBDA_LOG_LEVEL`, else INFO, for
    /// `own_targets` and for the start-up lines of this module (never less
    /// than WARN); every other target at WARN; then `RUST_LOG`'s directives.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>, own_targets: &[&str]) -> Self {
        let mut unreadable = Vec::new();
        let own_level = ["LOG_LEVEL", "AWS_LAMBDA_LOG_LEVEL"]
            .iter()
            .find_map(|name| lookup(name).map(|value| (name, value)))
            .map_or(DEFAULT_LEVEL, |(name, value)| {
                lambda_level(&value).unwrap_or_else(|| {
                    unreadable.push(format!("{name}={}: not a level, INFO used", value.trim()));
                    DEFAULT_LEVEL
                })
            });
        let mut targets = Targets::new().with_default(DEPENDENCY_LEVEL);
        for target in own_targets {
            targets = targets.with_target(*target, own_level);
        }
        // The warnings below say that payloads may be logged: shown at every level.
        targets = targets.with_target(super::TARGET, own_level.max(LevelFilter::WARN));
        let mut below_warn = Vec::new();
        for directive in lookup("RUST_LOG").iter().flat_map(|v| v.split(',')) {
            let directive = directive.trim();
            if directive.is_empty() {
                continue;
            }
            let Ok(parsed) = Targets::from_str(directive) else {
                unreadable.push(format!(
                    "RUST_LOG directive {directive:?}: not target=level, ignored"
                ));
                continue;
            };
            let named = parsed.iter().next();
            let level = named.map_or(parsed.default_level(), |(_, l)| Some(l));
            let Some(level) = level else { continue };
            match named {
                Some((target, _)) => {
                    if level > DEPENDENCY_LEVEL && !is_own(target, own_targets) {
                        below_warn.push(directive.to_owned());
                    }
                    targets = targets.with_target(target, level);
                }
                None => {
                    if level > DEPENDENCY_LEVEL {
                        below_warn.push(directive.to_owned());
                    }
                    targets = targets.with_default(level);
                }
            }
        }
        LogFilter {
            targets,
            own_level,
            below_warn,
            unreadable,
        }
    }

    /// Whether a line or span with `metadata` is written: events by target
    /// and level, and of the spans only the invocation's, whatever the
    /// levels (its fields go on every line written inside it, and no other
    /// span may take its place as the line's current span).
    pub fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        if metadata.is_span() {
            metadata.target() == INVOCATION_SPAN_TARGET
        } else {
            self.targets
                .would_enable(metadata.target(), metadata.level())
        }
    }

    /// The most verbose level anything is written at (a hint that spares
    /// `tracing` the callsites below it).
    pub fn max_level(&self) -> LevelFilter {
        self.targets
            .iter()
            .map(|(_, level)| level)
            .chain(self.targets.default_level())
            .chain([LevelFilter::INFO]) // the invocation span
            .max()
            .unwrap_or(LevelFilter::TRACE)
    }

    /// Logs what reading the settings found (call once the subscriber is set).
    pub fn report(&self, rust_log: Option<&str>) {
        for problem in &self.unreadable {
            tracing::warn!(
                setting = problem.as_str(),
                "a log setting could not be read"
            );
        }
        if !self.below_warn.is_empty() {
            tracing::warn!(
                rust_log = rust_log.map(|v| super::bounded(v, 512)),
                below_warn = self.below_warn.join(","),
                "RUST_LOG lets dependencies log below WARN: at DEBUG and TRACE some write payloads (lambda_runtime every event it receives, whole) to CloudWatch Logs; unset RUST_LOG once done"
            );
        }
    }
}

/// A Lambda log level (`TRACE` … `FATAL`, any case) or a `tracing` one.
fn lambda_level(value: &str) -> Option<LevelFilter> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("FATAL") {
        return Some(LevelFilter::ERROR);
    }
    LevelFilter::from_str(value)
        .ok()
        .filter(|_| !value.is_empty())
}

/// Whether `target` is one of `own_targets` or a module of one.
fn is_own(target: &str, own_targets: &[&str]) -> bool {
    own_targets.iter().any(|own| {
        target == *own
            || target
                .strip_prefix(own)
                .is_some_and(|rest| rest.starts_with("::"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tracing::Level;

    const OWN: [&str; 2] = [CRATE_TARGET, "bootstrap"];

    fn filter(vars: &[(&str, &str)]) -> LogFilter {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LogFilter::from_lookup(|name| vars.get(name).cloned(), &OWN)
    }

    /// Whether `filter` writes an event of `target` at `level`.
    fn writes(filter: &LogFilter, target: &str, level: Level) -> bool {
        filter.targets.would_enable(target, &level)
    }

    const PAYLOAD_TARGET: &str = "lambda_runtime::layers::api_response";

    #[test]
    fn the_chosen_level_is_this_crates_and_dependencies_stay_at_warn() {
        for level in ["TRACE", "debug", "INFO", "warn", "ERROR"] {
            let f = filter(&[("LOG_LEVEL", level)]);
            assert_eq!(f.own_level, LevelFilter::from_str(level).unwrap());
            assert!(!writes(&f, PAYLOAD_TARGET, Level::TRACE), "{level}");
            assert!(!writes(&f, "aws_smithy_runtime", Level::INFO), "{level}");
            assert!(writes(&f, "hyper_util", Level::WARN), "{level}");
            assert!(writes(&f, "edr_preprocessor::batch", Level::ERROR));
            assert!(f.below_warn.is_empty() && f.unreadable.is_empty());
        }
        let f = filter(&[("LOG_LEVEL", "TRACE")]);
        assert!(writes(&f, "edr_preprocessor::batch", Level::TRACE));
        assert!(writes(&f, "bootstrap", Level::TRACE));
        let f = filter(&[("LOG_LEVEL", "ERROR")]);
        assert!(!writes(&f, "edr_preprocessor::batch", Level::WARN));
        assert!(
            writes(&f, "edr_preprocessor::logging::filter", Level::WARN),
            "the warnings about the log settings show at every level"
        );
    }

    #[test]
    fn the_level_falls_back_to_lambdas_then_info() {
        let f = filter(&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG")]);
        assert_eq!(f.own_level, LevelFilter::DEBUG);
        let f = filter(&[("LOG_LEVEL", "warn"), ("AWS_LAMBDA_LOG_LEVEL", "DEBUG")]);
        assert_eq!(f.own_level, LevelFilter::WARN);
        assert_eq!(filter(&[]).own_level, LevelFilter::INFO);
        let f = filter(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")]);
        assert_eq!(f.own_level, LevelFilter::ERROR);
        let f = filter(&[("LOG_LEVEL", "loud")]);
        assert_eq!(f.own_level, LevelFilter::INFO);
        assert_eq!(f.unreadable.len(), 1, "{:?}", f.unreadable);
    }

    #[test]
    fn rust_log_asks_for_dependencies_explicitly_and_is_reported() {
        let f = filter(&[("LOG_LEVEL", "INFO"), ("RUST_LOG", "lambda_runtime=trace")]);
        assert!(writes(&f, PAYLOAD_TARGET, Level::TRACE));
        assert!(!writes(&f, "edr_preprocessor", Level::DEBUG));
        assert_eq!(f.below_warn, ["lambda_runtime=trace"]);

        // A bare level is the default of every target not named: dependencies.
        let f = filter(&[("LOG_LEVEL", "INFO"), ("RUST_LOG", "debug")]);
        assert!(writes(&f, "hyper_util::client", Level::DEBUG));
        assert!(!writes(&f, "edr_preprocessor::batch", Level::DEBUG));
        assert_eq!(f.below_warn, ["debug"]);

        // Naming this crate overrides LOG_LEVEL, and widens no dependency.
        let f = filter(&[
            ("LOG_LEVEL", "WARN"),
            (
                "RUST_LOG",
                "edr_preprocessor::publisher=trace, bootstrap=debug",
            ),
        ]);
        assert!(writes(
            &f,
            "edr_preprocessor::publisher::retry",
            Level::TRACE
        ));
        assert!(!writes(&f, "edr_preprocessor::batch", Level::INFO));
        assert!(f.below_warn.is_empty(), "{:?}", f.below_warn);

        // Narrowing is not widening; a bare target means TRACE.
        let f = filter(&[("RUST_LOG", "error,aws_config=warn,h2")]);
        assert!(!writes(&f, "hyper_util", Level::WARN));
        assert!(writes(&f, "h2::proto", Level::TRACE));
        assert_eq!(f.below_warn, ["h2"]);
        // A prefix of this crate's name is another target.
        assert_eq!(
            filter(&[("RUST_LOG", "edr=debug")]).below_warn,
            ["edr=debug"]
        );
    }

    #[test]
    fn an_unreadable_rust_log_directive_is_ignored_and_reported() {
        let f = filter(&[("RUST_LOG", "hyper=loud,,aws_config=debug")]);
        assert_eq!(f.unreadable.len(), 1, "{:?}", f.unreadable);
        assert!(!writes(&f, "hyper", Level::INFO));
        assert!(writes(&f, "aws_config", Level::DEBUG));
        assert_eq!(f.below_warn, ["aws_config=debug"]);
    }

    #[test]
    fn the_level_hint_covers_the_invocation_span() {
        let f = filter(&[("LOG_LEVEL", "ERROR")]);
        assert!(f.max_level() >= LevelFilter::INFO);
        assert_eq!(
            filter(&[("LOG_LEVEL", "TRACE")]).max_level(),
            LevelFilter::TRACE
        );
        assert_eq!(
            filter(&[("LOG_LEVEL", "DEBUG")]).max_level(),
            LevelFilter::DEBUG
        );
    }
}
