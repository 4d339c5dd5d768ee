//! The AWS adapters: the SDK clients behind the publisher's, the rejects
//! queue's and the source queue's seams, and their construction from
//! configuration.
//!
//! Only this module knows the AWS SDK; the domain code sees `RecordSink`,
//! `RejectSink` and `ResendSink`. What the SDK retries on its own is not
//! decided here but in the retry policy
//! ([`crate::publisher::retry::KINESIS_SDK_RETRIES`],
//! [`crate::publisher::retry::SQS_SDK_RETRIES`]), beside the publisher's own
//! retries that it must not duplicate; this module only applies it. All of
//! an SQS call's attempts together must fit in one call timeout, the most the
//! handler waits for them.

pub mod kinesis;
pub mod lambda;
pub mod sqs;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::config::Config;
use crate::handler::Handler;
use crate::model::RecordFormat;
use crate::publisher::retry::{KINESIS_SDK_RETRIES, SQS_SDK_RETRIES, SdkRetries};

pub use kinesis::KinesisSink;
pub use sqs::{SqsRejectSink, SqsResendSink};

/// Loads the AWS configuration (region, endpoint, credentials) from the
/// standard environment and builds the handler.
pub async fn handler_from_env(
    config: Config,
) -> Handler<KinesisSink, SqsRejectSink, SqsResendSink> {
    let shared = aws_config::defaults(BehaviorVersion::latest()).load().await;
    handler_from_sdk_config(config, &shared)
}

/// Builds the handler from settings and an already loaded SDK configuration
/// (tests point it at stubs); each client with the SDK retries the retry
/// policy gives it.
pub fn handler_from_sdk_config(
    config: Config,
    shared: &SdkConfig,
) -> Handler<KinesisSink, SqsRejectSink, SqsResendSink> {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(config.connect_timeout)
        .read_timeout(config.call_timeout)
        .operation_attempt_timeout(config.call_timeout)
        .build();
    let mut kinesis_config =
        aws_sdk_kinesis::config::Builder::from(shared).timeout_config(timeouts.clone());
    kinesis_config.set_retry_config(sdk_retry_config(KINESIS_SDK_RETRIES, shared));
    let kinesis_config = kinesis_config.build();
    let kinesis = KinesisSink::new(
        aws_sdk_kinesis::Client::from_conf(kinesis_config),
        config.stream.clone(),
    );
    let kinesis = match config.record_format {
        RecordFormat::Aggregated => kinesis.refusing_auto(),
        RecordFormat::PerEvent => kinesis,
    };
    let sqs_timeouts = timeouts
        .to_builder()
        .operation_timeout(config.call_timeout)
        .build();
    let mut sqs_config = aws_sdk_sqs::config::Builder::from(shared).timeout_config(sqs_timeouts);
    sqs_config.set_retry_config(sdk_retry_config(SQS_SDK_RETRIES, shared));
    let sqs = aws_sdk_sqs::Client::from_conf(sqs_config.build());
    let rejects =
        (config.rejects_queue_url.clone()).map(|url| SqsRejectSink::new(sqs.clone(), url));
    Handler::new(config, kinesis, rejects).with_resend(SqsResendSink::new(sqs))
}

/// The SDK retry configuration of a client whose retries the policy sets to
/// `retries`: none of its own, or the one loaded with `shared`.
fn sdk_retry_config(retries: SdkRetries, shared: &SdkConfig) -> Option<RetryConfig> {
    match retries {
        SdkRetries::Off => Some(RetryConfig::disabled()),
        SdkRetries::AsLoaded => shared.retry_config().cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kinesis_client_makes_one_attempt_and_the_sqs_clients_the_loaded_ones() {
        let shared = SdkConfig::builder()
            .retry_config(RetryConfig::standard().with_max_attempts(4))
            .build();
        let attempts = |retries| sdk_retry_config(retries, &shared).map(|r| r.max_attempts());
        assert_eq!(attempts(KINESIS_SDK_RETRIES), Some(1));
        assert_eq!(attempts(SQS_SDK_RETRIES), Some(4));
    }
}
