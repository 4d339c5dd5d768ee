//! The sample events in `events/` (what `cargo lambda invoke --data-file`
//! sends) go through the real event deserialisation and the handler, and
//! give the responses the README documents.

mod support;

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::SqsEvent;
use edr_preprocessor::handler::Handler;
use support::*;

fn load(name: &str) -> SqsEvent {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test(start_paused = true)]
async fn sensor_batch_is_published_whole() {
    let event = load("sensor-batch.json");
    assert_eq!(event.records.len(), 5);
    let h = handler(ScriptedKinesis::healthy(), &[]);
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let state = h.kinesis().state();
    let per_submission: BTreeMap<&str, u64> = state
        .written
        .iter()
        .map(|s| (s.submission_id.as_str(), s.event_count))
        .collect();
    assert_eq!(per_submission.len(), 5);
    assert!(per_submission.values().all(|&n| (6..=10).contains(&n)));
    assert_eq!(
        state.written.len() as u64,
        per_submission.values().sum::<u64>()
    );
}

#[tokio::test(start_paused = true)]
async fn invalid_mix_rejects_each_broken_kind_and_publishes_the_rest() {
    let event = load("invalid-mix.json");
    let h = Handler::new(
        config(&[]),
        ScriptedKinesis::healthy(),
        Some(RecordingRejects::default()),
    );
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "invalid submissions are dropped, not retried"
    );
    let mut reasons: Vec<String> = h
        .rejects()
        .unwrap()
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|(_, r, _)| r.clone())
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "invalid_base64",
            "invalid_destination_ip",
            "invalid_destination_port",
            "invalid_device_id",
            "invalid_submission_id",
            "invalid_time_created",
            "invalid_utf8",
            "malformed_json",
            "missing_field",
            "not_an_object",
            "null_value",
            "unknown_event_type",
            "unknown_field",
            "wrong_type",
        ]
    );
    let state = h.kinesis().state();
    let submissions: std::collections::HashSet<&str> = state
        .written
        .iter()
        .map(|s| s.submission_id.as_str())
        .collect();
    assert_eq!(
        submissions.len(),
        15,
        "14 valid base64 submissions and one plain JSON one"
    );
}

#[tokio::test(start_paused = true)]
async fn fifo_batch_keeps_group_order_and_blocks_a_group_after_a_failure() {
    let event = load("fifo-batch.json");
    let h = handler(ScriptedKinesis::healthy(), &[]);
    let response = h.handle(event.clone(), far_deadline()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());

    // The second message fails for good: every later message of its group is retried, nothing of them sent.
    let second = event.records[1].message_id.clone().unwrap();
    let group = event.records[1].attributes["MessageGroupId"].clone();
    let body: serde_json::Value = {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(event.records[1].body.as_deref().unwrap())
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let doomed = body["submission_id"].as_str().unwrap().to_owned();
    let h = handler(
        ScriptedKinesis::per_record(move |s| {
            if s.submission_id == doomed {
                kms_denied()
            } else {
                written()
            }
        }),
        &[],
    );
    let response = h.handle(event.clone(), far_deadline()).await.unwrap();
    let expected: Vec<String> = event
        .records
        .iter()
        .skip(1)
        .filter(|r| r.attributes["MessageGroupId"] == group)
        .map(|r| r.message_id.clone().unwrap())
        .collect();
    assert_eq!(failed_ids(&response), expected);
    assert_eq!(failed_ids(&response)[0], second);
}

#[tokio::test(start_paused = true)]
async fn large_batch_is_packed_into_full_calls() {
    let event = load("large-batch.json");
    assert_eq!(event.records.len(), 1000);
    let h = handler(ScriptedKinesis::healthy(), &[]);
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(h.kinesis().state().written.len(), 8000);
    // Strict order: 8 event positions x ceil(1000 / 500) calls.
    assert_eq!(h.kinesis().calls(), 16);
}
