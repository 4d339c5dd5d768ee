//! Packing user records into aggregated Kinesis records that never exceed
//! the stream's record limit.
//!
//! Kinesis counts a record as its data plus its partition key. The
//! aggregator keeps the exact length of the message it is building, so a
//! record is closed at the last user record that fits, never after it.
//!
//! One aggregated record holds user records of one partition key and one
//! explicit hash key: the record lands on the shard its own key names, and
//! the KCL drops the user records of an aggregated record whose key hashes
//! outside that shard (`AggregatorUtil.deaggregate`). A user record with
//! another key closes the record and opens the next one, so the key tables
//! hold one entry each.

use std::fmt;

use super::format::{self, FRAME_LEN, Record};

/// A Kinesis record the aggregator made, ready for PutRecords.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisRecord {
    /// The record's partition key: its user records'.
    pub partition_key: String,
    /// The record's explicit hash key: its user records'.
    pub explicit_hash_key: Option<String>,
    /// The aggregated record's bytes.
    pub data: Vec<u8>,
    /// How many user records it holds, in the order they were pushed.
    pub user_records: usize,
}

impl KinesisRecord {
    /// What Kinesis counts against its record limit: data and partition key.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// A user record that does not fit in an aggregated record even alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    /// The size of the Kinesis record it alone would make.
    pub record_size: usize,
    /// The limit.
    pub max_record_bytes: usize,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an aggregated record of {} bytes exceeds the Kinesis record limit of {} bytes",
            self.record_size, self.max_record_bytes
        )
    }
}

impl std::error::Error for TooLarge {}

/// The size of the Kinesis record that a user record alone makes
/// (partition key, magic, key tables, the record's entry, MD5).
pub fn record_size_alone(
    partition_key: &str,
    explicit_hash_key: Option<&str>,
    data_len: usize,
) -> usize {
    partition_key.len()
        + FRAME_LEN
        + tables_len(partition_key, explicit_hash_key)
        + entry_len(explicit_hash_key, data_len)
}

/// Builds aggregated records from user records pushed in order.
#[derive(Debug)]
pub struct Aggregator {
    max_record_bytes: usize,
    message: format::AggregatedRecord,
    /// `message.encoded_len()`, kept as records are added.
    message_len: usize,
}

impl Aggregator {
    /// An aggregator of records of at most `max_record_bytes` (data plus
    /// partition key, as Kinesis counts them).
    pub fn new(max_record_bytes: usize) -> Self {
        Aggregator {
            max_record_bytes,
            message: format::AggregatedRecord::default(),
            message_len: 0,
        }
    }

    /// The user records in the open record.
    pub fn len(&self) -> usize {
        self.message.records.len()
    }

    /// No open record.
    pub fn is_empty(&self) -> bool {
        self.message.records.is_empty()
    }

    /// Adds a user record. When it does not fit in the open record (full, or
    /// of another key) that record is closed and returned, and the user
    /// record opens the next. A user record too large for a record of its
    /// own is refused and nothing changes.
    pub fn push(
        &mut self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data: &[u8],
    ) -> Result<Option<KinesisRecord>, TooLarge> {
        let entry = entry_len(explicit_hash_key, data.len());
        if self.is_open_for(partition_key, explicit_hash_key)
            && partition_key.len() + FRAME_LEN + self.message_len + entry <= self.max_record_bytes
        {
            self.add(explicit_hash_key, data, entry);
            return Ok(None);
        }
        let record_size = record_size_alone(partition_key, explicit_hash_key, data.len());
        if record_size > self.max_record_bytes {
            return Err(TooLarge {
                record_size,
                max_record_bytes: self.max_record_bytes,
            });
        }
        let closed = self.flush();
        self.message
            .partition_key_table
            .push(partition_key.as_bytes().to_vec());
        self.message
            .explicit_hash_key_table
            .extend(explicit_hash_key.map(|k| k.as_bytes().to_vec()));
        self.message_len = tables_len(partition_key, explicit_hash_key);
        self.add(explicit_hash_key, data, entry);
        Ok(closed)
    }

    /// Closes the open record, if there is one.
    pub fn flush(&mut self) -> Option<KinesisRecord> {
        if self.is_empty() {
            return None;
        }
        let message = std::mem::take(&mut self.message);
        self.message_len = 0;
        let data = format::frame(&message);
        let key = |table: Vec<Vec<u8>>| {
            table
                .into_iter()
                .next()
                .map(|k| String::from_utf8_lossy(&k).into_owned())
        };
        Some(KinesisRecord {
            user_records: message.records.len(),
            partition_key: key(message.partition_key_table).unwrap_or_default(),
            explicit_hash_key: key(message.explicit_hash_key_table),
            data,
        })
    }

    fn is_open_for(&self, partition_key: &str, explicit_hash_key: Option<&str>) -> bool {
        !self.is_empty()
            && self.message.partition_key_table.first().map(Vec::as_slice)
                == Some(partition_key.as_bytes())
            && self
                .message
                .explicit_hash_key_table
                .first()
                .map(Vec::as_slice)
                == explicit_hash_key.map(str::as_bytes)
    }

    fn add(&mut self, explicit_hash_key: Option<&str>, data: &[u8], entry: usize) {
        self.message.records.push(Record {
            partition_key_index: Some(0),
            explicit_hash_key_index: explicit_hash_key.map(|_| 0),
            data: Some(data.to_vec()),
            tags: Vec::new(),
        });
        self.message_len += entry;
    }
}

/// Every user record pushed, in order, as aggregated records; what
/// [`Aggregator`] makes for a list known in advance.
pub fn aggregate<'a>(
    records: impl IntoIterator<Item = (&'a str, Option<&'a str>, &'a [u8])>,
    max_record_bytes: usize,
) -> Result<Vec<KinesisRecord>, TooLarge> {
    let mut aggregator = Aggregator::new(max_record_bytes);
    let mut out = Vec::new();
    for (partition_key, explicit_hash_key, data) in records {
        out.extend(aggregator.push(partition_key, explicit_hash_key, data)?);
    }
    out.extend(aggregator.flush());
    Ok(out)
}

/// The key tables of a record of one partition key and explicit hash key.
fn tables_len(partition_key: &str, explicit_hash_key: Option<&str>) -> usize {
    format::delimited_len(partition_key.len())
        + explicit_hash_key.map_or(0, |k| format::delimited_len(k.len()))
}

/// A user record's entry in `records`: key index 0 (two bytes), the
/// explicit hash key index 0 (two bytes) if any, and the data.
fn entry_len(explicit_hash_key: Option<&str>, data_len: usize) -> usize {
    let record = 2 + explicit_hash_key.map_or(0, |_| 2) + format::delimited_len(data_len);
    format::delimited_len(record)
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::aggregate::deaggregate;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| i as u8).collect()
    }

    #[test]
    fn the_tracked_length_is_the_encoded_length() {
        for ehk in [None, Some("1234567890")] {
            let mut a = Aggregator::new(usize::MAX);
            for len in [0, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
                assert_eq!(a.push("pk", ehk, &data(len)), Ok(None));
                assert_eq!(
                    a.message_len,
                    a.message.encoded_len(),
                    "after a record of {len} bytes"
                );
            }
            let message_len = a.message_len;
            assert_eq!(a.flush().unwrap().data.len(), FRAME_LEN + message_len);
        }
    }

    #[test]
    fn a_record_alone_is_exactly_its_predicted_size() {
        for ehk in [None, Some("170141183460469231731687303715884105728")] {
            for len in [0, 1, 127, 128, 16_384, 1 << 20] {
                let out = aggregate([("device-1", ehk, &data(len)[..])], usize::MAX).unwrap();
                assert_eq!(out[0].size(), record_size_alone("device-1", ehk, len));
            }
        }
    }

    #[test]
    fn records_fill_up_to_the_limit_and_never_past_it() {
        let one = record_size_alone("pk", None, 100);
        let entry = entry_len(None, 100);
        // Room for exactly three user records, then exactly one byte short of four.
        for (limit, per_record) in [
            (one + 2 * entry, 3),
            (one + 3 * entry - 1, 3),
            (one + 3 * entry, 4),
        ] {
            let d = data(100);
            let out = aggregate(std::iter::repeat_n(("pk", None, &d[..]), 10), limit).unwrap();
            assert!(out.iter().all(|r| r.size() <= limit));
            assert_eq!(out[0].user_records, per_record, "limit {limit}");
            assert_eq!(out.iter().map(|r| r.user_records).sum::<usize>(), 10);
            if per_record == 3 && limit == one + 2 * entry {
                assert_eq!(out[0].size(), limit, "a full record is filled to the byte");
            }
        }
    }

    #[test]
    fn a_change_of_key_closes_the_record() {
        let out = aggregate(
            [
                ("a", None, &b"1"[..]),
                ("a", None, b"2"),
                ("b", None, b"3"),
                ("b", Some("7"), b"4"),
                ("b", Some("7"), b"5"),
            ],
            usize::MAX,
        )
        .unwrap();
        let keys: Vec<_> = out
            .iter()
            .map(|r| {
                (
                    r.partition_key.as_str(),
                    r.explicit_hash_key.as_deref(),
                    r.user_records,
                )
            })
            .collect();
        assert_eq!(keys, [("a", None, 2), ("b", None, 1), ("b", Some("7"), 2)]);
        let back = deaggregate(&out[2].data, "b").unwrap();
        assert_eq!(
            back.iter()
                .map(|u| u.explicit_hash_key.as_deref())
                .collect::<Vec<_>>(),
            [Some("7"), Some("7")]
        );
    }

    #[test]
    fn a_user_record_too_large_alone_is_refused_and_the_open_record_kept() {
        let limit = record_size_alone("pk", None, 10);
        let mut a = Aggregator::new(limit);
        assert_eq!(a.push("pk", None, &data(5)), Ok(None));
        assert_eq!(
            a.push("pk", None, &data(11)),
            Err(TooLarge {
                record_size: limit + 1,
                max_record_bytes: limit
            })
        );
        assert_eq!(a.len(), 1);
        assert_eq!(a.flush().unwrap().user_records, 1);
        assert_eq!(a.flush(), None);
        assert_eq!(
            aggregate([("pk", None, &data(10)[..])], limit)
                .unwrap()
                .len(),
            1
        );
    }
}
