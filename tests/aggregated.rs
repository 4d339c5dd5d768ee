//! `RECORD_FORMAT=aggregated` end to end through the handler, against the
//! scripted Kinesis (which deaggregates what it is sent): a submission is one
//! Kinesis record in one round trip, its user records byte for byte the
//! per-event records, in order, under the same keys; a submission larger
//! than the limit is several records sent one after the other (strict) or
//! together (relaxed). The guarantees under failures run in both formats in
//! `tests/guarantees.rs`; resume in `tests/resume.rs`.

use crate::support;

use edr_preprocessor::handler::Handler;
use support::*;

const TIME: &str = "\"time_processed\":\"";

/// The records written, with `time_processed` (a clock reading per
/// invocation) blanked, so that two invocations can be compared.
fn written_without_time(k: &ScriptedKinesis) -> Vec<(String, Option<String>, Vec<u8>)> {
    k.state()
        .written
        .iter()
        .map(|s| {
            let text = String::from_utf8(s.data.clone()).unwrap();
            let at = text.find(TIME).unwrap() + TIME.len();
            let end = at + text[at..].find('"').unwrap();
            let blanked = format!("{}{}", &text[..at], &text[end..]);
            (
                s.partition_key.clone(),
                s.explicit_hash_key.clone(),
                blanked.into_bytes(),
            )
        })
        .collect()
}

async fn publish(
    pairs: &[(&str, &str)],
    limit: Option<usize>,
    submissions: &[(usize, usize)],
) -> Handler<ScriptedKinesis, RecordingRejects> {
    let mut h = handler(ScriptedKinesis::healthy(), pairs);
    if let Some(limit) = limit {
        h = h.with_aggregated_record_limit(limit);
    }
    let messages = submissions
        .iter()
        .enumerate()
        .map(|(n, &(p, c))| message(&format!("m{n}"), &b64(&submission(n, p, c))))
        .collect();
    let response = h.handle(batch(messages), far_deadline()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    h
}

#[tokio::test(start_paused = true)]
async fn a_submission_is_one_record_in_one_round_trip_holding_the_per_event_records() {
    let subs = [(5, 3); 10];
    for placement in ["keyed", "partition-key"] {
        let per_event = publish(&[("SHARD_PLACEMENT", placement)], None, &subs).await;
        let aggregated = publish(
            &[
                ("SHARD_PLACEMENT", placement),
                ("RECORD_FORMAT", "aggregated"),
            ],
            None,
            &subs,
        )
        .await;
        // Strict: eight rounds of ten records, against one call of ten.
        assert_eq!(per_event.kinesis().calls(), 8);
        let calls = aggregated.kinesis().state().calls.clone();
        assert_eq!(calls.len(), 1, "one round trip");
        assert_eq!(calls[0].len(), 10, "one Kinesis record per submission");
        assert!(calls[0].iter().all(|r| r.user_records.len() == 8));
        // Byte for byte the per-event records, in the order written, under
        // the same partition key and ExplicitHashKey.
        let (a, b) = (
            written_without_time(per_event.kinesis()),
            written_without_time(aggregated.kinesis()),
        );
        assert_eq!(a.len(), 80);
        let mut sorted_a = a.clone();
        sorted_a.sort();
        let mut sorted_b = b.clone();
        sorted_b.sort();
        assert_eq!(sorted_a, sorted_b, "{placement}");
        assert_eq!(b.iter().any(|r| r.1.is_some()), placement == "keyed");
        for n in 0..10 {
            assert_eq!(
                aggregated.kinesis().written_sequences(&uuid(0x5b, n)),
                (0..8).collect::<Vec<u64>>()
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_submission_over_the_limit_is_several_records_sent_one_after_the_other() {
    let h = publish(&[("RECORD_FORMAT", "aggregated")], Some(2_000), &[(40, 0)]).await;
    let k = h.kinesis();
    let calls = k.state().calls.clone();
    assert!(calls.len() > 5, "{} records", calls.len());
    assert!(
        calls.iter().all(|c| c.len() == 1),
        "strict: one record of the submission per call"
    );
    assert!(calls.iter().flatten().all(|r| r.size <= 2_000));
    let starts: Vec<u64> = calls.iter().flatten().map(|r| r.sequence).collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        k.written_sequences(&uuid(0x5b, 0)),
        (0..40).collect::<Vec<u64>>()
    );
    assert!(k.state().order_violations.is_empty());

    // Relaxed: the records of the submission go together.
    let h = publish(
        &[("RECORD_FORMAT", "aggregated"), ("ORDERING", "relaxed")],
        Some(2_000),
        &[(40, 0)],
    )
    .await;
    assert_eq!(h.kinesis().calls(), 1);
    assert_eq!(
        h.kinesis().written_sequences(&uuid(0x5b, 0)),
        (0..40).collect::<Vec<u64>>()
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_aggregated_record_is_retried_whole_and_its_successor_waits() {
    // The second record (from the first event after the first record) fails twice.
    let mut failures = 0;
    let kinesis = ScriptedKinesis::per_record(move |s| {
        if s.sequence > 0 && failures < 2 {
            failures += 1;
            internal()
        } else {
            written()
        }
    });
    let h =
        handler(kinesis, &[("RECORD_FORMAT", "aggregated")]).with_aggregated_record_limit(2_000);
    let body = b64(&submission(0, 20, 0));
    let response = h
        .handle(batch(vec![message("m", &body)]), far_deadline())
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let k = h.kinesis();
    assert_eq!(
        k.written_sequences(&uuid(0x5b, 0)),
        (0..20).collect::<Vec<u64>>(),
        "no duplicate, in order"
    );
    assert!(k.state().order_violations.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_record_that_fails_for_good_reports_the_submission_and_nothing_after_it_is_sent() {
    let kinesis = ScriptedKinesis::per_record(|s| {
        if s.sequence > 0 {
            kms_denied()
        } else {
            written()
        }
    });
    let h =
        handler(kinesis, &[("RECORD_FORMAT", "aggregated")]).with_aggregated_record_limit(2_000);
    let body = b64(&submission(0, 20, 0));
    let (response, metrics) = h.process(&[message("m", &body)], far_deadline()).await;
    assert_eq!(failed_ids(&response.unwrap()), ["m"]);
    let k = h.kinesis();
    let first = k.state().calls[0][0].user_records.len() as u64;
    assert_eq!(
        k.written_sequences(&uuid(0x5b, 0)),
        (0..first).collect::<Vec<u64>>()
    );
    assert_eq!(k.calls(), 2, "the failed record's successors were not sent");
    assert_eq!(metrics.failed, 1);
}
