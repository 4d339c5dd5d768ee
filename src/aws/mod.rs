//! The AWS adapters: the SDK clients behind the publisher's, the rejects
//! queue's and the source queue's seams, and their construction from
//! configuration.
//!
//! Only this module knows the AWS SDK; the domain code sees `RecordSink`,
//! `RejectSink` and `ResendSink`. The SDK's own retries are turned off for Kinesis: the
//! publisher retries per record, knows the invocation's deadline, and must
//! not have a request silently repeated under it. The SQS clients keep the
//! SDK's standard retries, but all of a call's attempts together must fit in
//! one call timeout, the most the handler waits for them.

pub mod kinesis;
pub mod lambda;
pub mod sqs;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::config::Config;
use crate::handler::Handler;
use crate::model::RecordFormat;

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
/// (tests point it at stubs); the Kinesis client without SDK retries.
pub fn handler_from_sdk_config(
    config: Config,
    shared: &SdkConfig,
) -> Handler<KinesisSink, SqsRejectSink, SqsResendSink> {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(config.connect_timeout)
        .read_timeout(config.call_timeout)
        .operation_attempt_timeout(config.call_timeout)
        .build();
    let kinesis_config = aws_sdk_kinesis::config::Builder::from(shared)
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts.clone())
        .build();
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
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(shared)
            .timeout_config(sqs_timeouts)
            .build(),
    );
    let rejects =
        (config.rejects_queue_url.clone()).map(|url| SqsRejectSink::new(sqs.clone(), url));
    Handler::new(config, kinesis, rejects).with_resend(SqsResendSink::new(sqs))
}
