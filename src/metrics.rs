//! Per-invocation metrics in CloudWatch Embedded Metric Format (EMF).
//!
//! EMF documents are plain JSON lines on stdout that CloudWatch Logs turns
//! into metrics, so metrics cost no API call and no latency in the handler.
//! Every metric carries the `FunctionName` dimension; rejections are also
//! broken down by `Reason`. The names here are the contract with dashboards
//! and alarms: [`METRIC_NAMES`] lists them all. What the messages of a
//! batch count for is `counts` ([`crate::batch::Batch::count`]).

mod counts;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::model::Reason;

/// SQS messages in the batch.
pub const SUBMISSIONS_RECEIVED: &str = "SubmissionsReceived";
/// Invalid submissions acknowledged.
pub const SUBMISSIONS_REJECTED: &str = "SubmissionsRejected";
/// Valid submissions fully published and acknowledged.
pub const SUBMISSIONS_PUBLISHED: &str = "SubmissionsPublished";
/// Messages reported in `batchItemFailures`.
pub const SUBMISSIONS_FAILED: &str = "SubmissionsFailed";
/// Partly published submissions sent back to their queue with their
/// progress, and acknowledged (`crate::resume`).
pub const SUBMISSIONS_RESENT: &str = "SubmissionsResent";
/// Messages whose resume marker was ignored, because this function did not
/// write it for that document on that queue: they are published from their
/// first event (`crate::resume::marker`).
pub const RESUME_MARKERS_IGNORED: &str = "ResumeMarkersIgnored";
/// Events of the published submissions.
pub const EVENTS_PUBLISHED: &str = "EventsPublished";
/// Invalid events left out of published submissions
/// (`INVALID_EVENTS=drop-event`), by reason.
pub const EVENTS_DROPPED: &str = "EventsDropped";
/// PutRecords requests made.
pub const PUT_RECORDS_CALLS: &str = "PutRecordsCalls";
/// Records sent again after a failed or unanswered send.
pub const RECORDS_RETRIED: &str = "RecordsRetried";
/// Valid submissions whose records were acknowledged on more than one
/// shard in the invocation (`crate::shard_split`): their order is lost for
/// readers of one shard.
pub const SUBMISSIONS_SPLIT_ACROSS_SHARDS: &str = "SubmissionsSplitAcrossShards";
/// Time spent publishing, in milliseconds.
pub const PUBLISH_LATENCY: &str = "PublishLatency";

/// Every metric name the function emits.
pub const METRIC_NAMES: [&str; 12] = [
    SUBMISSIONS_RECEIVED,
    SUBMISSIONS_REJECTED,
    SUBMISSIONS_PUBLISHED,
    SUBMISSIONS_FAILED,
    SUBMISSIONS_RESENT,
    RESUME_MARKERS_IGNORED,
    EVENTS_PUBLISHED,
    EVENTS_DROPPED,
    PUT_RECORDS_CALLS,
    RECORDS_RETRIED,
    SUBMISSIONS_SPLIT_ACROSS_SHARDS,
    PUBLISH_LATENCY,
];

/// The dimension every metric carries, and the one rejections add.
pub const DIMENSION_FUNCTION: &str = "FunctionName";
/// The dimension that breaks `SubmissionsRejected` and `EventsDropped`
/// down by reason code.
pub const DIMENSION_REASON: &str = "Reason";

/// What one invocation did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvocationMetrics {
    /// Messages in the batch.
    pub received: u64,
    /// Valid submissions (for the summary log; not a metric of its own).
    pub valid: u64,
    /// Invalid submissions acknowledged, by reason.
    pub rejected: BTreeMap<Reason, u64>,
    /// Valid submissions fully published and acknowledged.
    pub published: u64,
    /// Messages reported in `batchItemFailures` (all of them when the whole
    /// batch is failed).
    pub failed: u64,
    /// Partly published submissions sent back to their queue with their
    /// progress, and acknowledged.
    pub resent: u64,
    /// Messages whose resume marker was ignored.
    pub resume_markers_ignored: u64,
    /// Records of the published submissions.
    pub events_published: u64,
    /// Events dropped from the published submissions, by reason.
    pub events_dropped: BTreeMap<Reason, u64>,
    /// PutRecords requests made.
    pub put_records_calls: u64,
    /// Records sent again.
    pub records_retried: u64,
    /// Valid submissions acknowledged on more than one shard.
    pub split_across_shards: u64,
    /// Time spent publishing.
    pub publish_latency_ms: f64,
}

impl InvocationMetrics {
    /// Invalid submissions acknowledged, all reasons together.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Events dropped, all reasons together.
    pub fn dropped_total(&self) -> u64 {
        self.events_dropped.values().sum()
    }

    /// The EMF documents: one with the totals, one per rejection reason and
    /// one per reason of dropped events.
    pub fn to_emf(&self, namespace: &str, function_name: &str, timestamp_ms: u64) -> Vec<Value> {
        let counts = [
            (SUBMISSIONS_RECEIVED, self.received),
            (SUBMISSIONS_REJECTED, self.rejected_total()),
            (SUBMISSIONS_PUBLISHED, self.published),
            (SUBMISSIONS_FAILED, self.failed),
            (SUBMISSIONS_RESENT, self.resent),
            (RESUME_MARKERS_IGNORED, self.resume_markers_ignored),
            (EVENTS_PUBLISHED, self.events_published),
            (EVENTS_DROPPED, self.dropped_total()),
            (PUT_RECORDS_CALLS, self.put_records_calls),
            (RECORDS_RETRIED, self.records_retried),
            (SUBMISSIONS_SPLIT_ACROSS_SHARDS, self.split_across_shards),
        ];
        let mut definitions: Vec<Value> = counts
            .iter()
            .map(|(name, _)| json!({"Name": name, "Unit": "Count"}))
            .collect();
        definitions.push(json!({"Name": PUBLISH_LATENCY, "Unit": "Milliseconds"}));
        let mut totals = document(namespace, timestamp_ms, &[DIMENSION_FUNCTION], definitions);
        totals.insert(DIMENSION_FUNCTION.into(), function_name.into());
        for (name, value) in counts {
            totals.insert(name.into(), value.into());
        }
        totals.insert(PUBLISH_LATENCY.into(), json!(self.publish_latency_ms));

        let mut documents = vec![Value::Object(totals)];
        let by_reason = (self.rejected.iter().map(|r| (SUBMISSIONS_REJECTED, r)))
            .chain(self.events_dropped.iter().map(|r| (EVENTS_DROPPED, r)));
        for (name, (reason, count)) in by_reason {
            let definitions = vec![json!({"Name": name, "Unit": "Count"})];
            let mut doc = document(
                namespace,
                timestamp_ms,
                &[DIMENSION_FUNCTION, DIMENSION_REASON],
                definitions,
            );
            doc.insert(DIMENSION_FUNCTION.into(), function_name.into());
            doc.insert(DIMENSION_REASON.into(), reason.as_str().into());
            doc.insert(name.into(), (*count).into());
            documents.push(Value::Object(doc));
        }
        documents
    }

    /// The summary line of the invocation (INFO), `elapsed` its duration.
    pub fn log_summary(&self, elapsed: Duration) {
        tracing::info!(
            received = self.received,
            valid = self.valid,
            rejected = self.rejected_total(),
            published = self.published,
            failed = self.failed,
            resent = self.resent,
            resume_markers_ignored = self.resume_markers_ignored,
            records = self.events_published,
            events_dropped = self.dropped_total(),
            calls = self.put_records_calls,
            retries = self.records_retried,
            split_across_shards = self.split_across_shards,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "batch processed"
        );
    }

    /// Writes the EMF documents to stdout, one line each, in one write.
    pub fn emit(&self, namespace: &str, function_name: &str, timestamp_ms: u64) {
        let mut lines = String::new();
        for doc in self.to_emf(namespace, function_name, timestamp_ms) {
            lines.push_str(&doc.to_string());
            lines.push('\n');
        }
        // `print!` (not a locked handle) so test harnesses capture it.
        print!("{lines}");
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it): EMF
/// timestamps, and the reference for Lambda's deadline.
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn document(
    namespace: &str,
    timestamp_ms: u64,
    dimensions: &[&str],
    metrics: Vec<Value>,
) -> Map<String, Value> {
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [dimensions],
                "Metrics": metrics,
            }],
        }),
    );
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> InvocationMetrics {
        InvocationMetrics {
            received: 10,
            valid: 7,
            rejected: BTreeMap::from([
                (Reason::InvalidDestinationIp, 2),
                (Reason::InvalidSubmissionId, 1),
            ]),
            published: 6,
            failed: 1,
            resent: 0,
            resume_markers_ignored: 2,
            events_published: 48,
            events_dropped: BTreeMap::new(),
            put_records_calls: 8,
            records_retried: 3,
            split_across_shards: 2,
            publish_latency_ms: 12.5,
        }
    }

    #[test]
    fn totals_document_is_valid_emf_with_every_metric() {
        let docs = sample().to_emf("Ns", "fn", 1_700_000_000_000);
        let totals = &docs[0];
        let directive = &totals["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(totals["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert_eq!(directive["Namespace"], "Ns");
        assert_eq!(directive["Dimensions"], json!([["FunctionName"]]));
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, METRIC_NAMES);
        assert_eq!(totals["FunctionName"], "fn");
        assert_eq!(totals[SUBMISSIONS_RECEIVED], 10);
        assert_eq!(totals[SUBMISSIONS_REJECTED], 3);
        assert_eq!(totals[SUBMISSIONS_PUBLISHED], 6);
        assert_eq!(totals[SUBMISSIONS_FAILED], 1);
        assert_eq!(totals[EVENTS_PUBLISHED], 48);
        assert_eq!(totals[PUT_RECORDS_CALLS], 8);
        assert_eq!(totals[RECORDS_RETRIED], 3);
        assert_eq!(totals[PUBLISH_LATENCY], 12.5);
        assert_eq!(totals[EVENTS_DROPPED], 0);
        assert_eq!(totals[SUBMISSIONS_RESENT], 0);
        assert_eq!(totals[SUBMISSIONS_SPLIT_ACROSS_SHARDS], 2);
        assert_eq!(totals[RESUME_MARKERS_IGNORED], 2);
        assert_eq!(directive["Metrics"][11]["Unit"], "Milliseconds");
    }

    #[test]
    fn dropped_events_are_counted_and_broken_down_by_reason() {
        let mut metrics = sample();
        metrics.events_dropped =
            BTreeMap::from([(Reason::NullValue, 4), (Reason::InvalidDestinationPort, 1)]);
        let docs = metrics.to_emf("Ns", "fn", 1);
        assert_eq!(docs[0][EVENTS_DROPPED], 5);
        let dropped: Vec<(&str, u64)> = docs[3..]
            .iter()
            .map(|d| {
                assert_eq!(
                    d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
                    EVENTS_DROPPED
                );
                (
                    d["Reason"].as_str().unwrap(),
                    d[EVENTS_DROPPED].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            dropped,
            [("null_value", 4), ("invalid_destination_port", 1)]
        );
    }

    #[test]
    fn rejections_are_broken_down_by_reason() {
        let docs = sample().to_emf("Ns", "fn", 1);
        assert_eq!(docs.len(), 3);
        let by_reason: Vec<(String, u64)> = docs[1..]
            .iter()
            .map(|d| {
                assert_eq!(
                    d["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
                    json!([["FunctionName", "Reason"]])
                );
                (
                    d["Reason"].as_str().unwrap().to_owned(),
                    d[SUBMISSIONS_REJECTED].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            by_reason,
            [
                ("invalid_submission_id".to_owned(), 1),
                ("invalid_destination_ip".to_owned(), 2)
            ]
        );
    }
}
