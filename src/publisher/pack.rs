//! Packing lanes into PutRecords calls, within Kinesis' request limits.
//!
//! Strict lanes give one record to a call, relaxed lanes a whole run (the
//! rest of the submission); a call takes the heads of ready lanes in turn
//! until it is full. Which lane is ready, and how far each got, is
//! [`Flight`]'s business; this file only decides what goes into one call.

use std::sync::Arc;

use bytes::Bytes;

use crate::config::Ordering;
use crate::encode::EncodedSubmission;
use crate::publisher::format;
use crate::publisher::sink::OutboundRecord;
use crate::publisher::state::{Flight, Part};

/// Kinesis' limits on one PutRecords request: 500 records and 10 MiB of data
/// plus partition keys (the limit since records of up to 10 MiB came in).
pub const MAX_RECORDS_PER_CALL: usize = 500;
/// See [`MAX_RECORDS_PER_CALL`].
pub const MAX_BYTES_PER_CALL: usize = 10 * 1024 * 1024;

/// A call being filled.
#[derive(Default)]
struct Call {
    parts: Vec<Part>,
    records: Vec<OutboundRecord>,
    bytes: usize,
}

impl Call {
    fn has_room_for(&self, records: usize, bytes: usize) -> bool {
        self.records.len() + records <= MAX_RECORDS_PER_CALL
            && self.bytes + bytes <= MAX_BYTES_PER_CALL
    }

    /// Takes the records of `run`, all of `sub`, in order, while they fit;
    /// returns how many. The request limit counts data and partition keys,
    /// not explicit hash keys.
    fn take(&mut self, run: &[Bytes], sub: &EncodedSubmission) -> usize {
        let mut taken = 0;
        for data in run {
            let size = data.len() + sub.partition_key.len();
            if !self.has_room_for(1, size) {
                break;
            }
            self.records.push(OutboundRecord {
                partition_key: Arc::clone(&sub.partition_key),
                explicit_hash_key: sub.explicit_hash_key.clone(),
                data: data.clone(),
            });
            self.bytes += size;
            taken += 1;
        }
        taken
    }
}

/// Whether a run of several records should wait for an empty call rather
/// than be split: its tail could only be sent after the head's call came
/// back, costing a round trip.
fn wait_for_empty_call(call: &Call, run: &[Bytes], partition_key: &str) -> bool {
    if run.len() <= 1 || call.records.is_empty() {
        return false;
    }
    let bytes: usize = run.iter().map(|d| d.len() + partition_key.len()).sum();
    let fits_alone = run.len() <= MAX_RECORDS_PER_CALL && bytes <= MAX_BYTES_PER_CALL;
    !call.has_room_for(run.len(), bytes) && fits_alone
}

impl Flight<'_, '_> {
    /// Takes the runs of ready lanes, in order, until the call is full.
    pub(super) fn pack(&mut self) -> Option<(Vec<Part>, Vec<OutboundRecord>)> {
        let mut call = Call::default();
        while let Some(&lane_index) = self.ready.front() {
            let (Some(lane), ordering) = (self.lanes.get_mut(lane_index), self.publisher.ordering)
            else {
                self.ready.pop_front();
                continue;
            };
            let Some((s, sub)) = lane
                .submission()
                .and_then(|s| Some((s, self.submissions.get(s)?)))
            else {
                self.ready.pop_front();
                continue;
            };
            let records = format::records(sub, self.outbound.get(s));
            let remaining = records.get(lane.next..).unwrap_or_default();
            let run = match ordering {
                Ordering::Strict => remaining.get(..1).unwrap_or_default(),
                Ordering::Relaxed => remaining,
            };
            if wait_for_empty_call(&call, run, &sub.partition_key) {
                break;
            }
            let taken = call.take(run, sub);
            if taken == 0 {
                break;
            }
            self.ready.pop_front();
            let start = lane.next;
            let resent = lane.sent_upto.saturating_sub(start).min(taken);
            self.stats.records_retried += resent as u64;
            lane.sent_upto = lane.sent_upto.max(start + taken);
            call.parts.push(Part {
                lane: lane_index,
                start,
                len: taken,
            });
            if taken < run.len() {
                break;
            }
        }
        self.stats.records_sent += call.records.len() as u64;
        (!call.parts.is_empty()).then_some((call.parts, call.records))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::encode::EncodedSubmission;
    use crate::publisher::Publisher;
    use tokio::time::Instant;

    fn submissions(sizes: &[(usize, usize)]) -> Vec<EncodedSubmission> {
        sizes
            .iter()
            .enumerate()
            .map(|(n, &(records, bytes))| EncodedSubmission {
                submission_id: uuid::Uuid::from_u128(n as u128),
                device_id: uuid::Uuid::nil(),
                partition_key: Arc::from("k"),
                // The longest ExplicitHashKey (2^128 - 1, 39 digits).
                explicit_hash_key: Some(Arc::from(u128::MAX.to_string())),
                records: (0..records)
                    .map(|_| Bytes::from(vec![b'x'; bytes - 1]))
                    .collect(),
                dropped: Vec::new(),
                document_sha256: [0; 32],
                skipped: 0,
            })
            .collect()
    }

    fn publisher(ordering: &str) -> Publisher {
        let config = Config::from_lookup(|k| match k {
            "STREAM_NAME" => Some("events".into()),
            "ORDERING" => Some(ordering.into()),
            "PIPELINE_KEY" => Some(crate::config::TEST_PIPELINE_KEY.into()),
            _ => None,
        })
        .unwrap();
        Publisher::from_config(&config)
    }

    /// The records of each call, packing until nothing is ready; every call
    /// is answered "all written" before the next is packed.
    fn calls(ordering: &str, subs: &[EncodedSubmission]) -> Vec<Vec<(usize, usize)>> {
        let publisher = publisher(ordering);
        let lanes = (0..subs.len()).map(|i| vec![i]).collect();
        let far = Instant::now() + std::time::Duration::from_secs(60);
        let mut flight = Flight::new(&publisher, subs, lanes, far);
        let mut out = Vec::new();
        while let Some((parts, records)) = flight.pack() {
            out.push(parts.iter().map(|p| (p.lane, p.len)).collect());
            let written = records
                .iter()
                .map(|_| crate::publisher::EntryResult::WRITTEN);
            flight.apply(parts, Ok(written.collect()));
        }
        out
    }

    #[test]
    fn strict_calls_take_one_record_of_each_lane_up_to_500() {
        let subs = submissions(&vec![(2, 100); 501]);
        let calls = calls("strict", &subs);
        let sizes: Vec<usize> = calls.iter().map(Vec::len).collect();
        // 1,002 records: the lanes answered first go on first.
        assert_eq!(sizes, [500, 500, 2]);
        assert!(calls.iter().flatten().all(|&(_, len)| len == 1));
        for call in &calls {
            let lanes: std::collections::HashSet<usize> = call.iter().map(|p| p.0).collect();
            assert_eq!(lanes.len(), call.len(), "one record of a lane per call");
        }
    }

    #[test]
    fn calls_hold_at_most_ten_mebibytes() {
        // 1 MiB records (with the partition key): ten to a call. Their
        // explicit hash keys do not count toward the limit, as Kinesis
        // counts a record as data plus partition key.
        let subs = submissions(&vec![(1, 1024 * 1024); 25]);
        let sizes: Vec<usize> = calls("strict", &subs).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5]);
    }

    #[test]
    fn relaxed_runs_that_fit_an_empty_call_are_not_split() {
        // Runs of 300: the second does not fit beside the first, so it waits
        // for the next call instead of being cut in two.
        let subs = submissions(&[(300, 10), (300, 10), (100, 10)]);
        let calls = calls("relaxed", &subs);
        assert_eq!(calls, [vec![(0, 300)], vec![(1, 300), (2, 100)]]);
    }

    #[test]
    fn a_relaxed_run_longer_than_a_call_is_cut_at_the_limit() {
        let subs = submissions(&[(1200, 10)]);
        let calls = calls("relaxed", &subs);
        assert_eq!(calls, [vec![(0, 500)], vec![(0, 500)], vec![(0, 200)]]);
    }
}
