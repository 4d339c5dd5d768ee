//! The sample events in `events/` (what `cargo lambda invoke --data-file`
//! sends) go through the real event deserialisation and the handler, and
//! give the responses docs/local.md documents.

use crate::support;

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

/// The golden file of the records `transform` produces for every sample
/// event: the record format's one source of truth outside the code, read by
/// the capacity model (record and body sizes). `UPDATE_GOLDEN=1 cargo test
/// --test sample_events` rewrites it after a deliberate format change.
const GOLDEN: &str = "events/records.golden.jsonl";
const GOLDEN_TIME_PROCESSED: &str = "2026-11-22T18:47:44.758345Z";

fn golden_lines() -> String {
    use edr_preprocessor::config::PartitionKey;
    use edr_preprocessor::model::Limits;
    use edr_preprocessor::transform::transform;
    let dir = format!("{}/events", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    let limits = Limits::with_max_events(config(&[]).max_events_per_submission);
    let mut out = String::new();
    for file in files {
        for record in load(&file).records {
            let body = record.body.unwrap_or_default();
            let mut line = serde_json::json!({
                "file": file,
                "message_id": record.message_id,
                "body_bytes": body.len(),
            });
            match transform(
                &body,
                limits,
                PartitionKey::SubmissionId,
                GOLDEN_TIME_PROCESSED,
            ) {
                Ok(encoded) => {
                    line["partition_key"] = encoded.partition_key.to_string().into();
                    line["records"] = encoded
                        .records
                        .iter()
                        .map(|r| String::from_utf8(r.to_vec()).unwrap())
                        .collect();
                }
                Err(rejection) => line["rejected"] = rejection.reason.as_str().into(),
            }
            out.push_str(&line.to_string());
            out.push('\n');
        }
    }
    out
}

#[test]
fn the_golden_records_are_what_transform_produces() {
    let path = format!("{}/{GOLDEN}", env!("CARGO_MANIFEST_DIR"));
    let expected = golden_lines();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{path}: {e} (UPDATE_GOLDEN=1 cargo test --test sample_events writes it)")
    });
    let (golden, expected): (Vec<&str>, Vec<&str>) =
        (golden.lines().collect(), expected.lines().collect());
    assert_eq!(
        golden.len(),
        expected.len(),
        "{GOLDEN}: one line per sample message"
    );
    for (n, (g, e)) in golden.iter().zip(&expected).enumerate() {
        assert_eq!(
            g,
            e,
            "{GOLDEN} line {}: the records changed (UPDATE_GOLDEN=1 to accept)",
            n + 1
        );
    }
}

#[test]
fn generated_sensor_bodies_are_valid_and_drawn_from_the_one_vocabulary() {
    use edr_preprocessor::config::PartitionKey;
    use edr_preprocessor::model::Limits;
    use edr_preprocessor::transform::transform;
    let vocabulary = samples::vocabulary();
    for body in samples::sensor_bodies(7, 50) {
        let encoded = transform(
            &body,
            Limits::with_max_events(500),
            PartitionKey::SubmissionId,
            "t",
        )
        .unwrap();
        assert!((6..=10).contains(&encoded.records.len()));
        for record in &encoded.records {
            let record: serde_json::Value = serde_json::from_slice(record).unwrap();
            let data = &record["event_data"];
            match record["event_type"].as_str().unwrap() {
                "new_process" => {
                    assert!(vocabulary.commands.iter().any(|c| data["cmdl"] == *c));
                    assert!(vocabulary.users.iter().any(|u| data["user"] == *u));
                }
                _ => {
                    assert!(
                        vocabulary
                            .destinations
                            .iter()
                            .any(|d| data["destination_ip"] == *d)
                    );
                    assert!(
                        vocabulary
                            .ports
                            .iter()
                            .any(|p| data["destination_port"] == *p)
                    );
                }
            }
        }
    }
}
