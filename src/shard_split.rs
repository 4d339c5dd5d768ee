//! Noticing that a submission's records landed on more than one shard.
//!
//! Per-submission order rests on Kinesis putting every record of a
//! submission on one shard: they share a partition key (and, under keyed
//! placement, an `ExplicitHashKey`). Two things break that without an error:
//!
//! - the stream uses service-managed record distribution
//!   (`UpdateStreamRecordDistributionStrategy` `AUTO`, on-demand streams, a
//!   switch that takes effect at once): Kinesis then ignores the partition
//!   key and the `ExplicitHashKey`, and "ordering is not applicable";
//! - the stream was resharded while the submission was being written: its
//!   later records go to a child shard, and order holds only for readers
//!   that follow shard lineage (the KCL, Lambda's Kinesis trigger), not for
//!   one that reads each shard on its own.
//!
//! PutRecords names the shard of every acknowledged entry, so the function
//! notices at no cost: a submission acknowledged on more than one shard in
//! an invocation counts in `SubmissionsSplitAcrossShards`, and one ERROR
//! line per invocation names the likely causes. At start-up the Kinesis
//! adapter also reads the stream's record distribution strategy once, off
//! the invocation path (`aws::kinesis`).

use uuid::Uuid;

/// A submission whose records were acknowledged on more than one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSplit<'a> {
    /// Its SQS message id.
    pub message_id: Option<&'a str>,
    /// Its id.
    pub submission_id: Uuid,
    /// The shards, in the order Kinesis first named them.
    pub shards: &'a [String],
}

/// What the ERROR line says: what happened and what to look at.
const SPLIT_MESSAGE: &str = "records of one submission were acknowledged on more than one \
     shard: a reader of one shard no longer sees the submission in order. Likely causes: the \
     stream uses service-managed record distribution (RecordDistributionStrategy AUTO, which \
     ignores partition keys and ExplicitHashKey), or it was resharded during the invocation \
     (order then holds only for readers that follow shard lineage)";

/// Logs the invocation's splits, if any, in one ERROR line: how many, and
/// the first one's ids and shards.
pub fn log(splits: &[ShardSplit<'_>]) {
    let Some(first) = splits.first() else {
        return;
    };
    tracing::error!(
        submissions_split = splits.len(),
        message_id = first.message_id,
        submission_id = %first.submission_id,
        shards = crate::logging::bounded(&first.shards.join(","), 256).as_str(),
        "{SPLIT_MESSAGE}"
    );
}
