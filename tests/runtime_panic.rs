//! A panic inside one invocation fails that invocation (the runtime reports
//! it to Lambda as an error) and the process goes on to serve the next one:
//! `panic = "unwind"` plus lambda_runtime's panic layer, with the handler
//! wired the way `main.rs` wires it.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_lambda_events::event::sqs::SqsEvent;
use edr_preprocessor::handler::Handler;
use edr_preprocessor::publisher::{CallError, EntryResult, OutboundRecord, RecordSink};
use lambda_runtime::{LambdaEvent, service_fn};
use support::runtime_api::RuntimeApiStub;
use support::*;

/// Panics on its first call, then acknowledges everything.
#[derive(Default)]
struct PanicsOnce(AtomicBool);

impl RecordSink for PanicsOnce {
    async fn put_records(
        &self,
        records: Vec<OutboundRecord>,
    ) -> Result<Vec<EntryResult>, CallError> {
        if !self.0.swap(true, Ordering::SeqCst) {
            panic!("injected panic in the Kinesis client");
        }
        Ok(records.iter().map(|_| EntryResult::WRITTEN).collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_fails_one_invocation_and_the_process_serves_the_next() {
    let stub = RuntimeApiStub::default();
    let address = stub.start().await;
    let sqs = |n: usize| {
        serde_json::to_value(batch(vec![message(
            &format!("m{n}"),
            &b64(&submission(n, 2, 1)),
        )]))
        .unwrap()
    };
    stub.push(sqs(0));
    stub.push(sqs(1));
    // SAFETY: the only test in this binary; nothing else reads the environment concurrently.
    unsafe {
        std::env::set_var("AWS_LAMBDA_RUNTIME_API", &address);
        std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", "edr-preprocessor");
        std::env::set_var("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");
        std::env::set_var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128");
        std::env::set_var("AWS_LAMBDA_LOG_GROUP_NAME", "g");
        std::env::set_var("AWS_LAMBDA_LOG_STREAM_NAME", "s");
    }
    let handler: Arc<Handler<PanicsOnce, RecordingRejects>> =
        Arc::new(Handler::new(config(&[]), PanicsOnce::default(), None));
    let runtime = lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let handler = Arc::clone(&handler);
        async move { handler.invoke(event).await }
    }));
    let answers = tokio::select! {
        stopped = runtime => panic!("the runtime loop stopped: {stopped:?}"),
        answers = stub.answers(2) => answers,
    };
    assert_eq!(answers[0].0, "request-1");
    assert_eq!(
        answers[0].1, "error",
        "the panicking invocation is reported failed: {:?}",
        answers[0]
    );
    assert!(answers[0].2.contains("injected panic"), "{}", answers[0].2);
    assert_eq!(answers[1].0, "request-2");
    assert_eq!(answers[1].1, "response");
    assert_eq!(answers[1].2, r#"{"batchItemFailures":[]}"#);
}
