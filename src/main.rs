//! The Lambda entry point: configure, then serve invocations.
//!
//! A bad setting stops the process before the first invocation (Lambda then
//! reports an init error) instead of running half-configured.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use edr_preprocessor::{aws, config::Config, logging};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init(module_path!());
    let config =
        Config::from_env().inspect_err(|e| tracing::error!(error = %e, "refusing to start"))?;
    let handler = Arc::new(aws::handler_from_env(config).await);
    // Once per execution environment and off the invocation path: does the
    // stream ignore partition keys (src/shard_split.rs)? Nothing waits for it.
    tokio::spawn(handler.kinesis().clone().report_record_distribution());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let handler = Arc::clone(&handler);
        async move { handler.invoke(event).await }
    }))
    .await
}
