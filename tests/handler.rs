//! The batch handler against a scripted Kinesis: every guarantee of
//! docs/guarantees.md, one scenario at a time. Time is paused, so backoffs and deadlines
//! are exact and the tests do not depend on the speed of the machine.

use crate::support;

use std::collections::HashSet;
use std::time::Duration;

use edr_preprocessor::handler::Handler;
use serde_json::json;
use support::*;

fn sub_id(n: usize) -> String {
    uuid(0x5b, n)
}

/// `count` one-event submissions whose command line is `bytes` long, as plain
/// JSON bodies.
fn large_events(count: usize, bytes: usize) -> aws_lambda_events::event::sqs::SqsEvent {
    let big = "x".repeat(bytes);
    batch(
        (0..count)
            .map(|n| {
                let mut s = submission(n, 1, 0);
                s["events"]["new_process"][0]["cmdl"] = json!(big);
                message(&format!("m{n}"), &s.to_string())
            })
            .collect(),
    )
}

/// A Kinesis that refuses every record of submission `n` for good (a KMS
/// access error) and writes all others.
fn refusing_submission(n: usize) -> ScriptedKinesis {
    let target = sub_id(n);
    ScriptedKinesis::per_record(move |s| {
        if s.submission_id == target {
            kms_denied()
        } else {
            written()
        }
    })
}

#[tokio::test(start_paused = true)]
async fn all_succeed_every_event_is_published_in_order_and_nothing_fails() {
    let kinesis = ScriptedKinesis::healthy();
    let h = handler(kinesis, &[]);
    let event = batch(
        (0..3)
            .map(|n| message(&format!("m{n}"), &b64(&submission(n, 3, 2))))
            .collect(),
    );
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let k = h.kinesis();
    for n in 0..3 {
        assert_eq!(k.written_sequences(&sub_id(n)), [0, 1, 2, 3, 4]);
    }
    // Strict mode: one call per event position, heads of all submissions packed together.
    assert_eq!(k.calls(), 5);
    assert!(k.state().calls.iter().all(|c| c.len() == 3));
    assert!(k.state().order_violations.is_empty());
    // Document order and the record fields the consumer relies on.
    let state = k.state();
    let records: Vec<_> = state
        .written
        .iter()
        .filter(|s| s.submission_id == sub_id(1))
        .collect();
    assert_eq!(records[0].json["event_type"], "new_process");
    assert_eq!(records[3].json["event_type"], "network_connection");
    assert_eq!(
        records[3].json["event_data"],
        json!({"source_ip": "10.0.0.5", "destination_ip": "192.0.2.0", "destination_port": 443})
    );
    assert!(
        records
            .iter()
            .all(|r| r.partition_key == sub_id(1) && r.event_count == 5)
    );
}

#[tokio::test(start_paused = true)]
async fn a_record_failing_mid_submission_is_retried_before_its_successors_are_sent() {
    let mut failures_left = 2;
    let target = sub_id(1);
    let kinesis = ScriptedKinesis::per_record(move |s| {
        if s.submission_id == target && s.sequence == 2 && failures_left > 0 {
            failures_left -= 1;
            throttled()
        } else {
            written()
        }
    });
    let h = handler(kinesis, &[]);
    let event = batch(
        (0..3)
            .map(|n| message(&format!("m{n}"), &b64(&submission(n, 4, 2))))
            .collect(),
    );
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert!(
        failed_ids(&response).is_empty(),
        "retries succeed within the invocation"
    );
    let k = h.kinesis();
    assert_eq!(
        k.written_sequences(&sub_id(1)),
        [0, 1, 2, 3, 4, 5],
        "first copies in sequence order"
    );
    assert!(
        k.state().order_violations.is_empty(),
        "{:?}",
        k.state().order_violations
    );
    // The other submissions were not held back by the retries of the first.
    assert_eq!(k.written_sequences(&sub_id(0)), [0, 1, 2, 3, 4, 5]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_whole_request_is_retried_and_then_succeeds() {
    let kinesis = ScriptedKinesis::scripted(|call, seen| {
        if call == 0 {
            Answer::Call(call_error(true, "ServiceUnavailable"))
        } else {
            Answer::Entries(seen.iter().map(|_| written()).collect())
        }
    });
    let h = handler(kinesis, &[]);
    let event = batch(
        (0..4)
            .map(|n| message(&format!("m{n}"), &b64(&submission(n, 2, 0))))
            .collect(),
    );
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    for n in 0..4 {
        assert_eq!(h.kinesis().written_sequences(&sub_id(n)), [0, 1]);
    }
}

#[tokio::test(start_paused = true)]
async fn an_emulator_answer_with_every_entry_failed_fails_every_submission() {
    // LocalStack's answer to a failing PutRecords: every entry failed, whatever FailedRecordCount says.
    let kinesis = ScriptedKinesis::scripted(|_, seen| {
        Answer::Entries(seen.iter().map(|_| internal()).collect())
    });
    let h = handler(kinesis, &[("MAX_ATTEMPTS", "3")]);
    let event = batch(
        (0..3)
            .map(|n| message(&format!("m{n}"), &b64(&submission(n, 2, 1))))
            .collect(),
    );
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert_eq!(failed_ids(&response), ["m0", "m1", "m2"]);
    let state = h.kinesis().state();
    for n in 0..3 {
        let sends = state
            .calls
            .iter()
            .flatten()
            .filter(|s| s.submission_id == sub_id(n))
            .count();
        assert_eq!(
            sends, 3,
            "MAX_ATTEMPTS sends of the first record, nothing after it"
        );
    }
    assert!(state.written.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_non_retryable_error_fails_the_submission_at_once() {
    let target = sub_id(1);
    let kinesis = ScriptedKinesis::per_record(move |s| {
        if s.submission_id == target && s.sequence == 1 {
            kms_denied()
        } else {
            written()
        }
    });
    let h = handler(kinesis, &[]);
    let event = batch(
        (0..3)
            .map(|n| message(&format!("m{n}"), &b64(&submission(n, 3, 0))))
            .collect(),
    );
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert_eq!(failed_ids(&response), ["m1"]);
    let k = h.kinesis();
    assert_eq!(
        k.written_sequences(&sub_id(1)),
        [0],
        "nothing after the failed record"
    );
    let sends_of_failed: usize = k
        .state()
        .calls
        .iter()
        .flatten()
        .filter(|s| s.submission_id == sub_id(1) && s.sequence == 1)
        .count();
    assert_eq!(sends_of_failed, 1, "not retried");
    assert_eq!(k.written_sequences(&sub_id(2)), [0, 1, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_non_retryable_request_error_fails_everything_in_the_call() {
    let kinesis =
        ScriptedKinesis::scripted(|_, _| Answer::Call(call_error(false, "AccessDeniedException")));
    let h = handler(kinesis, &[]);
    let event = batch(vec![
        message("a", &b64(&submission(0, 2, 0))),
        message("b", &b64(&submission(1, 2, 0))),
    ]);
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert_eq!(failed_ids(&response), ["a", "b"]);
    assert_eq!(h.kinesis().calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn throttling_until_the_deadline_reports_everything_unfinished_in_time() {
    let kinesis = ScriptedKinesis::per_record(|s| {
        if s.sequence >= 1 {
            throttled()
        } else {
            written()
        }
    })
    .with_delay(Duration::from_millis(40));
    let h = handler(
        kinesis,
        &[("MAX_ATTEMPTS", "100"), ("DEADLINE_MARGIN_MS", "500")],
    );
    let event = batch(
        (0..5)
            .map(|n| message(&format!("m{n}"), &b64(&submission(n, 3, 0))))
            .collect(),
    );
    let start = tokio::time::Instant::now();
    let deadline = start + Duration::from_secs(3);
    let response = h.handle(event, deadline).await.unwrap();
    let finished = tokio::time::Instant::now();
    assert!(
        finished <= deadline - Duration::from_millis(500),
        "returned {:?} after start",
        finished - start
    );
    assert!(
        finished >= deadline - Duration::from_millis(500) - Duration::from_secs(2),
        "kept retrying until near the deadline"
    );
    assert_eq!(failed_ids(&response), ["m0", "m1", "m2", "m3", "m4"]);
    let k = h.kinesis();
    assert!(k.calls() > 5, "retried: {} calls", k.calls());
    for n in 0..5 {
        assert_eq!(k.written_sequences(&sub_id(n)), [0]);
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_that_hangs_is_abandoned_before_the_deadline() {
    let kinesis = ScriptedKinesis::healthy().with_delay(Duration::from_secs(3600));
    let h = handler(kinesis, &[("DEADLINE_MARGIN_MS", "250")]);
    let start = tokio::time::Instant::now();
    let deadline = start + Duration::from_secs(10);
    let response = h
        .handle(
            batch(vec![message("a", &b64(&submission(0, 1, 0)))]),
            deadline,
        )
        .await
        .unwrap();
    assert_eq!(failed_ids(&response), ["a"]);
    assert!(tokio::time::Instant::now() <= deadline - Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_already_past_sends_nothing_and_fails_every_valid_submission() {
    let h = handler(ScriptedKinesis::healthy(), &[]);
    let event = batch(vec![
        message("a", &b64(&submission(0, 1, 0))),
        message("bad", "not-base64!"),
    ]);
    let response = h.handle(event, tokio::time::Instant::now()).await.unwrap();
    assert_eq!(failed_ids(&response), ["a"]);
    assert_eq!(h.kinesis().calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn invalid_submissions_are_dropped_and_valid_ones_published() {
    let mut bad_id = submission(10, 1, 0);
    bad_id["device_id"] = json!("not-an-uuid");
    let mut bad_ip = submission(11, 0, 2);
    bad_ip["events"]["network_connection"][1]["destination_ip"] = json!("not-an-ip");
    let mut null_cmdl = submission(12, 2, 0);
    null_cmdl["events"]["new_process"][0]["cmdl"] = json!(null);
    let event = batch(vec![
        message("ok-0", &b64(&submission(0, 2, 1))),
        message("bad-id", &b64(&bad_id)),
        message("bad-ip", &b64(&bad_ip)),
        message("ok-1", &submission(1, 1, 1).to_string()),
        message("null-cmdl", &b64(&null_cmdl)),
        message("garbage", "%%%"),
    ]);
    let h = handler(ScriptedKinesis::healthy(), &[]);
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert!(
        failed_ids(&response).is_empty(),
        "invalid ones are acknowledged, not retried"
    );
    let k = h.kinesis();
    assert_eq!(k.written_sequences(&sub_id(0)), [0, 1, 2]);
    assert_eq!(
        k.written_sequences(&sub_id(1)),
        [0, 1],
        "a plain JSON body is accepted"
    );
    for n in 10..13 {
        assert!(
            k.written_sequences(&sub_id(n)).is_empty(),
            "nothing of an invalid submission is published"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn invalid_submissions_go_to_the_rejects_queue_with_their_reason() {
    let mut bad_ip = submission(11, 0, 1);
    bad_ip["events"]["network_connection"][0]["destination_ip"] = json!("not-an-ip");
    let body = b64(&bad_ip);
    let event = batch(vec![
        message("ok", &b64(&submission(0, 1, 0))),
        message("bad-ip", &body),
        message("garbage", "%%%"),
    ]);
    let h = Handler::new(
        config(&[]),
        ScriptedKinesis::healthy(),
        Some(RecordingRejects::default()),
    );
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let mut sent = h.rejects().unwrap().sent.lock().unwrap().clone();
    sent.sort();
    assert_eq!(
        sent,
        [
            (
                "bad-ip".to_owned(),
                "invalid_destination_ip".to_owned(),
                body
            ),
            (
                "garbage".to_owned(),
                "invalid_base64".to_owned(),
                "%%%".to_owned()
            ),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_invalid_submission_the_rejects_queue_refuses_is_retried() {
    let event = batch(vec![
        message("ok", &b64(&submission(0, 1, 0))),
        message("garbage", "%%%"),
    ]);
    let rejects = RecordingRejects {
        refuse: true,
        ..RecordingRejects::default()
    };
    let h = Handler::new(config(&[]), ScriptedKinesis::healthy(), Some(rejects));
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert_eq!(failed_ids(&response), ["garbage"]);
}

#[tokio::test(start_paused = true)]
async fn a_rejects_queue_that_never_answers_costs_at_most_one_call_timeout() {
    // Bodies too large to share one SendMessageBatch request: the one that
    // hangs does not hold the other back.
    let hangs = "%".repeat(600 * 1024);
    let event = batch(vec![
        message("ok", &b64(&submission(0, 3, 1))),
        message("hangs", &hangs),
        message("stored", &format!("not base64!{}", " ".repeat(600 * 1024))),
    ]);
    let rejects = RecordingRejects {
        never_answer: vec!["hangs"],
        ..RecordingRejects::default()
    };
    let h = Handler::new(
        config(&[("KINESIS_CALL_TIMEOUT_MS", "1000")]),
        ScriptedKinesis::healthy(),
        Some(rejects),
    );
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs(3);
    let response = h.handle(event, deadline).await.unwrap();
    // The unanswered send is given up after one call timeout: the invalid
    // message is retried, the one the queue took is not, and the valid
    // submission still gets the rest of the invocation to be published.
    assert_eq!(failed_ids(&response), ["hangs"]);
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    let sent = h.rejects().unwrap().sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, "stored");
    assert_eq!(h.kinesis().written_sequences(&sub_id(0)), [0, 1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn the_wait_for_the_rejects_queue_ends_at_the_deadline_margin() {
    let event = batch(vec![message("hangs", "%%%")]);
    let rejects = RecordingRejects {
        never_answer: vec!["hangs"],
        ..RecordingRejects::default()
    };
    // A call timeout longer than the invocation: the deadline bounds the wait.
    let h = Handler::new(
        config(&[
            ("KINESIS_CALL_TIMEOUT_MS", "60000"),
            ("DEADLINE_MARGIN_MS", "500"),
        ]),
        ScriptedKinesis::healthy(),
        Some(rejects),
    );
    let started = tokio::time::Instant::now();
    let response = h
        .handle(event, started + Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(failed_ids(&response), ["hangs"]);
    assert_eq!(started.elapsed(), Duration::from_millis(1500));
}

#[tokio::test(start_paused = true)]
async fn in_a_fifo_group_everything_after_a_failure_fails_unpublished() {
    let kinesis = refusing_submission(1);
    let h = handler(kinesis, &[]);
    let event = batch(vec![
        fifo_message("g1-a", "g1", &b64(&submission(0, 2, 0))),
        fifo_message("g2-a", "g2", &b64(&submission(5, 2, 0))),
        fifo_message("g1-b", "g1", &b64(&submission(1, 2, 0))),
        fifo_message("g1-c", "g1", &b64(&submission(2, 2, 0))),
        fifo_message("g1-invalid", "g1", "%%%"),
        fifo_message("g2-b", "g2", &b64(&submission(6, 2, 0))),
    ]);
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert_eq!(failed_ids(&response), ["g1-b", "g1-c", "g1-invalid"]);
    let k = h.kinesis();
    assert_eq!(k.written_sequences(&sub_id(0)), [0, 1]);
    assert!(
        k.state()
            .calls
            .iter()
            .flatten()
            .all(|s| s.submission_id != sub_id(2)),
        "a later message of a failed group is never sent"
    );
    assert_eq!(k.written_sequences(&sub_id(5)), [0, 1]);
    assert_eq!(k.written_sequences(&sub_id(6)), [0, 1]);
    // Within a group, a message starts only after its predecessor is fully written.
    let state = k.state();
    let first_of_6 = state
        .written
        .iter()
        .position(|s| s.submission_id == sub_id(6))
        .unwrap();
    let last_of_5 = state
        .written
        .iter()
        .rposition(|s| s.submission_id == sub_id(5))
        .unwrap();
    assert!(last_of_5 < first_of_6);
}

#[tokio::test(start_paused = true)]
async fn in_a_fifo_group_a_refused_reject_blocks_the_rest_of_the_group() {
    let rejects = RecordingRejects {
        refuse: true,
        ..RecordingRejects::default()
    };
    let h = Handler::new(config(&[]), ScriptedKinesis::healthy(), Some(rejects));
    let event = batch(vec![
        fifo_message("a", "g", &b64(&submission(0, 1, 0))),
        fifo_message("bad", "g", "%%%"),
        fifo_message("b", "g", &b64(&submission(1, 1, 0))),
        fifo_message("other", "h", &b64(&submission(2, 1, 0))),
    ]);
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert_eq!(failed_ids(&response), ["bad", "b"]);
    assert!(h.kinesis().written_sequences(&sub_id(1)).is_empty());
    assert_eq!(h.kinesis().written_sequences(&sub_id(2)), [0]);
}

#[tokio::test(start_paused = true)]
async fn duplicate_message_ids_are_published_once_and_reported_once() {
    let body = b64(&submission(0, 2, 0));
    let event = batch(vec![
        message("dup", &body),
        message("dup", &body),
        message("other", &b64(&submission(1, 1, 0))),
    ]);
    let h = handler(ScriptedKinesis::healthy(), &[]);
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        h.kinesis().written_sequences(&sub_id(0)),
        [0, 1],
        "published once"
    );

    let failing = ScriptedKinesis::per_record(|_| kms_denied());
    let h = handler(failing, &[]);
    let event = batch(vec![message("dup", &body), message("dup", &body)]);
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert_eq!(failed_ids(&response), ["dup"]);
}

#[tokio::test(start_paused = true)]
async fn a_message_without_id_never_yields_an_empty_identifier() {
    let mut no_id = message("x", &b64(&submission(0, 1, 0)));
    no_id.message_id = None;
    let mut empty_id = message("x", "%%%");
    empty_id.message_id = Some(String::new());
    // Published or rejected: fine, nothing to report.
    let h = handler(ScriptedKinesis::healthy(), &[]);
    let response = h
        .handle(batch(vec![no_id.clone(), empty_id]), far_deadline())
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(h.kinesis().written_sequences(&sub_id(0)), [0]);
    // Failed: it cannot be named, so the whole batch fails instead of losing it.
    let h = handler(ScriptedKinesis::per_record(|_| kms_denied()), &[]);
    let result = h
        .handle(
            batch(vec![no_id, message("named", &b64(&submission(1, 1, 0)))]),
            far_deadline(),
        )
        .await;
    assert_eq!(result.unwrap_err().failed_without_id, 1);
}

#[tokio::test(start_paused = true)]
async fn relaxed_mode_sends_runs_and_resends_from_the_first_failed_record() {
    let mut failed_once = false;
    let kinesis = ScriptedKinesis::per_record(move |s| {
        if s.sequence == 2 && !failed_once {
            failed_once = true;
            internal()
        } else {
            written()
        }
    })
    .relaxed();
    let h = handler(kinesis, &[("ORDERING", "relaxed")]);
    let response = h
        .handle(
            batch(vec![message("a", &b64(&submission(0, 5, 0)))]),
            far_deadline(),
        )
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let k = h.kinesis();
    assert_eq!(k.calls(), 2);
    assert_eq!(
        k.written_sequences(&sub_id(0)),
        [0, 1, 3, 4, 2, 3, 4],
        "successors of the failed record are sent again"
    );
    let written = k.written_sequences(&sub_id(0));
    let last_copies: Vec<usize> = (0..5)
        .map(|seq| written.iter().rposition(|&s| s == seq).unwrap())
        .collect();
    assert!(
        last_copies.windows(2).all(|w| w[0] < w[1]),
        "last copies in order"
    );
}

/// The stream as Kinesis would leave it when it writes the first call, which
/// the function abandoned (an SDK timeout), after everything else: the
/// sequences of `submission`, in the order they land.
async fn with_the_first_call_landing_last(ordering: &str, events: usize) -> Vec<u64> {
    let kinesis = ScriptedKinesis::scripted(|call, seen| match call {
        0 => Answer::Call(call_error(true, "Timeout")),
        _ => Answer::Entries(seen.iter().map(|_| written()).collect()),
    });
    let kinesis = if ordering == "relaxed" {
        kinesis.relaxed()
    } else {
        kinesis
    };
    let h = handler(
        kinesis,
        &[
            ("ORDERING", ordering),
            ("MAX_EVENTS_PER_SUBMISSION", "1000"),
        ],
    );
    let event = batch(vec![message("a", &b64(&submission(0, events, 0)))]);
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "published whole");
    let state = h.kinesis().state();
    assert!(
        state.order_violations.is_empty(),
        "{:?}",
        state.order_violations
    );
    let answered: Vec<u64> = state.written.iter().map(|s| s.sequence).collect();
    let abandoned = state.calls[0].iter().map(|s| s.sequence);
    let landed: Vec<u64> = answered.iter().copied().chain(abandoned).collect();
    let all: HashSet<u64> = landed.iter().copied().collect();
    assert_eq!(all.len(), events, "every event at least once");
    assert!(
        in_order(&last_copies(&answered)),
        "among answered calls the last copies are in order: {answered:?}"
    );
    landed
}

/// Each sequence at the position of its last copy, in stream order.
fn last_copies(stream: &[u64]) -> Vec<u64> {
    let mut last: Vec<(usize, u64)> = (stream.iter().copied().collect::<HashSet<u64>>())
        .into_iter()
        .map(|q| (stream.iter().rposition(|&s| s == q).unwrap(), q))
        .collect();
    last.sort();
    last.into_iter().map(|(_, q)| q).collect()
}

fn first_copies(stream: &[u64]) -> Vec<u64> {
    let mut first = Vec::new();
    for &q in stream {
        if !first.contains(&q) {
            first.push(q);
        }
    }
    first
}

fn in_order(sequences: &[u64]) -> bool {
    sequences.windows(2).all(|w| w[0] < w[1])
}

#[tokio::test(start_paused = true)]
async fn relaxed_mode_orders_no_copies_once_an_abandoned_call_lands_late() {
    // 501 events: two runs, [0, 500) then [500, 501). The first call times
    // out, its run is sent again and answered, the second run follows; then
    // Kinesis writes the abandoned call. What holds: every event is there,
    // and the last copies among answered calls are in order. What does not:
    // the last copy of event 0 now follows the last copy of event 500.
    let landed = with_the_first_call_landing_last("relaxed", 501).await;
    let last = last_copies(&landed);
    assert!(!in_order(&last), "{last:?}");
    assert_eq!(
        last.first(),
        Some(&500),
        "event 500's last copy comes first"
    );
}

#[tokio::test(start_paused = true)]
async fn strict_first_copies_stay_in_order_when_an_abandoned_call_lands_late() {
    // A record is sent only after its predecessor was acknowledged, so the
    // first copy of each event lands before anything after it is sent,
    // whenever the abandoned call is written.
    let landed = with_the_first_call_landing_last("strict", 5).await;
    assert_eq!(landed, [0, 1, 2, 3, 4, 0], "the late copy is a duplicate");
    assert!(in_order(&first_copies(&landed)), "{landed:?}");
}

#[tokio::test(start_paused = true)]
async fn calls_respect_the_record_count_and_size_limits() {
    // 1,200 one-event submissions: three calls of at most 500 records.
    let h = handler(ScriptedKinesis::healthy(), &[]);
    let event = batch(
        (0..1200)
            .map(|n| message(&format!("m{n}"), &b64(&submission(n, 1, 0))))
            .collect(),
    );
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let sizes: Vec<usize> = h.kinesis().state().calls.iter().map(Vec::len).collect();
    assert_eq!(sizes, [500, 500, 200]);

    // Twenty-four records of ~600 KiB each: at most 10 MiB per call (the
    // PutRecords limit since records of up to 10 MiB came in; it was 5 MiB).
    let event = large_events(24, 600 * 1024);
    let h = handler(ScriptedKinesis::healthy(), &[]);
    h.handle(event, far_deadline()).await.unwrap();
    let state = h.kinesis().state();
    for call in &state.calls {
        let bytes: usize = call
            .iter()
            .map(|s| s.json.to_string().len() + s.partition_key.len())
            .sum();
        assert!(bytes <= 10 * 1024 * 1024, "{bytes} bytes in one call");
    }
    let sizes: Vec<usize> = state.calls.iter().map(Vec::len).collect();
    assert_eq!(sizes, [17, 7], "seventeen ~600 KiB records fill 10 MiB");
    assert_eq!(state.written.len(), 24);
}

#[tokio::test(start_paused = true)]
async fn records_over_one_mebibyte_are_published_when_the_stream_takes_them() {
    // Events of 3 MiB: rejected with the default 1 MiB record limit, published
    // with KINESIS_MAX_RECORD_SIZE_KIB raised to the stream's MaxRecordSize.
    let event = || large_events(4, 3 * 1024 * 1024);
    let h = handler(ScriptedKinesis::healthy(), &[]);
    let response = h.handle(event(), far_deadline()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(h.kinesis().calls(), 0, "rejected as event_too_large");

    let h = handler(
        ScriptedKinesis::healthy(),
        &[("KINESIS_MAX_RECORD_SIZE_KIB", "10240")],
    );
    let response = h.handle(event(), far_deadline()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let sizes: Vec<usize> = h.kinesis().state().calls.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 1], "three 3 MiB records fill a 10 MiB call");
    assert_eq!(h.kinesis().state().written.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn device_partition_key_is_used_when_configured() {
    let h = handler(
        ScriptedKinesis::healthy(),
        &[("PARTITION_KEY", "device_id")],
    );
    h.handle(
        batch(vec![message("a", &b64(&submission(4, 2, 0)))]),
        far_deadline(),
    )
    .await
    .unwrap();
    let state = h.kinesis().state();
    let keys: HashSet<&str> = state
        .written
        .iter()
        .map(|s| s.partition_key.as_str())
        .collect();
    assert_eq!(keys, HashSet::from([uuid(0xde, 1).as_str()]));
}

#[tokio::test(start_paused = true)]
async fn an_empty_submission_is_acknowledged_without_a_call() {
    let h = handler(ScriptedKinesis::healthy(), &[]);
    let response = h
        .handle(
            batch(vec![message("a", &b64(&submission(0, 0, 0)))]),
            far_deadline(),
        )
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(h.kinesis().calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn several_calls_are_in_flight_at_once() {
    // 2,000 one-event submissions with a 100 ms call: four calls in flight take one round trip.
    let kinesis = ScriptedKinesis::healthy().with_delay(Duration::from_millis(100));
    let h = handler(kinesis, &[("MAX_IN_FLIGHT_CALLS", "4")]);
    let event = batch(
        (0..2000)
            .map(|n| message(&format!("m{n}"), &b64(&submission(n, 1, 0))))
            .collect(),
    );
    let start = tokio::time::Instant::now();
    h.handle(event, far_deadline()).await.unwrap();
    assert_eq!(h.kinesis().calls(), 4);
    assert_eq!(
        tokio::time::Instant::now() - start,
        Duration::from_millis(100)
    );
}

/// Publishes one two-event submission with MAX_ATTEMPTS=2 against a Kinesis
/// that answers its first five entries with `failure`.
async fn two_attempts_against_five(
    failure: fn() -> edr_preprocessor::publisher::EntryResult,
) -> Vec<String> {
    let mut failures_left = 5;
    let kinesis = ScriptedKinesis::per_record(move |_| {
        if failures_left > 0 {
            failures_left -= 1;
            failure()
        } else {
            written()
        }
    });
    let h = handler(kinesis, &[("MAX_ATTEMPTS", "2")]);
    let event = batch(vec![message("a", &b64(&submission(0, 2, 0)))]);
    let response = h.handle(event, far_deadline()).await.unwrap();
    if response.batch_item_failures.is_empty() {
        assert_eq!(h.kinesis().written_sequences(&sub_id(0)), [0, 1]);
    }
    failed_ids(&response)
}

#[tokio::test(start_paused = true)]
async fn throttling_does_not_use_up_the_attempts() {
    // Throttled five times: still published, since only the deadline bounds throttling.
    assert!(two_attempts_against_five(throttled).await.is_empty());
    // Five InternalFailures: two failed sends and the submission goes back to SQS.
    assert_eq!(two_attempts_against_five(internal).await, ["a"]);
}

/// A standard queue's message that carries a `MessageGroupId`, as SQS fair
/// queues send them.
fn fair_message(id: &str, group: &str, body: &str) -> aws_lambda_events::event::sqs::SqsMessage {
    let mut m = message(id, body);
    m.attributes.insert("MessageGroupId".into(), group.into());
    m
}

#[tokio::test(start_paused = true)]
async fn a_standard_queue_with_message_groups_is_not_fifo() {
    // One tenant's submissions on a fair queue: the second one fails, the
    // others were fine and must not be held back with it.
    let kinesis = || refusing_submission(1);
    let bodies: Vec<String> = (0..4).map(|n| b64(&submission(n, 2, 0))).collect();

    let h = handler(kinesis(), &[]);
    let event = batch(
        (0..4)
            .map(|n| fair_message(&format!("m{n}"), "tenant-1", &bodies[n]))
            .collect(),
    );
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert_eq!(failed_ids(&response), ["m1"]);
    for n in [0, 2, 3] {
        assert_eq!(h.kinesis().written_sequences(&sub_id(n)), [0, 1], "m{n}");
    }

    // The same batch from a FIFO queue: the group's later messages fail unpublished.
    let h = handler(kinesis(), &[]);
    let event = batch(
        (0..4)
            .map(|n| fifo_message(&format!("m{n}"), "tenant-1", &bodies[n]))
            .collect(),
    );
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert_eq!(failed_ids(&response), ["m1", "m2", "m3"]);
    assert_eq!(h.kinesis().written_sequences(&sub_id(0)), [0, 1]);
    assert!(h.kinesis().written_sequences(&sub_id(2)).is_empty());
    assert!(h.kinesis().written_sequences(&sub_id(3)).is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_invalid_fifo_successor_of_a_failed_message_is_not_forwarded() {
    // g: valid (its publish fails), then invalid. The invalid one is failed by
    // the group rule and comes back: forwarding it now would store it again on
    // every redelivery. h: valid (published), then invalid: forwarded once the
    // valid one is published.
    let kinesis = refusing_submission(0);
    let h = Handler::new(config(&[]), kinesis, Some(RecordingRejects::default()));
    let event = batch(vec![
        fifo_message("g-valid", "g", &b64(&submission(0, 1, 0))),
        fifo_message("h-valid", "h", &b64(&submission(1, 1, 0))),
        fifo_message("g-invalid", "g", "%%%"),
        fifo_message("h-invalid", "h", "not base64!"),
        fifo_message("h-last", "h", &b64(&submission(2, 1, 0))),
    ]);
    let (response, metrics) = h.process(&event.records, far_deadline()).await;
    assert_eq!(failed_ids(&response.unwrap()), ["g-valid", "g-invalid"]);
    let sent = h.rejects().unwrap().sent.lock().unwrap().clone();
    let sent: Vec<&str> = sent.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(
        sent,
        ["h-invalid"],
        "only the reject that is acknowledged is stored"
    );
    // h's order holds across the rounds: valid, stored reject, then the last one.
    assert_eq!(h.kinesis().written_sequences(&sub_id(1)), [0]);
    assert_eq!(h.kinesis().written_sequences(&sub_id(2)), [0]);
    assert_eq!(
        (metrics.published, metrics.rejected_total(), metrics.failed),
        (2, 1, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn an_invalid_fifo_successor_is_not_forwarded_when_its_group_is_blocked_by_a_refused_reject()
{
    // Both rejects of g would be refused; the second is not even tried.
    let rejects = RecordingRejects {
        refuse: true,
        ..RecordingRejects::default()
    };
    let h = Handler::new(config(&[]), ScriptedKinesis::healthy(), Some(rejects));
    let event = batch(vec![
        fifo_message("bad-1", "g", "%%%"),
        fifo_message("ok", "g", &b64(&submission(0, 1, 0))),
        fifo_message("bad-2", "g", "%%%"),
    ]);
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert_eq!(failed_ids(&response), ["bad-1", "ok", "bad-2"]);
    assert_eq!(*h.rejects().unwrap().batches.lock().unwrap(), [1]);
    assert!(h.kinesis().written_sequences(&sub_id(0)).is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_all_invalid_batch_goes_to_the_rejects_queue_ten_to_a_request() {
    // Fleet-wide schema drift: every submission of a 1,000-message batch is
    // invalid. SendMessageBatch carries ten at a time.
    let event = batch(
        (0..1000)
            .map(|n| message(&format!("m{n}"), "not base64!"))
            .collect(),
    );
    let h = Handler::new(
        config(&[]),
        ScriptedKinesis::healthy(),
        Some(RecordingRejects::default()),
    );
    let (response, metrics) = h.process(&event.records, far_deadline()).await;
    assert!(response.unwrap().batch_item_failures.is_empty());
    let batches = h.rejects().unwrap().batches.lock().unwrap().clone();
    assert_eq!(batches, vec![10; 100]);
    assert_eq!(h.rejects().unwrap().sent.lock().unwrap().len(), 1000);
    assert_eq!(metrics.rejected_total(), 1000);
}

#[tokio::test(start_paused = true)]
async fn a_rejected_body_near_the_size_limit_is_stored_without_the_attributes_that_do_not_fit() {
    // 1 MiB less a few bytes: with its attributes it would be over SQS's
    // limit and refused on every redelivery; the body must get through.
    let body = "%".repeat(1024 * 1024 - 40);
    let event = batch(vec![message("near-limit", &body)]);
    let h = Handler::new(
        config(&[]),
        ScriptedKinesis::healthy(),
        Some(RecordingRejects::default()),
    );
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let rejects = h.rejects().unwrap();
    assert_eq!(rejects.sent.lock().unwrap()[0].2, body);
    let attributes = rejects.attributes.lock().unwrap()[0].1.clone();
    assert_eq!(
        attributes,
        [("reason".to_owned(), "invalid_base64".to_owned())],
        "the reason fits, the id and the detail do not"
    );
}

#[tokio::test(start_paused = true)]
async fn each_message_is_counted_once_as_published_rejected_or_failed() {
    // Published, rejected and stored, rejected but not stored (retried),
    // publish failed, a FIFO successor of a failure, and a duplicate id.
    let kinesis = refusing_submission(1);
    let rejects = RecordingRejects {
        never_answer: vec!["not-stored"],
        ..RecordingRejects::default()
    };
    let h = Handler::new(config(&[]), kinesis, Some(rejects));
    // Too large to share a SendMessageBatch request with the one that hangs.
    let big = "%".repeat(600 * 1024);
    let stored = format!("not base64!{}", " ".repeat(600 * 1024));
    let event = batch(vec![
        fifo_message("published", "a", &b64(&submission(0, 2, 0))),
        fifo_message("stored", "b", &stored),
        fifo_message("not-stored", "c", &big),
        fifo_message("publish-fails", "d", &b64(&submission(1, 1, 0))),
        fifo_message("successor", "d", &b64(&submission(2, 1, 0))),
        fifo_message("invalid-successor", "d", "%%%"),
        fifo_message("published", "a", &b64(&submission(0, 2, 0))),
    ]);
    let (response, metrics) = h.process(&event.records, far_deadline()).await;
    let failed = failed_ids(&response.unwrap());
    assert_eq!(
        failed,
        [
            "not-stored",
            "publish-fails",
            "successor",
            "invalid-successor"
        ]
    );
    assert_eq!(metrics.received, 7);
    assert_eq!(metrics.published, 2, "the duplicate counts as its first");
    assert_eq!(metrics.rejected_total(), 1);
    assert_eq!(metrics.failed, 4);
    assert_eq!(
        metrics.published + metrics.rejected_total() + metrics.failed,
        metrics.received
    );
    assert_eq!(metrics.events_published, 2);
}

/// Submission `n` with the fleet's three event-level defects: a null command
/// line (sequence 1), a "not-an-ip" destination (3) and a port out of range
/// (5), among six events.
fn with_event_defects(n: usize) -> serde_json::Value {
    let mut s = submission(n, 2, 4);
    s["events"]["new_process"][1]["cmdl"] = json!(null);
    s["events"]["network_connection"][1]["destination_ip"] = json!("not-an-ip");
    s["events"]["network_connection"][3]["destination_port"] = json!(70000);
    s
}

#[tokio::test(start_paused = true)]
async fn drop_event_publishes_the_valid_events_and_stores_the_body_once_with_what_was_dropped() {
    let body = b64(&with_event_defects(1));
    let mut bad_device = with_event_defects(2);
    bad_device["device_id"] = json!("not-an-uuid");
    let event = batch(vec![
        message("ok", &b64(&submission(0, 1, 1))),
        message("partial", &body),
        message("bad-device", &b64(&bad_device)),
    ]);
    let h = Handler::new(
        config(&[("INVALID_EVENTS", "drop-event")]),
        ScriptedKinesis::healthy(),
        Some(RecordingRejects::default()),
    );
    let (response, metrics) = h.process(&event.records, far_deadline()).await;
    assert!(response.unwrap().batch_item_failures.is_empty());
    let k = h.kinesis();
    assert_eq!(k.written_sequences(&sub_id(0)), [0, 1]);
    assert_eq!(
        k.written_sequences(&sub_id(1)),
        [0, 2, 4],
        "the valid events keep their sequence"
    );
    assert!(
        k.written_sequences(&sub_id(2)).is_empty(),
        "a bad id still rejects it whole"
    );
    let state = k.state();
    for record in state
        .written
        .iter()
        .filter(|r| r.submission_id == sub_id(1))
    {
        assert_eq!(
            record.json["event_count"], 3,
            "event_count counts what is published"
        );
    }
    let mut sent = h.rejects().unwrap().sent.lock().unwrap().clone();
    sent.sort();
    assert_eq!(
        sent,
        [
            (
                "bad-device".to_owned(),
                "invalid_device_id".to_owned(),
                b64(&bad_device)
            ),
            ("partial".to_owned(), "null_value".to_owned(), body),
        ],
        "the original body goes to the rejects queue once"
    );
    let attributes = h.rejects().unwrap().attributes.lock().unwrap().clone();
    let (_, partial) = attributes.iter().find(|(id, _)| id == "partial").unwrap();
    assert_eq!(
        partial[1],
        (
            "dropped_events".to_owned(),
            "1:null_value,3:invalid_destination_ip,5:invalid_destination_port".to_owned()
        )
    );
    assert_eq!(metrics.published, 2);
    assert_eq!(metrics.rejected_total(), 1);
    assert_eq!(metrics.events_published, 5);
    assert_eq!(
        metrics.events_dropped.into_iter().collect::<Vec<_>>(),
        [
            (edr_preprocessor::model::Reason::NullValue, 1),
            (edr_preprocessor::model::Reason::InvalidDestinationIp, 1),
            (edr_preprocessor::model::Reason::InvalidDestinationPort, 1),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn drop_event_keeps_the_event_ids_of_a_redelivery_and_of_the_default_mode() {
    let body = b64(&with_event_defects(1));
    let ids = |mode: &'static str, doc: &serde_json::Value| {
        let event = batch(vec![message("m", &b64(doc))]);
        async move {
            let h = handler(ScriptedKinesis::healthy(), &[("INVALID_EVENTS", mode)]);
            h.handle(event, far_deadline()).await.unwrap();
            let state = h.kinesis().state();
            state
                .written
                .iter()
                .map(|r| (r.sequence, r.json["event_id"].clone()))
                .collect::<Vec<_>>()
        }
    };
    let doc = with_event_defects(1);
    let first = ids("drop-event", &doc).await;
    assert_eq!(first, ids("drop-event", &doc).await, "a redelivery");
    assert_eq!(b64(&doc), body);
    // The ids of the kept events are those of the document, whatever was dropped.
    let doc_ids: Vec<_> = first
        .iter()
        .map(|(sequence, _)| {
            let digest: String = <sha2::Sha256 as sha2::Digest>::digest(doc.to_string().as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let name = format!("{}/{}/{digest}/{sequence}", uuid(0xde, 1), sub_id(1));
            json!(
                uuid::Uuid::new_v5(
                    &edr_preprocessor::encode::EVENT_ID_NAMESPACE,
                    name.as_bytes()
                )
                .to_string()
            )
        })
        .collect();
    assert_eq!(
        first.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>(),
        doc_ids
    );
    assert!(ids("reject-submission", &doc).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn drop_event_publishes_nothing_of_a_submission_whose_reject_is_refused() {
    let event = batch(vec![
        message("ok", &b64(&submission(0, 1, 0))),
        message("partial", &b64(&with_event_defects(1))),
    ]);
    let rejects = RecordingRejects {
        refuse: true,
        ..RecordingRejects::default()
    };
    let h = Handler::new(
        config(&[("INVALID_EVENTS", "drop-event")]),
        ScriptedKinesis::healthy(),
        Some(rejects),
    );
    let (response, metrics) = h.process(&event.records, far_deadline()).await;
    assert_eq!(failed_ids(&response.unwrap()), ["partial"]);
    assert!(
        h.kinesis().written_sequences(&sub_id(1)).is_empty(),
        "it comes back whole, so nothing of it is published now"
    );
    assert_eq!(h.kinesis().written_sequences(&sub_id(0)), [0]);
    assert!(
        metrics.events_dropped.is_empty(),
        "counted when it is acknowledged"
    );
}

#[tokio::test(start_paused = true)]
async fn one_devices_invalid_flood_cannot_fail_another_devices_partial_submission() {
    // One device sends 990 submissions that are rejected whole (a
    // submission-level defect); ten other devices each send a partly valid
    // one (drop-event), last in the batch. The rejects queue answers each
    // request after 300 ms, so not all of the flood's 99 requests can be
    // answered within the call timeout of 1 s.
    let attacker = uuid(0xde, 666);
    let flood = (0..990).map(|n| {
        let mut s = submission(1000 + n, 1, 0);
        s["device_id"] = json!(attacker);
        s["time_created"] = json!("yesterday");
        message(&format!("flood-{n}"), &b64(&s))
    });
    let partial = (0..10).map(|n| {
        let mut s = with_event_defects(n);
        s["device_id"] = json!(uuid(0xde, 100 + n));
        message(&format!("partial-{n}"), &b64(&s))
    });
    let event = batch(flood.chain(partial).collect());
    let rejects = RecordingRejects {
        delay: Duration::from_millis(300),
        ..RecordingRejects::default()
    };
    let started = tokio::time::Instant::now();
    let calls_at = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kinesis = ScriptedKinesis::scripted({
        let calls_at = calls_at.clone();
        move |_, seen| {
            calls_at.lock().unwrap().push(started.elapsed());
            Answer::Entries(seen.iter().map(|_| written()).collect())
        }
    });
    let h = Handler::new(
        config(&[
            ("INVALID_EVENTS", "drop-event"),
            ("KINESIS_CALL_TIMEOUT_MS", "1000"),
        ]),
        kinesis,
        Some(rejects),
    );
    let response = h.handle(event, far_deadline()).await.unwrap();
    let failed: HashSet<String> = failed_ids(&response).into_iter().collect();
    // The ten are published and acknowledged, their entries stored.
    for n in 0..10 {
        assert!(!failed.contains(&format!("partial-{n}")), "partial-{n}");
        assert_eq!(h.kinesis().written_sequences(&sub_id(n)), [0, 2, 4]);
    }
    let sent = h.rejects().unwrap().sent.lock().unwrap().clone();
    let stored: HashSet<String> = sent.into_iter().map(|(id, _, _)| id).collect();
    assert!((0..10).all(|n| stored.contains(&format!("partial-{n}"))));
    // Nor are they delayed: publishing starts once their own request is
    // answered, while the flood's requests are still waiting.
    assert_eq!(
        calls_at.lock().unwrap().first(),
        Some(&Duration::from_millis(300))
    );
    // The flood pays for itself: each of its messages is stored or comes
    // back, and the queue was slow enough that some come back.
    let flood: HashSet<String> = (0..990).map(|n| format!("flood-{n}")).collect();
    assert_eq!(failed, &flood - &stored);
    assert!(!failed.is_empty(), "the flood outlasted the budget");
    // Still one call timeout for the rejects queue, however large the flood.
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_partly_valid_submissions_delays_only_itself() {
    // One device sends 190 partly valid submissions (drop-event); ten other
    // devices each send a partly valid one, and ten more a fully valid one,
    // all after the flood in the batch. The rejects queue answers each
    // request after 300 ms: 200 entries are 20 requests, 10 at a time, so
    // two waves, answered at 300 and 600 ms.
    let attacker = uuid(0xde, 666);
    let flood = (0..190).map(|n| {
        let mut s = with_event_defects(1000 + n);
        s["device_id"] = json!(attacker);
        message(&format!("flood-{n}"), &b64(&s))
    });
    let partial = (0..10).map(|n| {
        let mut s = with_event_defects(100 + n);
        s["device_id"] = json!(uuid(0xde, 100 + n));
        message(&format!("partial-{n}"), &b64(&s))
    });
    let valid = (0..10).map(|n| {
        let mut s = submission(200 + n, 3, 2);
        s["device_id"] = json!(uuid(0xde, 200 + n));
        message(&format!("valid-{n}"), &b64(&s))
    });
    let event = batch(flood.chain(partial).chain(valid).collect());
    let rejects = RecordingRejects {
        delay: Duration::from_millis(300),
        ..RecordingRejects::default()
    };
    let started = tokio::time::Instant::now();
    // When each submission's records were sent, by submission id.
    let sent_at = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        Vec<Duration>,
    >::new()));
    let kinesis = ScriptedKinesis::scripted({
        let sent_at = sent_at.clone();
        move |_, seen| {
            let mut sent_at = sent_at.lock().unwrap();
            for s in seen {
                (sent_at.entry(s.submission_id.clone()).or_default()).push(started.elapsed());
            }
            Answer::Entries(seen.iter().map(|_| written()).collect())
        }
    });
    let h = Handler::new(
        config(&[
            ("INVALID_EVENTS", "drop-event"),
            ("KINESIS_CALL_TIMEOUT_MS", "5000"),
        ]),
        kinesis,
        Some(rejects),
    );
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(h.rejects().unwrap().sent.lock().unwrap().len(), 200);
    let sent_at = sent_at.lock().unwrap();
    let times = |n: usize| {
        let mut t = sent_at[&sub_id(n)].clone();
        t.dedup();
        t
    };
    // The fully valid submissions wait for nothing: published whole at 0,
    // before the rejects queue answered anything.
    for n in 200..210 {
        assert_eq!(times(n), [Duration::ZERO], "valid submission {n}");
        assert_eq!(h.kinesis().written_sequences(&sub_id(n)), [0, 1, 2, 3, 4]);
    }
    // The other devices' partly valid ones wait for their own entry alone,
    // which goes out in the first requests (one entry per device in turn):
    // published at 300 ms, not behind the flood.
    let first_wave = [Duration::from_millis(300)];
    for n in 100..110 {
        assert_eq!(times(n), first_wave, "partly valid submission {n}");
        assert_eq!(h.kinesis().written_sequences(&sub_id(n)), [0, 2, 4]);
    }
    // The flood waits for its own entries: most of it for the second wave.
    let second_wave = (1000..1190)
        .filter(|&n| times(n) == [Duration::from_millis(600)])
        .count();
    assert!(
        second_wave >= 100,
        "{second_wave} of the flood in the second wave"
    );
    assert_eq!(started.elapsed(), Duration::from_millis(600));
}

#[tokio::test(start_paused = true)]
async fn in_a_fifo_group_a_partial_submission_waits_for_the_valid_one_before_it() {
    // If the first message fails, the partial one after it is failed
    // unpublished and must not have been forwarded: it comes back.
    let event = batch(vec![
        fifo_message("first", "g", &b64(&submission(0, 1, 0))),
        fifo_message("partial", "g", &b64(&with_event_defects(1))),
    ]);
    let h = Handler::new(
        config(&[("INVALID_EVENTS", "drop-event")]),
        refusing_submission(0),
        Some(RecordingRejects::default()),
    );
    let response = h.handle(event, far_deadline()).await.unwrap();
    assert_eq!(failed_ids(&response), ["first", "partial"]);
    assert!(h.rejects().unwrap().sent.lock().unwrap().is_empty());
    assert!(h.kinesis().written_sequences(&sub_id(1)).is_empty());
}
