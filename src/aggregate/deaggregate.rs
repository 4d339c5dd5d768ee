//! Reading the user records out of a Kinesis record, aggregated or not, the
//! way the KCL (`AggregatorUtil.deaggregate`) and awslabs' kinesis-aggregation
//! libraries do.
//!
//! A record is aggregated when it starts with the magic, has more than the
//! 16-byte digest after it, its MD5 matches, and its message parses with
//! every required field. Anything else (a plain record, a wrong digest, a
//! message protobuf refuses) is not aggregated, and comes back whole as one
//! user record with the record's own partition key, as those libraries
//! return it. A record that passes all of that but has a user record
//! naming a key its tables do not have is a producer's bug: the KCL and
//! awslabs' Python library log an error, keep the user records before it
//! and drop the rest; this one returns a [`DeaggregationError`] for the
//! whole record and lets the consumer decide.
//!
//! The bytes come from the stream: nothing here panics on any input
//! (`fuzz/fuzz_targets/deaggregate.rs`), and memory is bounded by a constant
//! times the record's size (protobuf's decoder allocates only what the
//! input holds).

use std::fmt;

use prost::Message;

use super::format::{self, AggregatedRecord};

/// One user record of a Kinesis record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The user record's data.
    pub data: Vec<u8>,
    /// Its partition key (the Kinesis record's when not aggregated).
    pub partition_key: String,
    /// Its explicit hash key, if the aggregated record gives one (Kinesis
    /// does not return a plain record's).
    pub explicit_hash_key: Option<String>,
    /// Its position in the aggregated record, from 0 (0 when not
    /// aggregated): with the Kinesis record's sequence number, the user
    /// record's place in the shard (the KCL's `subSequenceNumber`).
    pub sub_sequence_number: u64,
    /// Whether it came out of an aggregated record.
    pub aggregated: bool,
}

/// An aggregated record whose user records cannot all be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeaggregationError {
    /// User record `record` names a partition key past the table's end.
    PartitionKeyIndex {
        /// The user record's position.
        record: usize,
        /// The index it names.
        index: u64,
    },
    /// User record `record` names an explicit hash key past the table's end.
    ExplicitHashKeyIndex {
        /// The user record's position.
        record: usize,
        /// The index it names.
        index: u64,
    },
}

impl DeaggregationError {
    /// The reason code, for a log line or a metric.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeaggregationError::PartitionKeyIndex { .. } => "PartitionKeyIndexOutOfRange",
            DeaggregationError::ExplicitHashKeyIndex { .. } => "ExplicitHashKeyIndexOutOfRange",
        }
    }
}

impl fmt::Display for DeaggregationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (table, record, index) = match self {
            DeaggregationError::PartitionKeyIndex { record, index } => {
                ("partition key", record, index)
            }
            DeaggregationError::ExplicitHashKeyIndex { record, index } => {
                ("explicit hash key", record, index)
            }
        };
        write!(
            f,
            "{}: user record {record} names {table} {index}, past the table's end",
            self.as_str()
        )
    }
}

impl std::error::Error for DeaggregationError {}

/// The user records of a Kinesis record's `data`, whose partition key is
/// `partition_key`.
pub fn deaggregate(
    data: &[u8],
    partition_key: &str,
) -> Result<Vec<UserRecord>, DeaggregationError> {
    match parse(data) {
        Some(message) => user_records(message),
        None => Ok(vec![UserRecord {
            data: data.to_vec(),
            partition_key: partition_key.to_owned(),
            explicit_hash_key: None,
            sub_sequence_number: 0,
            aggregated: false,
        }]),
    }
}

/// Whether `data` is an aggregated record (see the module's rules).
pub fn is_aggregated(data: &[u8]) -> bool {
    parse(data).is_some()
}

fn parse(data: &[u8]) -> Option<AggregatedRecord> {
    let message = AggregatedRecord::decode(format::unframe(data)?).ok()?;
    message.is_initialized().then_some(message)
}

fn user_records(message: AggregatedRecord) -> Result<Vec<UserRecord>, DeaggregationError> {
    let key = |table: &[Vec<u8>], index: u64| {
        let entry = usize::try_from(index).ok().and_then(|i| table.get(i))?;
        Some(String::from_utf8_lossy(entry).into_owned())
    };
    let mut out = Vec::with_capacity(message.records.len());
    for (position, record) in message.records.into_iter().enumerate() {
        let index = record.partition_key_index.unwrap_or_default();
        let partition_key = key(&message.partition_key_table, index).ok_or(
            DeaggregationError::PartitionKeyIndex {
                record: position,
                index,
            },
        )?;
        let explicit_hash_key = match record.explicit_hash_key_index {
            Some(index) => Some(key(&message.explicit_hash_key_table, index).ok_or(
                DeaggregationError::ExplicitHashKeyIndex {
                    record: position,
                    index,
                },
            )?),
            None => None,
        };
        out.push(UserRecord {
            data: record.data.unwrap_or_default(),
            partition_key,
            explicit_hash_key,
            sub_sequence_number: position as u64,
            aggregated: true,
        });
    }
    Ok(out)
}

/// The user records of a record of a Lambda Kinesis event (the event source
/// mapping hands a function the records as they are on the stream).
#[cfg(any(test, feature = "kinesis-event"))]
pub fn deaggregate_event_record(
    record: &aws_lambda_events::event::kinesis::KinesisEventRecord,
) -> Result<Vec<UserRecord>, DeaggregationError> {
    deaggregate(&record.kinesis.data, &record.kinesis.partition_key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::format::{Record, Tag, frame};

    fn record(pk: Option<u64>, ehk: Option<u64>, data: Option<&[u8]>) -> Record {
        Record {
            partition_key_index: pk,
            explicit_hash_key_index: ehk,
            data: data.map(<[u8]>::to_vec),
            tags: vec![],
        }
    }

    fn message(records: Vec<Record>) -> AggregatedRecord {
        AggregatedRecord {
            partition_key_table: vec![b"a".to_vec(), b"b".to_vec()],
            explicit_hash_key_table: vec![b"42".to_vec()],
            records,
        }
    }

    fn whole(data: &[u8]) -> Vec<UserRecord> {
        vec![UserRecord {
            data: data.to_vec(),
            partition_key: "outer".into(),
            explicit_hash_key: None,
            sub_sequence_number: 0,
            aggregated: false,
        }]
    }

    #[test]
    fn user_records_come_out_in_order_with_their_keys() {
        let bytes = frame(&message(vec![
            record(Some(1), None, Some(b"x")),
            record(Some(0), Some(0), Some(b"")),
            record(Some(1), None, Some(b"z")),
        ]));
        let out = deaggregate(&bytes, "outer").unwrap();
        let got: Vec<_> = out
            .iter()
            .map(|u| {
                (
                    u.data.as_slice(),
                    u.partition_key.as_str(),
                    u.explicit_hash_key.as_deref(),
                    u.sub_sequence_number,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (&b"x"[..], "b", None, 0),
                (b"", "a", Some("42"), 1),
                (b"z", "b", None, 2)
            ]
        );
        assert!(out.iter().all(|u| u.aggregated));
        assert!(is_aggregated(&bytes));
    }

    #[test]
    fn a_record_that_is_not_aggregated_comes_back_whole() {
        let good = frame(&message(vec![record(Some(0), None, Some(b"x"))]));
        let mut bad_md5 = good.clone();
        *bad_md5.last_mut().unwrap() ^= 0x80;
        let missing_data = frame(&message(vec![record(Some(0), None, None)]));
        let missing_pk = frame(&message(vec![record(None, None, Some(b"x"))]));
        let mut tag_without_key = message(vec![record(Some(0), None, Some(b"x"))]);
        tag_without_key.records[0].tags.push(Tag {
            key: None,
            value: Some(b"v".to_vec()),
        });
        let tag_without_key = frame(&tag_without_key);
        // A varint field 3 where a message is expected: protobuf refuses it.
        let mut wrong_wire_type = format::MAGIC.to_vec();
        wrong_wire_type.extend_from_slice(&[0x18, 1]);
        wrong_wire_type.extend_from_slice(&<md5::Md5 as md5::Digest>::digest([0x18, 1]));
        let plain_json = br#"{"event_id":"x"}"#.to_vec();
        for data in [
            bad_md5,
            missing_data,
            missing_pk,
            tag_without_key,
            wrong_wire_type,
            plain_json,
            vec![],
            format::MAGIC.to_vec(),
        ] {
            assert_eq!(deaggregate(&data, "outer"), Ok(whole(&data)), "{data:?}");
        }
    }

    #[test]
    fn unknown_fields_and_tags_are_read_past() {
        let mut m = message(vec![record(Some(0), None, Some(b"x"))]);
        m.records[0].tags.push(Tag {
            key: Some(b"k".to_vec()),
            value: None,
        });
        let mut body = prost::Message::encode_to_vec(&m);
        body.extend_from_slice(&[0x28, 7]); // field 5, a varint
        let mut data = format::MAGIC.to_vec();
        data.extend_from_slice(&body);
        data.extend_from_slice(&<md5::Md5 as md5::Digest>::digest(&body));
        assert_eq!(deaggregate(&data, "outer").unwrap()[0].data, b"x");
    }

    #[test]
    fn keys_past_the_tables_are_an_error() {
        let bytes = frame(&message(vec![
            record(Some(0), None, Some(b"x")),
            record(Some(2), None, Some(b"y")),
        ]));
        assert_eq!(
            deaggregate(&bytes, "o"),
            Err(DeaggregationError::PartitionKeyIndex {
                record: 1,
                index: 2
            })
        );
        let bytes = frame(&message(vec![record(Some(0), Some(u64::MAX), Some(b"x"))]));
        let e = deaggregate(&bytes, "o").unwrap_err();
        assert_eq!(
            e,
            DeaggregationError::ExplicitHashKeyIndex {
                record: 0,
                index: u64::MAX
            }
        );
        assert!(
            e.to_string()
                .starts_with("ExplicitHashKeyIndexOutOfRange: user record 0")
        );
    }

    #[test]
    fn keys_that_are_not_utf8_are_read_as_java_reads_them() {
        let mut m = message(vec![record(Some(0), None, Some(b"x"))]);
        m.partition_key_table[0] = vec![b'a', 0xFF];
        assert_eq!(
            deaggregate(&frame(&m), "o").unwrap()[0].partition_key,
            "a\u{FFFD}"
        );
    }

    #[test]
    fn a_lambda_event_record_is_read_from_its_data_and_partition_key() {
        let data = frame(&message(vec![record(Some(1), None, Some(b"x"))]));
        let event = serde_json::json!({"Records": [{
            "kinesis": {"data": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &data),
                        "partitionKey": "outer", "sequenceNumber": "4960", "approximateArrivalTimestamp": 1.5e9,
                        "kinesisSchemaVersion": "1.0"},
            "eventSource": "aws:kinesis"}]});
        let event: aws_lambda_events::event::kinesis::KinesisEvent =
            serde_json::from_value(event).unwrap();
        let out = deaggregate_event_record(&event.records[0]).unwrap();
        assert_eq!(
            (out[0].data.as_slice(), out[0].partition_key.as_str()),
            (&b"x"[..], "b")
        );
        let mut plain = event.records[0].clone();
        plain.kinesis.data.0 = b"plain".to_vec();
        assert_eq!(
            deaggregate_event_record(&plain).unwrap()[0].partition_key,
            "outer"
        );
    }

    #[test]
    fn an_aggregated_record_of_no_user_record_has_none() {
        assert_eq!(deaggregate(&frame(&message(vec![])), "o"), Ok(vec![]));
    }
}
