//! A stream that ignores partition keys (issue 19 item 2).
//!
//! An on-demand stream switched to service-managed record distribution
//! (`RecordDistributionStrategy` `AUTO`) ignores partition keys and
//! `ExplicitHashKey`: a submission's records, sent one after the other in
//! strict mode, land on different shards and no reader sees them in order.
//! No emulator does this; the scripted Kinesis here acknowledges records on
//! the shards a test chooses, as PutRecords names them (`ShardId`). A
//! submission acknowledged on more than one shard in an invocation counts in
//! `SubmissionsSplitAcrossShards`, and one ERROR line per invocation names
//! the likely causes; one that stays on its shard counts nothing.

use crate::support;

use edr_preprocessor::metrics::InvocationMetrics;
use serde_json::Value;
use support::*;

fn sub_id(n: usize) -> String {
    uuid(0x5b, n)
}

/// Three submissions of 4 events, messages `m0`..`m2`, handled by `kinesis`;
/// the answer's failed ids, the metrics and the log lines.
fn run(kinesis: ScriptedKinesis) -> (Vec<String>, InvocationMetrics, Vec<Value>) {
    let h = handler(kinesis, &[]);
    let event = batch(
        (0..3)
            .map(|n| message(&format!("m{n}"), &b64(&submission(n, 2, 2))))
            .collect(),
    );
    let ((response, metrics), logs) = with_logs(h.process(&event.records, far_deadline()));
    (failed_ids(&response.unwrap()), metrics, logs)
}

/// The ERROR lines about split submissions.
fn split_errors(logs: &[Value]) -> Vec<&Value> {
    logs.iter()
        .filter(|l| {
            l["level"] == "ERROR"
                && l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("more than one shard"))
        })
        .collect()
}

#[test]
fn records_of_a_submission_acknowledged_on_two_shards_are_counted_and_logged_once() {
    // AUTO distribution: Kinesis spreads records whatever their keys, here
    // by the parity of their sequence.
    let kinesis =
        ScriptedKinesis::healthy().with_shard_of(|seen| shard_name(u128::from(seen.sequence % 2)));
    let (failed, metrics, logs) = run(kinesis);
    assert!(
        failed.is_empty(),
        "the records are written: nothing to retry"
    );
    assert_eq!(metrics.published, 3);
    assert_eq!(metrics.split_across_shards, 3);
    let errors = split_errors(&logs);
    assert_eq!(errors.len(), 1, "one line per invocation: {logs:?}");
    let line = &errors[0]["fields"];
    assert_eq!(line["submissions_split"], 3);
    assert_eq!(line["message_id"], "m0");
    assert_eq!(line["submission_id"], sub_id(0));
    assert_eq!(line["shards"], "shardId-000000000000,shardId-000000000001");
    let message = line["message"].as_str().unwrap();
    assert!(message.contains("AUTO"), "{message}");
    assert!(message.contains("resharded"), "{message}");
    assert!(message.contains("shard lineage"), "{message}");
}

#[test]
fn a_submission_whose_later_records_go_to_a_child_shard_is_the_only_one_counted() {
    // A reshard during the invocation: submission 1's records from sequence
    // 2 on land on a child shard; the others stay on their one shard.
    let resharded = sub_id(1);
    let kinesis = ScriptedKinesis::healthy().with_shard_of(move |seen| {
        if seen.submission_id == resharded && seen.sequence >= 2 {
            shard_name(2)
        } else {
            shard_name(0)
        }
    });
    let (failed, metrics, logs) = run(kinesis);
    assert!(failed.is_empty());
    assert_eq!(metrics.split_across_shards, 1);
    let errors = split_errors(&logs);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["fields"]["message_id"], "m1");
    assert_eq!(
        errors[0]["fields"]["shards"],
        "shardId-000000000000,shardId-000000000002"
    );
}

#[test]
fn submissions_that_each_stay_on_one_shard_count_nothing() {
    // Placement by key on a 4-shard stream: the submissions land on
    // different shards, each on one.
    let (failed, metrics, logs) = run(ScriptedKinesis::healthy().with_shards(4));
    assert!(failed.is_empty());
    assert_eq!(metrics.split_across_shards, 0);
    assert!(split_errors(&logs).is_empty(), "{logs:?}");
    assert!(logs.iter().all(|l| l["level"] != "ERROR"), "{logs:?}");
}

#[test]
fn answers_that_name_no_shard_count_nothing() {
    // Some emulators answer without a ShardId: nothing to compare.
    let (_, metrics, logs) = run(ScriptedKinesis::healthy().with_shard_of(|_| String::new()));
    assert_eq!(metrics.split_across_shards, 0);
    assert!(split_errors(&logs).is_empty());
}

#[test]
fn a_split_submission_that_also_failed_is_counted_and_reported_failed() {
    // Sequence 0 on one shard, sequence 1 on another, then a refusal: the
    // split is counted whatever became of the submission.
    let target = sub_id(2);
    let kinesis = ScriptedKinesis::per_record(move |seen| {
        if seen.submission_id == target && seen.sequence == 2 {
            kms_denied()
        } else {
            written()
        }
    })
    .with_shard_of(|seen| shard_name(u128::from(seen.sequence.min(1))));
    let (failed, metrics, _) = run(kinesis);
    assert_eq!(failed, ["m2"]);
    assert_eq!(metrics.split_across_shards, 3);
}
