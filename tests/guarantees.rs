//! Property test of the guarantees: for random batches (valid and invalid
//! submissions, standard or FIFO), random per-record and per-call Kinesis
//! failures, random concurrency, attempts and deadlines, check on what the
//! publisher sent and what it answered that
//!
//! 1. no loss: a valid submission absent from `batchItemFailures` has every
//!    record acknowledged;
//! 2. order: in strict mode no record is sent before its predecessor was
//!    acknowledged, so first copies are in `sequence` order; in relaxed mode
//!    last copies are;
//! 5. FIFO: after a failed message of a group, every later message of the
//!    group is reported failed and nothing of it was sent;
//! 6. the response names only this batch's ids, once each, never empty;
//!
//! and that invalid submissions are never published nor retried (unless a
//! FIFO predecessor failed). Both `INVALID_EVENTS` modes run: under
//! `drop-event` a submission with a bad event publishes its other events.
//! With `RESUME=resend` a standard queue's submission published part-way may
//! go back to its queue instead of being reported: then the records before
//! its marker are acknowledged, and the marker names a record that is not
//! (with `tests/resume.rs`, which runs the copy: no loss across deliveries).
//!
//! Every property runs in both record formats. Under
//! `RECORD_FORMAT=aggregated` the fake Kinesis deaggregates what it is sent,
//! so the properties read the same events; the aggregated records are made
//! at most a random few hundred bytes to a few KiB (a submission spans
//! several, as a large one does under the stream's 1 MiB), each within it,
//! and a marker names the first event of an aggregated record.

use crate::support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;
use support::*;

#[derive(Debug, Clone)]
enum Kind {
    Valid {
        processes: usize,
        connections: usize,
    },
    Invalid(u8),
}

#[derive(Debug, Clone)]
struct Case {
    messages: Vec<(Kind, u8)>,
    fifo: bool,
    relaxed: bool,
    max_in_flight: usize,
    max_attempts: u32,
    entry_outcomes: Vec<u8>,
    call_outcomes: Vec<u8>,
    call_delay_ms: u64,
    deadline_ms: u64,
    drop_events: bool,
    resend: bool,
    /// Under `RECORD_FORMAT=aggregated`, the aggregated records' limit
    /// (below one record alone: the submission fails, reported).
    record_limit: usize,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => (0usize..6, 0usize..6).prop_map(|(processes, connections)| Kind::Valid { processes, connections }),
        1 => (0u8..4).prop_map(Kind::Invalid),
    ]
}

prop_compose! {
    fn case()(
        messages in prop::collection::vec((kind(), 0u8..3), 1..25),
        fifo in any::<bool>(),
        relaxed in any::<bool>(),
        max_in_flight in 1usize..5,
        max_attempts in 1u32..6,
        entry_outcomes in prop::collection::vec(0u8..10, 1..64),
        call_outcomes in prop::collection::vec(0u8..10, 1..16),
        call_delay_ms in prop_oneof![Just(0u64), 1u64..80],
        deadline_ms in prop_oneof![Just(600_000u64), 300u64..5_000],
        drop_events in any::<bool>(),
        resend in any::<bool>(),
        record_limit in prop_oneof![1 => Just(1024usize * 1024), 1 => 300usize..900, 6 => 900usize..4_000],
    ) -> Case {
        Case { messages, fifo, relaxed, max_in_flight, max_attempts, entry_outcomes, call_outcomes, call_delay_ms, deadline_ms, drop_events, resend, record_limit }
    }
}

fn body(n: usize, kind: &Kind) -> String {
    match kind {
        Kind::Valid {
            processes,
            connections,
        } => b64(&submission(n, *processes, *connections)),
        Kind::Invalid(variant) => {
            let mut doc = submission(n, 1, 1);
            match variant {
                0 => doc["submission_id"] = json!("not-an-uuid"),
                1 => doc["events"]["network_connection"][0]["destination_ip"] = json!("not-an-ip"),
                2 => doc["events"]["new_process"][0]["cmdl"] = json!(null),
                _ => return "%%% not base64".into(),
            }
            b64(&doc)
        }
    }
}

/// The sequences a message publishes, or `None` if it is rejected whole.
fn expected(kind: &Kind, drop_events: bool) -> Option<Vec<u64>> {
    match kind {
        Kind::Valid {
            processes,
            connections,
        } => Some((0..(processes + connections) as u64).collect()),
        // A bad destination (sequence 1) or a null command line (sequence 0).
        Kind::Invalid(1) if drop_events => Some(vec![0]),
        Kind::Invalid(2) if drop_events => Some(vec![1]),
        Kind::Invalid(_) => None,
    }
}

fn run(case: &Case, aggregated: bool) -> Result<(), TestCaseError> {
    let (entry_outcomes, call_outcomes) = (case.entry_outcomes.clone(), case.call_outcomes.clone());
    let mut entry_cursor = 0usize;
    let kinesis = ScriptedKinesis::scripted(move |call, seen| {
        match call_outcomes[call % call_outcomes.len()] {
            9 => return Answer::Call(call_error(true, "InternalFailure")),
            8 if call.is_multiple_of(7) => {
                return Answer::Call(call_error(false, "AccessDeniedException"));
            }
            _ => {}
        }
        Answer::Entries(
            seen.iter()
                .map(|_| {
                    entry_cursor += 1;
                    match entry_outcomes[entry_cursor % entry_outcomes.len()] {
                        6 => throttled(),
                        7 => internal(),
                        8 if entry_cursor.is_multiple_of(5) => kms_denied(),
                        _ => written(),
                    }
                })
                .collect(),
        )
    })
    .with_delay(Duration::from_millis(case.call_delay_ms));
    let dropped = case
        .messages
        .iter()
        .enumerate()
        .filter_map(|(n, (kind, _))| match (kind, case.drop_events) {
            (Kind::Invalid(1), true) => Some((uuid(0x5b, n), 1)),
            (Kind::Invalid(2), true) => Some((uuid(0x5b, n), 0)),
            _ => None,
        })
        .collect();
    let kinesis = kinesis.with_dropped(dropped);
    let kinesis = if case.relaxed {
        kinesis.relaxed()
    } else {
        kinesis
    };
    let max_in_flight = case.max_in_flight.to_string();
    let max_attempts = case.max_attempts.to_string();
    let pairs = [
        ("ORDERING", if case.relaxed { "relaxed" } else { "strict" }),
        ("MAX_IN_FLIGHT_CALLS", &max_in_flight),
        ("MAX_ATTEMPTS", &max_attempts),
        ("DEADLINE_MARGIN_MS", "100"),
        (
            "INVALID_EVENTS",
            if case.drop_events {
                "drop-event"
            } else {
                "reject-submission"
            },
        ),
        ("RESUME", if case.resend { "resend" } else { "off" }),
        (
            "RECORD_FORMAT",
            if aggregated {
                "aggregated"
            } else {
                "per-event"
            },
        ),
    ];
    let h =
        edr_preprocessor::handler::Handler::new(config(&pairs), kinesis, None::<RecordingRejects>)
            .with_aggregated_record_limit(case.record_limit)
            .with_resend(RecordingResend::default());
    let ids: Vec<String> = (0..case.messages.len())
        .map(|n| format!("msg-{n}"))
        .collect();
    let records = case
        .messages
        .iter()
        .enumerate()
        .map(|(n, (kind, group))| {
            let body = body(n, kind);
            if case.fifo {
                fifo_message(&ids[n], &format!("g{group}"), &body)
            } else {
                message(&ids[n], &body)
            }
        })
        .collect();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let records: Vec<_> = records;
    let (response, metrics) = runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(case.deadline_ms);
        let (response, metrics) = h.process(&records, deadline).await;
        prop_assert!(
            tokio::time::Instant::now() <= deadline,
            "returned after the deadline"
        );
        Ok((response.unwrap(), metrics))
    })?;
    // 7. Each message is counted once: published, rejected, failed or resent.
    prop_assert_eq!(
        metrics.published + metrics.rejected_total() + metrics.failed + metrics.resent,
        metrics.received,
        "{:?}",
        metrics
    );
    prop_assert_eq!(metrics.failed, response.batch_item_failures.len() as u64);

    let failed: Vec<String> = failed_ids(&response);
    let failed_set: HashSet<&str> = failed.iter().map(String::as_str).collect();
    // 6. Well-formed response.
    prop_assert_eq!(
        failed_set.len(),
        failed.len(),
        "duplicate ids in {:?}",
        failed
    );
    prop_assert!(failed.iter().all(|id| !id.is_empty() && ids.contains(id)));

    let k = h.kinesis();
    let state = k.state();
    let mut written: HashMap<String, Vec<u64>> = HashMap::new();
    for s in &state.written {
        written
            .entry(s.submission_id.clone())
            .or_default()
            .push(s.sequence);
    }
    let sent: HashSet<&str> = state
        .calls
        .iter()
        .flatten()
        .map(|s| s.submission_id.as_str())
        .collect();
    // The first event of each Kinesis record sent, by submission: where an
    // aggregated record starts.
    let mut starts: HashMap<&str, HashSet<u64>> = HashMap::new();
    for s in state.calls.iter().flatten() {
        starts
            .entry(&s.submission_id)
            .or_default()
            .insert(s.sequence);
        prop_assert_eq!(
            s.user_records.is_empty(),
            !aggregated,
            "the format: {:?}",
            s
        );
        if aggregated {
            prop_assert!(
                s.size <= case.record_limit,
                "{} bytes over {}",
                s.size,
                case.record_limit
            );
        }
    }

    let resent: HashMap<String, usize> = h
        .resend()
        .map(|r| r.sent.lock().unwrap().clone())
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.source_message_id, marker_progress(&s.marker).0))
        .collect();
    prop_assert!(
        resent.is_empty() || (!case.fifo && case.resend),
        "FIFO or off: nothing goes back"
    );
    prop_assert_eq!(metrics.resent, resent.len() as u64);

    for (n, (kind, _)) in case.messages.iter().enumerate() {
        let sub = uuid(0x5b, n);
        let seqs = written.get(&sub).cloned().unwrap_or_default();
        match expected(kind, case.drop_events) {
            Some(kept) => {
                if !failed_set.contains(ids[n].as_str()) {
                    // 1. No loss: all of it, or the part before its marker
                    // (the copy sent back publishes the rest).
                    let got: HashSet<u64> = seqs.iter().copied().collect();
                    // The marker names the sequence of the first record not
                    // acknowledged; every kept record before it must be.
                    let next = resent.get(&ids[n]).map(|&next| next as u64);
                    let wanted: Vec<u64> = kept
                        .iter()
                        .copied()
                        .filter(|&s| next.is_none_or(|next| s < next))
                        .collect();
                    prop_assert!(
                        next.is_none_or(|next| !wanted.is_empty() && kept.contains(&next)),
                        "{} went back without progress, or past its end: {:?}",
                        ids[n],
                        next
                    );
                    // 9. Aggregated: the first event of the first
                    // aggregated record not acknowledged.
                    prop_assert!(
                        !aggregated
                            || next.is_none_or(|next| starts
                                .get(sub.as_str())
                                .is_some_and(|s| s.contains(&next))),
                        "{}'s marker {:?} is inside an aggregated record",
                        ids[n],
                        next
                    );
                    prop_assert!(
                        wanted.iter().all(|s| got.contains(s)),
                        "{} acknowledged but incomplete: {:?} of {:?}",
                        ids[n],
                        seqs,
                        wanted
                    );
                    prop_assert!(
                        got.iter().all(|s| kept.contains(s)),
                        "{} published a dropped event",
                        ids[n]
                    );
                }
                // 2. Order.
                let copies: Vec<u64> = if case.relaxed {
                    let mut last: Vec<(usize, u64)> = (kept.iter().copied())
                        .filter_map(|q| seqs.iter().rposition(|&s| s == q).map(|p| (p, q)))
                        .collect();
                    last.sort();
                    last.into_iter().map(|(_, q)| q).collect()
                } else {
                    let mut first = Vec::new();
                    for &q in &seqs {
                        if !first.contains(&q) {
                            first.push(q);
                        }
                    }
                    first
                };
                // Relaxed mode orders the last copies of a whole submission:
                // not of one that failed or went back part-way.
                let whole = !failed_set.contains(ids[n].as_str()) && !resent.contains_key(&ids[n]);
                if !case.relaxed || whole {
                    prop_assert!(
                        copies.windows(2).all(|w| w[0] < w[1]),
                        "{} out of order: {:?}",
                        ids[n],
                        seqs
                    );
                }
            }
            None => {
                prop_assert!(
                    seqs.is_empty() && !sent.contains(sub.as_str()),
                    "invalid {} was sent",
                    ids[n]
                );
            }
        }
    }
    if !case.relaxed {
        prop_assert!(
            state.order_violations.is_empty(),
            "{:?}",
            state.order_violations
        );
    }

    // 5. FIFO groups; and invalid ones are only retried behind a failed predecessor.
    let mut group_failed: HashSet<u8> = HashSet::new();
    for (n, (kind, group)) in case.messages.iter().enumerate() {
        let is_failed = failed_set.contains(ids[n].as_str());
        if case.fifo && group_failed.contains(group) {
            prop_assert!(
                is_failed,
                "{} follows a failed message of its group but was acknowledged",
                ids[n]
            );
            prop_assert!(
                !sent.contains(uuid(0x5b, n).as_str()),
                "{} follows a failed message of its group but was sent",
                ids[n]
            );
        } else if expected(kind, case.drop_events).is_none() {
            prop_assert!(!is_failed, "invalid {} was reported for retry", ids[n]);
        }
        if is_failed {
            group_failed.insert(*group);
        }
    }
    if case.fifo {
        // Within a group, a message's first record is written after its predecessor's last.
        let position = |n: usize, last: bool| {
            let sub = uuid(0x5b, n);
            let mut it = state
                .written
                .iter()
                .enumerate()
                .filter(|(_, s)| s.submission_id == sub)
                .map(|(i, _)| i);
            if last { it.next_back() } else { it.next() }
        };
        for (a, (_, ga)) in case.messages.iter().enumerate() {
            if let Some(b) = (a + 1..case.messages.len()).find(|&b| case.messages[b].1 == *ga)
                && let (Some(end_a), Some(start_b)) = (position(a, true), position(b, false))
            {
                prop_assert!(
                    end_a < start_b,
                    "{} started before {} finished",
                    ids[b],
                    ids[a]
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn guarantees_hold_under_random_failures(case in case()) {
        run(&case, false)?;
    }

    #[test]
    fn guarantees_hold_under_random_failures_with_aggregated_records(case in case()) {
        run(&case, true)?;
    }
}
