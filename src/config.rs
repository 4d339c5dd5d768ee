//! Settings, read once from the environment at start-up.
//!
//! Every setting has a default except `STREAM_NAME`; a value that is present
//! but malformed is an error, never silently replaced by the default, so the
//! process refuses to start half-configured. Parsing works over a lookup
//! function rather than `std::env` so tests never mutate the process
//! environment.

use std::fmt;
use std::time::Duration;

use crate::keys::{MIN_SECRET_BYTES, PipelineKey};
use crate::model::{InvalidEvents, RecordFormat};

/// Which field of a submission becomes the Kinesis partition key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionKey {
    /// All events of a submission land on one shard (the default): the
    /// per-submission order that strict mode guarantees is then the order a
    /// shard reader sees.
    SubmissionId,
    /// All events of a device land on one shard. A chatty device becomes a hot
    /// partition; order across submissions of a device is still not guaranteed.
    DeviceId,
}

/// How a record's shard is chosen (`SHARD_PLACEMENT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardPlacement {
    /// `ExplicitHashKey` = a keyed hash of the partition key (the default):
    /// a sensor, which chooses its ids, cannot aim its records at a shard
    /// (`crate::keys`).
    Keyed,
    /// Kinesis' own placement, the MD5 of the partition key: anyone who
    /// knows the stream's hash ranges can choose the shard of an id.
    PartitionKey,
}

/// How much of a submission may be in flight at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    /// At most one unacknowledged record per submission: first copies are in
    /// `sequence` order whatever fails.
    Strict,
    /// A whole run of a submission may share one call; after a partial failure
    /// it is re-sent from its first failed record, so last copies are in order.
    Relaxed,
}

/// What becomes of a submission published part-way (`RESUME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Sent back to its standard queue with its progress, and acknowledged:
    /// the copy resumes at its first unacknowledged event (`crate::resume`).
    Resend,
    /// Reported failed, and redelivered whole.
    Off,
}

/// The complete, validated configuration of the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `STREAM_NAME`: a stream name or a stream ARN.
    pub stream: StreamRef,
    /// `PARTITION_KEY`: `submission_id` (default) or `device_id`.
    pub partition_key: PartitionKey,
    /// `ORDERING`: `strict` (default) or `relaxed`.
    pub ordering: Ordering,
    /// `REJECTS_QUEUE_URL`: where invalid submissions are sent, if anywhere.
    pub rejects_queue_url: Option<String>,
    /// `MAX_EVENTS_PER_SUBMISSION` (default 500): larger submissions are rejected.
    /// Strict ordering costs one round trip per event, so a submission must
    /// fit `events x round trip` into the function timeout.
    pub max_events_per_submission: usize,
    /// `INVALID_EVENTS`: `reject-submission` (default), an invalid event
    /// rejects its whole submission; or `drop-event`, only that event is
    /// dropped.
    pub invalid_events: InvalidEvents,
    /// `RESUME`: `resend` (default) or `off`.
    pub resume: Resume,
    /// `SHARD_PLACEMENT`: `keyed` (default) or `partition-key`.
    pub shard_placement: ShardPlacement,
    /// `RECORD_FORMAT`: `per-event` (default), one Kinesis record per event;
    /// or `aggregated`, a submission's records in KPL aggregated records.
    pub record_format: RecordFormat,
    /// `PIPELINE_KEY`: the secret sensors never see, at least
    /// [`MIN_SECRET_BYTES`] bytes; required while `SHARD_PLACEMENT=keyed` or
    /// `RESUME=resend`, which rest on it.
    pub pipeline_key: Option<PipelineKey>,
    /// `KINESIS_MAX_RECORD_SIZE_KIB` (default 1024, at most 10240), in bytes:
    /// the largest record, data plus partition key. It must not exceed the
    /// stream's `MaxRecordSize` (1 MiB unless raised with
    /// `UpdateMaxRecordSize`); a submission with a larger event is rejected
    /// (`event_too_large`) instead of failing at Kinesis on every redelivery.
    pub max_record_bytes: usize,
    /// `MAX_IN_FLIGHT_CALLS` (default 8): concurrent PutRecords calls.
    pub max_in_flight_calls: usize,
    /// `MAX_ATTEMPTS` (default 10): failed sends of one record within one
    /// invocation, throttling not counted (the deadline bounds that).
    pub max_attempts: u32,
    /// `RETRY_BASE_DELAY_MS` (default 50): first backoff ceiling.
    pub retry_base_delay: Duration,
    /// `RETRY_MAX_DELAY_MS` (default 500): largest backoff ceiling. Kinesis
    /// shard limits are per second: a longer wait leaves the shard idle.
    pub retry_max_delay: Duration,
    /// `MAX_RESUME_HOPS` (default 100): copies one submission may take
    /// (`crate::resume`); a submission published part-way that used them up
    /// is reported failed instead of sent back again.
    pub max_resume_hops: u32,
    /// `RESUME_BASE_DELAY_SECONDS` (default 1, 0 for none): the longest wait
    /// of a first copy before SQS delivers it, doubling with each copy.
    pub resume_base_delay_seconds: u32,
    /// `RESUME_MAX_DELAY_SECONDS` (default 900, SQS's largest
    /// `DelaySeconds`): the longest wait of any copy.
    pub resume_max_delay_seconds: u32,
    /// `DEADLINE_MARGIN_MS` (default 500, at least 100): time kept free before
    /// the Lambda deadline to answer SQS; no call is in flight past `deadline -
    /// margin`. Zero is refused: calls abandoned at the deadline itself leave
    /// no time to answer, Lambda kills the invocation and SQS redelivers the
    /// whole batch.
    pub deadline_margin: Duration,
    /// `KINESIS_CONNECT_TIMEOUT_MS` (default 1000).
    pub connect_timeout: Duration,
    /// `KINESIS_CALL_TIMEOUT_MS` (default 5000): one PutRecords attempt, and
    /// the longest the handler waits for the rejects queue.
    pub call_timeout: Duration,
    /// `METRICS_NAMESPACE` (default `EdrPreprocessor`).
    pub metrics_namespace: String,
    /// `AWS_LAMBDA_FUNCTION_NAME`, set by Lambda (default
    /// `edr-preprocessor`): the `FunctionName` dimension of every metric.
    pub function_name: String,
}

/// `STREAM_NAME` as given: Kinesis accepts either form, but in different fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamRef {
    /// A stream name (`StreamName`).
    Name(String),
    /// A stream ARN (`StreamARN`).
    Arn(String),
}

impl StreamRef {
    fn parse(value: &str) -> Result<Self, String> {
        if value.starts_with("arn:") {
            // arn:partition:kinesis:region:account:stream/name
            let parts: Vec<&str> = value.splitn(6, ':').collect();
            let valid = parts.len() == 6
                && parts.get(2) == Some(&"kinesis")
                && parts
                    .get(5)
                    .and_then(|resource| resource.strip_prefix("stream/"))
                    .is_some_and(valid_stream_name);
            if valid {
                Ok(StreamRef::Arn(value.to_owned()))
            } else {
                Err(
                    "not a Kinesis stream ARN (arn:aws:kinesis:<region>:<account>:stream/<name>)"
                        .into(),
                )
            }
        } else if valid_stream_name(value) {
            Ok(StreamRef::Name(value.to_owned()))
        } else {
            Err("a stream name is 1-128 characters of [a-zA-Z0-9_.-]".into())
        }
    }
}

fn valid_stream_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A setting that could not be used; the message names the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable.
    pub variable: &'static str,
    /// What is wrong with its value.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration: {}: {}",
            self.variable, self.problem
        )
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`; an empty value counts as unset. The
    /// first setting that cannot be used is the error.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Environment(lookup);
        let stream = stream_ref(env.get("STREAM_NAME"))?;
        let partition_key = env.choice("PARTITION_KEY", PARTITION_KEYS)?;
        let ordering = env.choice("ORDERING", ORDERINGS)?;
        let invalid_events = env.choice("INVALID_EVENTS", INVALID_EVENTS)?;
        let resume = env.choice("RESUME", RESUMES)?;
        let shard_placement = env.choice("SHARD_PLACEMENT", SHARD_PLACEMENTS)?;
        let record_format = env.choice("RECORD_FORMAT", RECORD_FORMATS)?;
        let key_required = shard_placement == ShardPlacement::Keyed || resume == Resume::Resend;
        let pipeline_key = pipeline_key(env.secret("PIPELINE_KEY"), key_required)?;
        let rejects_queue_url = rejects_queue_url(env.get("REJECTS_QUEUE_URL"))?;
        let config = Config {
            stream,
            partition_key,
            ordering,
            rejects_queue_url,
            invalid_events,
            resume,
            shard_placement,
            record_format,
            pipeline_key,
            max_events_per_submission: env.number("MAX_EVENTS_PER_SUBMISSION", 500, 1, 1_000_000)?
                as usize,
            max_record_bytes: env.number("KINESIS_MAX_RECORD_SIZE_KIB", 1024, 1024, 10_240)?
                as usize
                * 1024,
            max_in_flight_calls: env.number("MAX_IN_FLIGHT_CALLS", 8, 1, 64)? as usize,
            max_attempts: env.number("MAX_ATTEMPTS", 10, 1, 100)? as u32,
            retry_base_delay: env.millis("RETRY_BASE_DELAY_MS", 50, 1, 60_000)?,
            retry_max_delay: env.millis("RETRY_MAX_DELAY_MS", 500, 1, 600_000)?,
            max_resume_hops: env.number("MAX_RESUME_HOPS", 100, 1, 1_000)? as u32,
            resume_base_delay_seconds: env.number("RESUME_BASE_DELAY_SECONDS", 1, 0, 900)? as u32,
            resume_max_delay_seconds: env.number("RESUME_MAX_DELAY_SECONDS", 900, 0, 900)? as u32,
            deadline_margin: env.millis("DEADLINE_MARGIN_MS", 500, 100, 60_000)?,
            connect_timeout: env.millis("KINESIS_CONNECT_TIMEOUT_MS", 1_000, 10, 60_000)?,
            call_timeout: env.millis("KINESIS_CALL_TIMEOUT_MS", 5_000, 10, 600_000)?,
            metrics_namespace: (env.get("METRICS_NAMESPACE"))
                .unwrap_or_else(|| "EdrPreprocessor".into()),
            function_name: (env.get("AWS_LAMBDA_FUNCTION_NAME"))
                .unwrap_or_else(|| "edr-preprocessor".into()),
        };
        config.checked()
    }

    /// The configuration, unless two settings disagree or a value is out of
    /// a range that depends on more than the value.
    fn checked(self) -> Result<Self, ConfigError> {
        if self.retry_max_delay < self.retry_base_delay {
            return Err(ConfigError {
                variable: "RETRY_MAX_DELAY_MS",
                problem: "must not be smaller than RETRY_BASE_DELAY_MS".into(),
            });
        }
        if self.resume_max_delay_seconds < self.resume_base_delay_seconds {
            return Err(ConfigError {
                variable: "RESUME_MAX_DELAY_SECONDS",
                problem: "must not be smaller than RESUME_BASE_DELAY_SECONDS".into(),
            });
        }
        if self.metrics_namespace.len() > 255 {
            return Err(ConfigError {
                variable: "METRICS_NAMESPACE",
                problem: "at most 255 characters".into(),
            });
        }
        Ok(self)
    }

    /// A configuration with every default but the stream, for tests and
    /// benchmarks, with [`TEST_PIPELINE_KEY`] as its secret.
    pub fn for_stream(stream: &str) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| match name {
            "STREAM_NAME" => Some(stream.to_owned()),
            "PIPELINE_KEY" => Some(TEST_PIPELINE_KEY.to_owned()),
            _ => None,
        })
    }
}

/// The secret of [`Config::for_stream`]: public, so for tests and
/// benchmarks only.
pub const TEST_PIPELINE_KEY: &str = "test-only-pipeline-key-not-a-secret-0123";

/// A setting that takes one of a few named values.
struct Choice<T: 'static> {
    /// Its values, by name, in the order an error lists them.
    values: &'static [(&'static str, T)],
    /// The value it takes when unset.
    default: T,
}

const PARTITION_KEYS: Choice<PartitionKey> = Choice {
    values: &[
        ("submission_id", PartitionKey::SubmissionId),
        ("device_id", PartitionKey::DeviceId),
    ],
    default: PartitionKey::SubmissionId,
};
const ORDERINGS: Choice<Ordering> = Choice {
    values: &[("strict", Ordering::Strict), ("relaxed", Ordering::Relaxed)],
    default: Ordering::Strict,
};
const INVALID_EVENTS: Choice<InvalidEvents> = Choice {
    values: &[
        ("reject-submission", InvalidEvents::RejectSubmission),
        ("drop-event", InvalidEvents::DropEvent),
    ],
    default: InvalidEvents::RejectSubmission,
};
const RESUMES: Choice<Resume> = Choice {
    values: &[("resend", Resume::Resend), ("off", Resume::Off)],
    default: Resume::Resend,
};
const SHARD_PLACEMENTS: Choice<ShardPlacement> = Choice {
    values: &[
        ("keyed", ShardPlacement::Keyed),
        ("partition-key", ShardPlacement::PartitionKey),
    ],
    default: ShardPlacement::Keyed,
};
const RECORD_FORMATS: Choice<RecordFormat> = Choice {
    values: &[
        ("per-event", RecordFormat::PerEvent),
        ("aggregated", RecordFormat::Aggregated),
    ],
    default: RecordFormat::PerEvent,
};

/// The environment as the settings read it, through a lookup function.
struct Environment<F>(F);

impl<F: Fn(&str) -> Option<String>> Environment<F> {
    /// A setting's value, trimmed; an empty value counts as unset.
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// A secret's value, not trimmed: it is used byte for byte as given.
    fn secret(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.is_empty())
    }

    /// A whole number from `min` to `max`, `default` when unset.
    fn number(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => match raw.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(ConfigError {
                    variable: name,
                    problem: format!("expected a whole number from {min} to {max}"),
                }),
            },
        }
    }

    /// [`Environment::number`], in milliseconds.
    fn millis(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        self.number(name, default, min, max)
            .map(Duration::from_millis)
    }

    /// The value of the setting `choice` that `name` names.
    fn choice<T: Copy>(&self, name: &'static str, choice: Choice<T>) -> Result<T, ConfigError> {
        let Some(value) = self.get(name) else {
            return Ok(choice.default);
        };
        if let Some(&(_, chosen)) = choice.values.iter().find(|(n, _)| *n == value) {
            return Ok(chosen);
        }
        let allowed: Vec<&str> = choice.values.iter().map(|&(n, _)| n).collect();
        Err(choice_error(name, &value, &allowed.join(", ")))
    }
}

/// `STREAM_NAME`, required.
fn stream_ref(value: Option<String>) -> Result<StreamRef, ConfigError> {
    let Some(value) = value else {
        return Err(ConfigError {
            variable: "STREAM_NAME",
            problem: "required (a Kinesis stream name or ARN)".into(),
        });
    };
    StreamRef::parse(&value).map_err(|problem| ConfigError {
        variable: "STREAM_NAME",
        problem,
    })
}

/// `PIPELINE_KEY`: `required` while a setting rests on it.
fn pipeline_key(
    secret: Option<String>,
    required: bool,
) -> Result<Option<PipelineKey>, ConfigError> {
    match secret {
        None if required => Err(ConfigError {
            variable: "PIPELINE_KEY",
            problem: "required while SHARD_PLACEMENT=keyed or RESUME=resend: a secret \
                      the sensors never see (the template generates one)"
                .into(),
        }),
        None => Ok(None),
        Some(secret) => PipelineKey::from_secret(secret.as_bytes())
            .map(Some)
            .ok_or_else(|| ConfigError {
                variable: "PIPELINE_KEY",
                problem: format!("at least {MIN_SECRET_BYTES} bytes"),
            }),
    }
}

/// `REJECTS_QUEUE_URL`, if set: an SQS queue URL.
fn rejects_queue_url(value: Option<String>) -> Result<Option<String>, ConfigError> {
    match value {
        Some(url) if !(url.starts_with("https://") || url.starts_with("http://")) => {
            Err(ConfigError {
                variable: "REJECTS_QUEUE_URL",
                problem: "must be an SQS queue URL (http:// or https://)".into(),
            })
        }
        other => Ok(other),
    }
}

fn choice_error(variable: &'static str, value: &str, allowed: &str) -> ConfigError {
    let shown: String = value.chars().take(40).collect();
    ConfigError {
        variable,
        problem: format!("{shown:?} is not one of: {allowed}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Parses `pairs`, with [`TEST_PIPELINE_KEY`] unless they set `PIPELINE_KEY`.
    fn parse(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.entry("PIPELINE_KEY".into())
            .or_insert_with(|| TEST_PIPELINE_KEY.into());
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn the_pipeline_key_is_required_while_placement_or_resume_rest_on_it() {
        let required = [
            vec![("STREAM_NAME", "s"), ("PIPELINE_KEY", "")],
            vec![
                ("STREAM_NAME", "s"),
                ("PIPELINE_KEY", ""),
                ("SHARD_PLACEMENT", "partition-key"),
            ],
            vec![
                ("STREAM_NAME", "s"),
                ("PIPELINE_KEY", ""),
                ("RESUME", "off"),
            ],
        ];
        for pairs in required {
            assert_eq!(
                parse(&pairs).unwrap_err().variable,
                "PIPELINE_KEY",
                "{pairs:?}"
            );
        }
        let neither = parse(&[
            ("STREAM_NAME", "s"),
            ("PIPELINE_KEY", ""),
            ("SHARD_PLACEMENT", "partition-key"),
            ("RESUME", "off"),
        ])
        .unwrap();
        assert_eq!(neither.pipeline_key, None);
        assert_eq!(neither.shard_placement, ShardPlacement::PartitionKey);
        let short = parse(&[("STREAM_NAME", "s"), ("PIPELINE_KEY", &"k".repeat(31))]);
        assert_eq!(short.unwrap_err().variable, "PIPELINE_KEY");
        let c = parse(&[("STREAM_NAME", "s")]).unwrap();
        assert_eq!(c.shard_placement, ShardPlacement::Keyed);
        assert_eq!(
            c.pipeline_key,
            PipelineKey::from_secret(TEST_PIPELINE_KEY.as_bytes())
        );
        assert_eq!(
            parse(&[("STREAM_NAME", "s"), ("SHARD_PLACEMENT", "md5")])
                .unwrap_err()
                .variable,
            "SHARD_PLACEMENT"
        );
    }

    #[test]
    fn defaults_apply_when_only_the_stream_is_set() {
        let c = parse(&[("STREAM_NAME", "events")]).unwrap();
        assert_eq!(c.stream, StreamRef::Name("events".into()));
        assert_eq!(c.partition_key, PartitionKey::SubmissionId);
        assert_eq!(c.ordering, Ordering::Strict);
        assert_eq!(c.rejects_queue_url, None);
        assert_eq!(c.max_events_per_submission, 500);
        assert_eq!(c.max_record_bytes, crate::model::MAX_RECORD_BYTES);
        assert_eq!(c.max_in_flight_calls, 8);
        assert_eq!(c.max_attempts, 10);
        assert_eq!(c.retry_base_delay, Duration::from_millis(50));
        assert_eq!(c.retry_max_delay, Duration::from_millis(500));
        assert_eq!(c.max_resume_hops, 100);
        assert_eq!(
            (c.resume_base_delay_seconds, c.resume_max_delay_seconds),
            (1, 900)
        );
        assert_eq!(c.deadline_margin, Duration::from_millis(500));
        assert_eq!(c.connect_timeout, Duration::from_millis(1_000));
        assert_eq!(c.call_timeout, Duration::from_millis(5_000));
        assert_eq!(c.metrics_namespace, "EdrPreprocessor");
        assert_eq!(c.function_name, "edr-preprocessor");
        assert_eq!(c.record_format, RecordFormat::PerEvent);
    }

    #[test]
    fn the_record_format_is_per_event_or_aggregated() {
        let format = |v: &str| parse(&[("STREAM_NAME", "s"), ("RECORD_FORMAT", v)]);
        assert_eq!(
            format("per-event").unwrap().record_format,
            RecordFormat::PerEvent
        );
        assert_eq!(
            format("aggregated").unwrap().record_format,
            RecordFormat::Aggregated
        );
        for bad in ["kpl", "Aggregated", "per_event"] {
            assert_eq!(format(bad).unwrap_err().variable, "RECORD_FORMAT");
        }
    }

    #[test]
    fn stream_is_required() {
        assert_eq!(parse(&[]).unwrap_err().variable, "STREAM_NAME");
        assert_eq!(
            parse(&[("STREAM_NAME", "  ")]).unwrap_err().variable,
            "STREAM_NAME"
        );
    }

    #[test]
    fn stream_accepts_an_arn_and_rejects_garbage() {
        let arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/events";
        assert_eq!(
            parse(&[("STREAM_NAME", arn)]).unwrap().stream,
            StreamRef::Arn(arn.into())
        );
        for bad in [
            "arn:aws:sqs:eu-west-1:1:queue",
            "has space",
            "arn:aws:kinesis:r:1:stream/",
        ] {
            assert_eq!(
                parse(&[("STREAM_NAME", bad)]).unwrap_err().variable,
                "STREAM_NAME",
                "{bad}"
            );
        }
    }

    #[test]
    fn choices_are_parsed_and_bad_values_refused() {
        let c = parse(&[
            ("STREAM_NAME", "s"),
            ("PARTITION_KEY", "device_id"),
            ("ORDERING", "relaxed"),
        ])
        .unwrap();
        assert_eq!(c.partition_key, PartitionKey::DeviceId);
        assert_eq!(c.ordering, Ordering::Relaxed);
        assert_eq!(c.invalid_events, InvalidEvents::RejectSubmission);
        assert_eq!(c.resume, Resume::Resend);
        let c = parse(&[("STREAM_NAME", "s"), ("RESUME", "off")]).unwrap();
        assert_eq!(c.resume, Resume::Off);
        let c = parse(&[("STREAM_NAME", "s"), ("INVALID_EVENTS", "drop-event")]).unwrap();
        assert_eq!(c.invalid_events, InvalidEvents::DropEvent);
        assert_eq!(
            parse(&[("STREAM_NAME", "s"), ("INVALID_EVENTS", "drop")])
                .unwrap_err()
                .variable,
            "INVALID_EVENTS"
        );
        assert_eq!(
            parse(&[("STREAM_NAME", "s"), ("PARTITION_KEY", "user")])
                .unwrap_err()
                .variable,
            "PARTITION_KEY"
        );
        assert_eq!(
            parse(&[("STREAM_NAME", "s"), ("ORDERING", "STRICT")])
                .unwrap_err()
                .variable,
            "ORDERING"
        );
    }

    #[test]
    fn numbers_out_of_range_or_malformed_are_refused() {
        for (var, value) in [
            ("MAX_IN_FLIGHT_CALLS", "0"),
            ("MAX_IN_FLIGHT_CALLS", "65"),
            ("MAX_ATTEMPTS", "-1"),
            ("MAX_EVENTS_PER_SUBMISSION", "ten"),
            ("KINESIS_CALL_TIMEOUT_MS", "1.5"),
            ("DEADLINE_MARGIN_MS", "0"),
            ("KINESIS_MAX_RECORD_SIZE_KIB", "1023"),
            ("KINESIS_MAX_RECORD_SIZE_KIB", "10241"),
            ("DEADLINE_MARGIN_MS", "99"),
            ("MAX_RESUME_HOPS", "0"),
            ("MAX_RESUME_HOPS", "1001"),
            ("RESUME_BASE_DELAY_SECONDS", "901"),
            ("RESUME_MAX_DELAY_SECONDS", "901"),
        ] {
            let err = parse(&[("STREAM_NAME", "s"), (var, value)]).unwrap_err();
            assert_eq!(err.variable, var, "{var}={value}");
        }
        let err = parse(&[
            ("STREAM_NAME", "s"),
            ("RETRY_BASE_DELAY_MS", "100"),
            ("RETRY_MAX_DELAY_MS", "50"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "RETRY_MAX_DELAY_MS");
        let err = parse(&[
            ("STREAM_NAME", "s"),
            ("RESUME_BASE_DELAY_SECONDS", "60"),
            ("RESUME_MAX_DELAY_SECONDS", "30"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "RESUME_MAX_DELAY_SECONDS");
    }

    #[test]
    fn the_record_size_limit_is_set_in_kib_up_to_ten_mebibytes() {
        let c = parse(&[
            ("STREAM_NAME", "s"),
            ("KINESIS_MAX_RECORD_SIZE_KIB", "10240"),
        ])
        .unwrap();
        assert_eq!(c.max_record_bytes, crate::model::MAX_RECORD_BYTES_LIMIT);
        let c = parse(&[
            ("STREAM_NAME", "s"),
            ("KINESIS_MAX_RECORD_SIZE_KIB", "2048"),
        ])
        .unwrap();
        assert_eq!(c.max_record_bytes, 2 * 1024 * 1024);
    }

    #[test]
    fn rejects_queue_must_be_a_url() {
        let url = "https://sqs.eu-west-1.amazonaws.com/123456789012/rejects";
        assert_eq!(
            parse(&[("STREAM_NAME", "s"), ("REJECTS_QUEUE_URL", url)])
                .unwrap()
                .rejects_queue_url
                .as_deref(),
            Some(url)
        );
        assert_eq!(
            parse(&[("STREAM_NAME", "s"), ("REJECTS_QUEUE_URL", "rejects")])
                .unwrap_err()
                .variable,
            "REJECTS_QUEUE_URL"
        );
    }
}
