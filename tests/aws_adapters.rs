//! The AWS SDK adapters against scripted SDK outcomes (aws-smithy-mocks):
//! how a real PutRecords answer is read entry by entry, how request errors
//! are sorted into retryable or not, and what the rejects queue is sent.

use std::sync::Arc;

use aws_sdk_kinesis::operation::describe_stream_summary::{
    DescribeStreamSummaryError, DescribeStreamSummaryOutput,
};
use aws_sdk_kinesis::operation::put_records::{PutRecordsError, PutRecordsOutput};
use aws_sdk_kinesis::types::error::{
    AccessDeniedException, LimitExceededException, ProvisionedThroughputExceededException,
    ResourceNotFoundException,
};
use aws_sdk_kinesis::types::{
    PutRecordsResultEntry, RecordDistributionStrategy, StreamDescriptionSummary, StreamStatus,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use edr_preprocessor::aws::kinesis::RecordDistribution;
use edr_preprocessor::aws::{KinesisSink, SqsRejectSink};
use edr_preprocessor::config::StreamRef;
use edr_preprocessor::model::Reason;
use edr_preprocessor::publisher::{
    CallError, EntryResult, MISSING_SEQUENCE_NUMBER, OutboundRecord, RecordSink,
};
use edr_preprocessor::rejects_queue::{RejectSink, RejectedMessage};
use serde_json::Value;

fn records(n: usize) -> Vec<OutboundRecord> {
    (0..n)
        .map(|i| OutboundRecord {
            partition_key: Arc::from("4a1b3c5d-0000-4000-8000-000000000001"),
            explicit_hash_key: None,
            data: Bytes::from(format!("{{\"sequence\":{i}}}")),
        })
        .collect()
}

fn ok_entry(seq: &str) -> PutRecordsResultEntry {
    PutRecordsResultEntry::builder()
        .sequence_number(seq)
        .shard_id("shardId-000000000000")
        .build()
}

fn failed_entry(code: &str) -> PutRecordsResultEntry {
    PutRecordsResultEntry::builder()
        .error_code(code)
        .error_message("scripted")
        .build()
}

#[tokio::test]
async fn the_sdk_takes_records_over_one_mebibyte_and_requests_over_five() {
    // The pinned SDK checks no size client-side: four records of 2 MiB, 8 MiB
    // in one request, go out whole (Kinesis' limits since 2025: 10 MiB each).
    let big = Bytes::from(vec![b'x'; 2 * 1024 * 1024]);
    let expected = big.clone();
    let rule = mock!(aws_sdk_kinesis::Client::put_records)
        .match_requests(move |req| {
            req.records().len() == 4
                && req
                    .records()
                    .iter()
                    .all(|r| r.data().as_ref() == expected.as_ref())
        })
        .then_output(|| {
            let mut output = PutRecordsOutput::builder().failed_record_count(0);
            for i in 0..4 {
                output = output.records(ok_entry(&i.to_string()));
            }
            output.build().unwrap()
        });
    let client = mock_client!(aws_sdk_kinesis, [&rule]);
    let sink = KinesisSink::new(client, StreamRef::Name("events".into()));
    let records = (0..4)
        .map(|_| OutboundRecord {
            partition_key: Arc::from("4a1b3c5d-0000-4000-8000-000000000001"),
            explicit_hash_key: None,
            data: big.clone(),
        })
        .collect();
    let result = sink.put_records(records).await.unwrap();
    assert_eq!(rule.num_calls(), 1);
    assert!(result.iter().all(EntryResult::is_written));
}

#[tokio::test]
async fn entries_are_read_one_by_one_whatever_failed_record_count_says() {
    let rule = mock!(aws_sdk_kinesis::Client::put_records)
        .match_requests(|req| {
            req.stream_name() == Some("events")
                && req.records().len() == 4
                && req.records()[2].data().as_ref() == b"{\"sequence\":2}"
                && req.records()[2].partition_key() == Some("4a1b3c5d-0000-4000-8000-000000000001")
        })
        .then_output(|| {
            PutRecordsOutput::builder()
                // Lies: says nothing failed.
                .failed_record_count(0)
                .records(ok_entry("1"))
                .records(failed_entry("ProvisionedThroughputExceededException"))
                .records(PutRecordsResultEntry::builder().build())
                .records(failed_entry("InternalFailure"))
                .build()
                .unwrap()
        });
    let client = mock_client!(aws_sdk_kinesis, [&rule]);
    let sink = KinesisSink::new(client, StreamRef::Name("events".into()));
    let result = sink.put_records(records(4)).await.unwrap();
    assert_eq!(rule.num_calls(), 1);
    assert_eq!(
        result[0],
        EntryResult::Written {
            shard_id: Some("shardId-000000000000".into())
        },
        "written, on the shard the answer names"
    );
    assert!(
        matches!(&result[1], EntryResult::Failed { code, .. } if code == "ProvisionedThroughputExceededException")
    );
    assert!(
        matches!(&result[2], EntryResult::Failed { code, .. } if code == MISSING_SEQUENCE_NUMBER),
        "no sequence number is not a success"
    );
    assert!(matches!(&result[3], EntryResult::Failed { code, .. } if code == "InternalFailure"));
}

#[tokio::test]
async fn every_entry_failed_with_failed_record_count_one_is_every_entry_failed() {
    // LocalStack's answer when Kinesis errors are injected.
    let rule = mock!(aws_sdk_kinesis::Client::put_records).then_output(|| {
        PutRecordsOutput::builder()
            .failed_record_count(1)
            .records(failed_entry("ProvisionedThroughputExceededException"))
            .records(failed_entry("ProvisionedThroughputExceededException"))
            .records(failed_entry("ProvisionedThroughputExceededException"))
            .build()
            .unwrap()
    });
    let client = mock_client!(aws_sdk_kinesis, [&rule]);
    let sink = KinesisSink::new(client, StreamRef::Name("events".into()));
    let result = sink.put_records(records(3)).await.unwrap();
    assert!(
        result
            .iter()
            .all(|e| matches!(e, EntryResult::Failed { .. }))
    );
}

#[tokio::test]
async fn a_stream_arn_is_sent_as_the_arn() {
    let arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/events";
    let rule = mock!(aws_sdk_kinesis::Client::put_records)
        .match_requests(move |req| req.stream_arn() == Some(arn) && req.stream_name().is_none())
        .then_output(|| {
            PutRecordsOutput::builder()
                .records(ok_entry("1"))
                .build()
                .unwrap()
        });
    let client = mock_client!(aws_sdk_kinesis, [&rule]);
    let sink = KinesisSink::new(client, StreamRef::Arn(arn.into()));
    assert_eq!(
        sink.put_records(records(1)).await.unwrap(),
        [EntryResult::Written {
            shard_id: Some("shardId-000000000000".into())
        }]
    );
}

#[tokio::test]
async fn the_explicit_hash_key_is_sent_beside_the_unchanged_partition_key() {
    // Keyed placement: the submission's hash key goes out as ExplicitHashKey
    // and the partition key is the one consumers always saw; a record
    // without one (partition-key placement) sends none.
    const KEY: &str = "4a1b3c5d-0000-4000-8000-000000000001";
    const HASH: &str = "340282366920938463463374607431768211455";
    let rule = mock!(aws_sdk_kinesis::Client::put_records)
        .match_requests(|req| {
            let r = req.records();
            r.len() == 2
                && r[0].explicit_hash_key() == Some(HASH)
                && r[0].partition_key() == Some(KEY)
                && r[1].explicit_hash_key().is_none()
                && r[1].partition_key() == Some(KEY)
        })
        .then_output(|| {
            PutRecordsOutput::builder()
                .records(ok_entry("1"))
                .records(ok_entry("2"))
                .build()
                .unwrap()
        });
    let client = mock_client!(aws_sdk_kinesis, [&rule]);
    let sink = KinesisSink::new(client, StreamRef::Name("events".into()));
    let mut sent = records(2);
    sent[0].explicit_hash_key = Some(Arc::from(HASH));
    let result = sink.put_records(sent).await.unwrap();
    assert_eq!(rule.num_calls(), 1, "the request carried the keys");
    assert_eq!(result.len(), 2);
}

async fn request_error(rule: aws_smithy_mocks::Rule) -> CallError {
    let client = mock_client!(aws_sdk_kinesis, RuleMode::Sequential, [&rule]);
    let sink = KinesisSink::new(client, StreamRef::Name("events".into()));
    sink.put_records(records(2)).await.unwrap_err()
}

#[tokio::test]
async fn throttling_and_server_errors_are_retryable() {
    let e = request_error(mock!(aws_sdk_kinesis::Client::put_records).then_error(|| {
        PutRecordsError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message("slow down")
                .build(),
        )
    }))
    .await;
    assert!(e.retryable);
    assert_eq!(e.code, "ProvisionedThroughputExceededException");

    let e = request_error(
        mock!(aws_sdk_kinesis::Client::put_records).then_http_response(|| {
            Response::new(
                StatusCode::try_from(500).unwrap(),
                SdkBody::from(r#"{"__type":"InternalFailure","message":"boom"}"#),
            )
        }),
    )
    .await;
    assert!(e.retryable, "{e:?}");
    assert_eq!(e.code, "InternalFailure");

    let e = request_error(
        mock!(aws_sdk_kinesis::Client::put_records).then_http_response(|| {
            Response::new(
                StatusCode::try_from(503).unwrap(),
                SdkBody::from("<html>unavailable</html>"),
            )
        }),
    )
    .await;
    assert!(e.retryable, "{e:?}");
}

#[tokio::test]
async fn access_and_configuration_errors_are_not_retryable() {
    let e = request_error(mock!(aws_sdk_kinesis::Client::put_records).then_error(|| {
        PutRecordsError::AccessDeniedException(
            AccessDeniedException::builder().message("no").build(),
        )
    }))
    .await;
    assert!(!e.retryable);
    assert_eq!(e.code, "AccessDeniedException");
    let e = request_error(mock!(aws_sdk_kinesis::Client::put_records).then_error(|| {
        PutRecordsError::ResourceNotFoundException(
            ResourceNotFoundException::builder().message("gone").build(),
        )
    }))
    .await;
    assert!(!e.retryable);
}

#[tokio::test]
async fn each_acknowledged_entry_keeps_the_shard_the_answer_names() {
    let rule = mock!(aws_sdk_kinesis::Client::put_records).then_output(|| {
        PutRecordsOutput::builder()
            .records(ok_entry("1"))
            .records(
                PutRecordsResultEntry::builder()
                    .sequence_number("2")
                    .shard_id("shardId-000000000007")
                    .build(),
            )
            // An emulator's answer without a ShardId, or with an empty one.
            .records(
                PutRecordsResultEntry::builder()
                    .sequence_number("3")
                    .build(),
            )
            .records(
                PutRecordsResultEntry::builder()
                    .sequence_number("4")
                    .shard_id("")
                    .build(),
            )
            .build()
            .unwrap()
    });
    let client = mock_client!(aws_sdk_kinesis, [&rule]);
    let sink = KinesisSink::new(client, StreamRef::Name("events".into()));
    let on = |shard: Option<&str>| EntryResult::Written {
        shard_id: shard.map(str::to_owned),
    };
    assert_eq!(
        sink.put_records(records(4)).await.unwrap(),
        [
            on(Some("shardId-000000000000")),
            on(Some("shardId-000000000007")),
            on(None),
            on(None)
        ]
    );
}

/// A DescribeStreamSummary answer for the stream `events` naming `strategy`.
fn summary(strategy: Option<&str>) -> DescribeStreamSummaryOutput {
    let summary = StreamDescriptionSummary::builder()
        .stream_name("events")
        .stream_arn("arn:aws:kinesis:eu-west-1:123456789012:stream/events")
        .stream_status(StreamStatus::Active)
        .retention_period_hours(24)
        .stream_creation_timestamp(aws_smithy_types::DateTime::from_secs(0))
        .set_enhanced_monitoring(Some(Vec::new()))
        .open_shard_count(4)
        .set_record_distribution_strategy(strategy.map(RecordDistributionStrategy::from))
        .build()
        .unwrap();
    DescribeStreamSummaryOutput::builder()
        .stream_description_summary(summary)
        .build()
}

fn describing(rule: &aws_smithy_mocks::Rule, stream: StreamRef) -> KinesisSink {
    KinesisSink::new(mock_client!(aws_sdk_kinesis, [rule]), stream)
}

#[tokio::test]
async fn the_record_distribution_strategy_is_read_from_the_stream_summary() {
    for (strategy, expected) in [
        (Some("AUTO"), RecordDistribution::Auto),
        (Some("USER_PARTITION_KEY"), RecordDistribution::ByKey),
        (None, RecordDistribution::ByKey),
        (Some("NEW_ONE"), RecordDistribution::Other("NEW_ONE".into())),
    ] {
        let rule = mock!(aws_sdk_kinesis::Client::describe_stream_summary)
            .match_requests(|req| req.stream_name() == Some("events"))
            .then_output(move || summary(strategy));
        let sink = describing(&rule, StreamRef::Name("events".into()));
        assert_eq!(
            sink.record_distribution().await,
            Ok(expected),
            "{strategy:?}"
        );
        assert_eq!(rule.num_calls(), 1);
    }
    let arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/events";
    let rule = mock!(aws_sdk_kinesis::Client::describe_stream_summary)
        .match_requests(move |req| req.stream_arn() == Some(arn) && req.stream_name().is_none())
        .then_output(|| summary(Some("AUTO")));
    let sink = describing(&rule, StreamRef::Arn(arn.into()));
    assert_eq!(
        sink.record_distribution().await,
        Ok(RecordDistribution::Auto)
    );
}

#[test]
fn an_auto_stream_is_reported_at_error_and_a_refusal_or_throttle_at_warn_only() {
    // The function's own lines (the SDK's are captured too).
    let report = |rule: aws_smithy_mocks::Rule| {
        let sink = describing(&rule, StreamRef::Name("events".into()));
        let (found, logs) = crate::support::with_logs(sink.report_record_distribution());
        let own = logs.into_iter().filter(|l| {
            l["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("edr_preprocessor"))
        });
        (found, own.collect::<Vec<_>>())
    };
    let (found, logs) = report(
        mock!(aws_sdk_kinesis::Client::describe_stream_summary)
            .then_output(|| summary(Some("AUTO"))),
    );
    assert_eq!(found, Ok(RecordDistribution::Auto));
    let errors: Vec<_> = logs.iter().filter(|l| l["level"] == "ERROR").collect();
    assert_eq!(errors.len(), 1, "{logs:?}");
    assert_eq!(errors[0]["fields"]["record_distribution_strategy"], "AUTO");
    assert_eq!(errors[0]["fields"]["stream"], "events");

    let (found, logs) = report(
        mock!(aws_sdk_kinesis::Client::describe_stream_summary)
            .then_output(|| summary(Some("USER_PARTITION_KEY"))),
    );
    assert_eq!(found, Ok(RecordDistribution::ByKey));
    let levels: Vec<&Value> = logs.iter().map(|l| &l["level"]).collect();
    assert_eq!(levels, ["DEBUG"], "{logs:?}");

    let refusals = [
        mock!(aws_sdk_kinesis::Client::describe_stream_summary).then_error(|| {
            DescribeStreamSummaryError::AccessDeniedException(
                AccessDeniedException::builder().message("no").build(),
            )
        }),
        mock!(aws_sdk_kinesis::Client::describe_stream_summary).then_error(|| {
            DescribeStreamSummaryError::LimitExceededException(
                LimitExceededException::builder()
                    .message("slow down")
                    .build(),
            )
        }),
    ];
    for (rule, code) in refusals.into_iter().zip(["AccessDenied", "LimitExceeded"]) {
        let (found, logs) = report(rule);
        assert!(found.as_ref().is_err_and(|e| e.contains(code)), "{found:?}");
        let levels: Vec<&Value> = logs.iter().map(|l| &l["level"]).collect();
        assert_eq!(levels, ["WARN"], "{logs:?}");
    }
}

/// `RECORD_FORMAT=aggregated`: the sink asks DescribeStreamSummary before
/// its first PutRecords and puts nothing to an AUTO stream, loudly.
#[test]
fn aggregated_records_are_never_put_to_an_auto_stream() {
    let one_record = || {
        vec![OutboundRecord {
            partition_key: Arc::from("4a1b3c5d-0000-4000-8000-000000000001"),
            explicit_hash_key: None,
            data: Bytes::from_static(b"\xf3\x89\x9a\xc2..."),
        }]
    };
    let put = || {
        mock!(aws_sdk_kinesis::Client::put_records).then_output(|| {
            PutRecordsOutput::builder()
                .failed_record_count(0)
                .records(ok_entry("1"))
                .build()
                .unwrap()
        })
    };
    let sink = |describe: &aws_smithy_mocks::Rule, put: &aws_smithy_mocks::Rule| {
        let client = mock_client!(aws_sdk_kinesis, RuleMode::MatchAny, [describe, put]);
        KinesisSink::new(client, StreamRef::Name("events".into())).refusing_auto()
    };

    // AUTO: refused, not retryable, an ERROR line; asked again each call
    // (the stream may be switched back), nothing ever put.
    let (describe, put_rule) = (
        mock!(aws_sdk_kinesis::Client::describe_stream_summary)
            .then_output(|| summary(Some("AUTO"))),
        put(),
    );
    let auto = sink(&describe, &put_rule);
    for _ in 0..2 {
        let (result, logs) = crate::support::with_logs(auto.put_records(one_record()));
        let error = result.unwrap_err();
        assert_eq!(
            (error.code.as_str(), error.retryable),
            ("AggregatedRecordsOnAutoStream", false)
        );
        let errors: Vec<_> = logs.iter().filter(|l| l["level"] == "ERROR").collect();
        assert_eq!(errors.len(), 1, "{logs:?}");
        assert_eq!(
            errors[0]["fields"]["reason"],
            "AggregatedRecordsOnAutoStream"
        );
    }
    assert_eq!((describe.num_calls(), put_rule.num_calls()), (2, 0));

    // By key: asked once, then put.
    let (describe, put_rule) = (
        mock!(aws_sdk_kinesis::Client::describe_stream_summary)
            .then_output(|| summary(Some("USER_PARTITION_KEY"))),
        put(),
    );
    let by_key = sink(&describe, &put_rule);
    for _ in 0..2 {
        let (result, _) = crate::support::with_logs(by_key.put_records(one_record()));
        assert!(result.unwrap().iter().all(EntryResult::is_written));
    }
    assert_eq!((describe.num_calls(), put_rule.num_calls()), (1, 2));

    // Unknown (refused, throttled): retryable, nothing put, asked again.
    let (describe, put_rule) = (
        mock!(aws_sdk_kinesis::Client::describe_stream_summary).then_error(|| {
            DescribeStreamSummaryError::AccessDeniedException(
                AccessDeniedException::builder().message("no").build(),
            )
        }),
        put(),
    );
    let unknown = sink(&describe, &put_rule);
    for _ in 0..2 {
        let (result, _) = crate::support::with_logs(unknown.put_records(one_record()));
        let error = result.unwrap_err();
        assert_eq!(
            (error.code.as_str(), error.retryable),
            ("RecordDistributionUnknown", true)
        );
    }
    assert_eq!((describe.num_calls(), put_rule.num_calls()), (2, 0));

    // Per-event records are put without asking.
    let (describe, put_rule) = (
        mock!(aws_sdk_kinesis::Client::describe_stream_summary)
            .then_output(|| summary(Some("AUTO"))),
        put(),
    );
    let client = mock_client!(aws_sdk_kinesis, RuleMode::MatchAny, [&describe, &put_rule]);
    let per_event = KinesisSink::new(client, StreamRef::Name("events".into()));
    let (result, _) = crate::support::with_logs(per_event.put_records(one_record()));
    assert!(result.is_ok());
    assert_eq!((describe.num_calls(), put_rule.num_calls()), (0, 1));
}

/// `RECORD_FORMAT=aggregated`: a by-key answer to the start-up
/// DescribeStreamSummary (made by a clone of the sink) spares the first
/// PutRecords its own; any other answer, or none, does not.
#[test]
fn a_by_key_answer_at_start_up_is_the_only_question_asked() {
    let put = || {
        mock!(aws_sdk_kinesis::Client::put_records).then_output(|| {
            PutRecordsOutput::builder()
                .failed_record_count(0)
                .records(ok_entry("1"))
                .build()
                .unwrap()
        })
    };
    let one_record = || {
        vec![OutboundRecord {
            partition_key: Arc::from("4a1b3c5d-0000-4000-8000-000000000001"),
            explicit_hash_key: None,
            data: Bytes::from_static(b"\xf3\x89\x9a\xc2..."),
        }]
    };
    // (start-up answer, DescribeStreamSummary calls after one put)
    let cases = [
        (
            mock!(aws_sdk_kinesis::Client::describe_stream_summary)
                .then_output(|| summary(Some("USER_PARTITION_KEY"))),
            1,
        ),
        (
            mock!(aws_sdk_kinesis::Client::describe_stream_summary).then_error(|| {
                DescribeStreamSummaryError::LimitExceededException(
                    LimitExceededException::builder()
                        .message("slow down")
                        .build(),
                )
            }),
            2,
        ),
    ];
    for (describe, calls) in cases {
        let put_rule = put();
        let client = mock_client!(aws_sdk_kinesis, RuleMode::MatchAny, [&describe, &put_rule]);
        let sink = KinesisSink::new(client, StreamRef::Name("events".into())).refusing_auto();
        let (found, _) = crate::support::with_logs(sink.clone().report_record_distribution());
        assert_eq!(describe.num_calls(), 1, "{found:?}");
        let _ = crate::support::with_logs(sink.put_records(one_record()));
        assert_eq!(describe.num_calls(), calls, "{found:?}");
    }
}

use aws_sdk_sqs::operation::send_message_batch::{SendMessageBatchError, SendMessageBatchOutput};
use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};

fn sqs_ok(id: &str) -> SendMessageBatchResultEntry {
    SendMessageBatchResultEntry::builder()
        .id(id)
        .message_id(format!("r-{id}"))
        .md5_of_message_body("-")
        .build()
        .unwrap()
}

/// A SendMessageBatch answer: entry 0 sent, none failed.
fn first_entry_sent() -> SendMessageBatchOutput {
    SendMessageBatchOutput::builder()
        .successful(sqs_ok("0"))
        .set_failed(Some(vec![]))
        .build()
        .unwrap()
}

fn rejects_sink(client: aws_sdk_sqs::Client, url: &str) -> SqsRejectSink {
    SqsRejectSink::new(client, url.into())
}

#[tokio::test]
async fn the_rejects_queue_gets_the_body_unchanged_and_the_reason() {
    let rule = mock!(aws_sdk_sqs::Client::send_message_batch)
        .match_requests(|req| {
            let entry = &req.entries()[0];
            let attr = |name: &str| {
                entry
                    .message_attributes()
                    .and_then(|a| a.get(name))
                    .and_then(|v| v.string_value())
                    .map(str::to_owned)
            };
            req.queue_url() == Some("https://sqs.eu-west-1.amazonaws.com/1/rejects")
                && req.entries().len() == 1
                && entry.message_body() == "%%% original body"
                && attr("reason").as_deref() == Some("invalid_base64")
                && attr("source_message_id").as_deref() == Some("m-1")
                && attr("detail").as_deref() == Some("invalid base64 character at offset 0")
                && entry.message_group_id().is_none()
        })
        .then_output(first_entry_sent);
    let client = mock_client!(aws_sdk_sqs, [&rule]);
    let sink = rejects_sink(client, "https://sqs.eu-west-1.amazonaws.com/1/rejects");
    let message = RejectedMessage {
        dropped_events: None,
        body: "%%% original body",
        reason: Reason::InvalidBase64,
        detail: "invalid base64 character at offset 0",
        source_message_id: "m-1",
        group_id: None,
    };
    assert_eq!(sink.send_batch(&[message]).await, [Ok(())]);
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_fifo_rejects_queue_gets_a_group_and_deduplication_id() {
    let rule = mock!(aws_sdk_sqs::Client::send_message_batch)
        .match_requests(|req| {
            let entry = &req.entries()[0];
            entry.message_group_id() == Some("device-7")
                && entry.message_deduplication_id() == Some("m-2")
        })
        .then_output(first_entry_sent);
    let client = mock_client!(aws_sdk_sqs, [&rule]);
    let sink = rejects_sink(client, "https://sqs.eu-west-1.amazonaws.com/1/rejects.fifo");
    let message = RejectedMessage {
        dropped_events: None,
        body: "{}",
        reason: Reason::MissingField,
        detail: "missing field",
        source_message_id: "m-2",
        group_id: Some("device-7"),
    };
    assert_eq!(sink.send_batch(&[message]).await, [Ok(())]);
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_refused_send_is_an_error_with_the_code() {
    let rule = mock!(aws_sdk_sqs::Client::send_message_batch).then_error(|| {
        SendMessageBatchError::QueueDoesNotExist(
            aws_sdk_sqs::types::error::QueueDoesNotExist::builder()
                .message("no queue")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_sqs, [&rule]);
    let sink = rejects_sink(client, "https://sqs.eu-west-1.amazonaws.com/1/rejects");
    let message = RejectedMessage {
        dropped_events: None,
        body: "x",
        reason: Reason::MalformedJson,
        detail: "",
        source_message_id: "m-3",
        group_id: None,
    };
    let results = sink.send_batch(&[message.clone(), message]).await;
    assert_eq!(results.len(), 2);
    for result in results {
        let error = result.unwrap_err();
        assert!(error.contains("QueueDoesNotExist"), "{error}");
    }
}

#[tokio::test]
async fn a_batch_is_read_entry_by_entry() {
    // Entry 1 failed, entry 2 is in neither list: only entry 0 is stored.
    let rule = mock!(aws_sdk_sqs::Client::send_message_batch)
        .match_requests(|req| {
            req.entries().iter().map(|e| e.id()).collect::<Vec<_>>() == ["0", "1", "2"]
        })
        .then_output(|| {
            SendMessageBatchOutput::builder()
                .successful(sqs_ok("0"))
                .failed(
                    BatchResultErrorEntry::builder()
                        .id("1")
                        .sender_fault(false)
                        .code("InternalError")
                        .message("try again")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap()
        });
    let client = mock_client!(aws_sdk_sqs, [&rule]);
    let sink = rejects_sink(client, "https://sqs.eu-west-1.amazonaws.com/1/rejects");
    let message = |id| RejectedMessage {
        dropped_events: None,
        body: "x",
        reason: Reason::MalformedJson,
        detail: "d",
        source_message_id: id,
        group_id: None,
    };
    let results = sink
        .send_batch(&[message("a"), message("b"), message("c")])
        .await;
    assert_eq!(results[0], Ok(()));
    assert!(
        results[1]
            .as_ref()
            .unwrap_err()
            .contains("InternalError: try again")
    );
    assert!(results[2].is_err());
}

#[tokio::test]
async fn a_body_at_the_size_limit_is_sent_whole_without_the_attributes_that_do_not_fit() {
    // SQS counts attributes toward its 1 MiB: a body that leaves no room is
    // sent whole, without attributes, rather than refused on every retry.
    let body = "%".repeat(1024 * 1024 - 20);
    let expected = body.clone();
    let rule = mock!(aws_sdk_sqs::Client::send_message_batch)
        .match_requests(move |req| {
            let entry = &req.entries()[0];
            let attributes = entry.message_attributes().map_or(0, |a| a.len());
            let size: usize = entry.message_body().len()
                + entry.message_attributes().map_or(0, |a| {
                    a.iter()
                        .map(|(k, v)| {
                            k.len() + v.data_type().len() + v.string_value().unwrap_or("").len()
                        })
                        .sum()
                });
            entry.message_body() == expected && attributes == 0 && size <= 1024 * 1024
        })
        .then_output(first_entry_sent);
    let client = mock_client!(aws_sdk_sqs, [&rule]);
    let sink = rejects_sink(client, "https://sqs.eu-west-1.amazonaws.com/1/rejects");
    let message = RejectedMessage {
        dropped_events: None,
        body: &body,
        reason: Reason::InvalidBase64,
        detail: "invalid base64 character at offset 0",
        source_message_id: "3f1c9a7e-0000-4000-8000-000000000001",
        group_id: None,
    };
    assert_eq!(sink.send_batch(&[message]).await, [Ok(())]);
    assert_eq!(rule.num_calls(), 1);
}

/// One HTTP request as a loopback server received it.
struct Received {
    request_line: String,
    headers: Vec<(String, String)>,
    body: serde_json::Value,
}

/// Serves one connection on the loopback: reads one request, answers `answer`
/// (a JSON 1.0 body), and hands the request over.
async fn one_request(answer: &'static str) -> (String, tokio::task::JoinHandle<Received>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let served = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let mut reader = BufReader::new(read);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).await.unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            let Some((name, value)) = line.trim_end().split_once(':') else {
                break;
            };
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap();
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await.unwrap();
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        );
        write.write_all(response.as_bytes()).await.unwrap();
        write.shutdown().await.unwrap();
        Received {
            request_line,
            headers,
            body: serde_json::from_slice(&body).unwrap(),
        }
    });
    (address, served)
}

/// The URL of a re-send is built from the queue's ARN (no GetQueueUrl, so
/// no `sqs:GetQueueUrl` on the role), and the SDK sends it as the
/// `QueueUrl` parameter of a request to the client's own endpoint: here an
/// endpoint override, as `AWS_ENDPOINT_URL` gives one, which the emulators
/// answer by the account and name in the URL's path.
#[tokio::test]
async fn a_resend_is_one_send_message_to_the_configured_endpoint_with_the_url_built_from_the_arn() {
    use edr_preprocessor::aws::SqsResendSink;
    use edr_preprocessor::resume::{Resend, ResendSink};
    let (address, served) = one_request(r#"{"MessageId":"copy-1"}"#).await;
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("eu-west-1"))
        .endpoint_url(format!("http://{address}"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .build();
    let sink = SqsResendSink::new(aws_sdk_sqs::Client::from_conf(config));
    let message = Resend {
        source_arn: "arn:aws:sqs:eu-west-1:123456789012:submissions",
        body: "eyJ9",
        group_id: Some("tenant-7"),
        marker: "3/00".into(),
        delay_seconds: 0,
        source_message_id: "m-1",
    };
    assert_eq!(sink.resend(&message).await, Ok(()));
    let request = served.await.unwrap();
    let header = |name: &str| {
        (request.headers.iter())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(request.request_line.trim_end(), "POST / HTTP/1.1");
    assert_eq!(header("host"), Some(address.as_str()));
    assert_eq!(header("x-amz-target"), Some("AmazonSQS.SendMessage"));
    assert_eq!(
        request.body["QueueUrl"],
        "https://sqs.eu-west-1.amazonaws.com/123456789012/submissions"
    );
    assert_eq!(request.body["MessageBody"], "eyJ9");
    assert_eq!(request.body["MessageGroupId"], "tenant-7");
    assert_eq!(
        request.body["MessageAttributes"]["edr_resume_from"]["StringValue"],
        "3/00"
    );
}

#[tokio::test]
async fn a_copy_goes_back_with_its_marker_its_delay_and_its_fair_queue_group() {
    use aws_sdk_sqs::operation::send_message::SendMessageOutput;
    use edr_preprocessor::aws::SqsResendSink;
    use edr_preprocessor::resume::{RESUME_ATTRIBUTE, Resend, ResendSink};

    const URL: &str = "https://sqs.eu-west-1.amazonaws.com/123456789012/submissions";
    let send = mock!(aws_sdk_sqs::Client::send_message)
        .match_requests(|req| {
            let marker = (req.message_attributes())
                .and_then(|a| a.get(RESUME_ATTRIBUTE))
                .and_then(|v| v.string_value());
            req.queue_url() == Some(URL)
                && req.message_body() == Some("body")
                && marker == Some("v3/4/3/1048576/-/00")
                && req.delay_seconds() == Some(900)
                && req.message_group_id() == Some("tenant-7")
        })
        .then_output(|| SendMessageOutput::builder().build());
    let client = mock_client!(aws_sdk_sqs, [&send]);
    let sink = SqsResendSink::new(client);
    let copy = Resend {
        source_arn: "arn:aws:sqs:eu-west-1:123456789012:submissions",
        body: "body",
        group_id: Some("tenant-7"),
        marker: "v3/4/3/1048576/-/00".into(),
        // More than SQS takes: sent as its largest delay.
        delay_seconds: 901,
        source_message_id: "m-1",
    };
    assert_eq!(sink.resend(&copy).await, Ok(()));
    assert_eq!(send.num_calls(), 1);
}
