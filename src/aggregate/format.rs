//! The KPL aggregated record format, byte for byte
//! (awslabs/amazon-kinesis-producer, `aggregation-format.md`):
//!
//! ```text
//! F3 89 9A C2 | protobuf AggregatedRecord | MD5 of the protobuf bytes (16 bytes)
//! ```
//!
//! The messages are proto2. Their required fields are declared optional
//! here, so that decoding can tell a field that is absent from one that
//! holds its default: a message without one is malformed, as protobuf's own
//! Java and Python parsers (KCL's, awslabs') say, and the record is then
//! not an aggregated record ([`super::deaggregate`](mod@super::deaggregate)). The string fields are
//! read as bytes: proto2 does not promise UTF-8 and Java's parser does not
//! check it, so neither do we (invalid sequences are replaced, as Java's
//! `String` conversion does). On the wire `string` and `bytes` are the same.

use md5::{Digest, Md5};
use prost::Message;

/// The four bytes every aggregated record starts with.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// The length of the MD5 trailer.
pub const DIGEST_LEN: usize = 16;

/// The bytes a record has besides its protobuf message.
pub const FRAME_LEN: usize = MAGIC.len() + DIGEST_LEN;

/// `message AggregatedRecord`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct AggregatedRecord {
    /// `repeated string partition_key_table = 1`.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub partition_key_table: Vec<Vec<u8>>,
    /// `repeated string explicit_hash_key_table = 2`.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<Vec<u8>>,
    /// `repeated Record records = 3`.
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<Record>,
}

/// `message Record`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Record {
    /// `required uint64 partition_key_index = 1`.
    #[prost(uint64, optional, tag = "1")]
    pub partition_key_index: Option<u64>,
    /// `optional uint64 explicit_hash_key_index = 2`.
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    /// `required bytes data = 3`.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub data: Option<Vec<u8>>,
    /// `repeated Tag tags = 4` (neither the KPL nor the KCL use them).
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<Tag>,
}

/// `message Tag`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Tag {
    /// `required string key = 1`.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub key: Option<Vec<u8>>,
    /// `optional string value = 2`.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub value: Option<Vec<u8>>,
}

impl AggregatedRecord {
    /// Every required field of every record is present.
    pub fn is_initialized(&self) -> bool {
        self.records.iter().all(|r| {
            r.partition_key_index.is_some()
                && r.data.is_some()
                && r.tags.iter().all(|t| t.key.is_some())
        })
    }
}

/// The whole record: magic, `message`, and the MD5 of `message`'s bytes.
pub(crate) fn frame(message: &AggregatedRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_LEN + message.encoded_len());
    out.extend_from_slice(&MAGIC);
    message.encode_raw(&mut out);
    let digest = Md5::digest(out.get(MAGIC.len()..).unwrap_or_default());
    out.extend_from_slice(&digest);
    out
}

/// The protobuf bytes of `data` if it has the frame of an aggregated record:
/// the magic, at least one byte of message (KCL and awslabs' libraries
/// require more than the digest after the magic) and a matching MD5.
pub(crate) fn unframe(data: &[u8]) -> Option<&[u8]> {
    let rest = data.strip_prefix(&MAGIC)?;
    if rest.len() <= DIGEST_LEN {
        return None;
    }
    let (message, digest) = rest.split_at(rest.len() - DIGEST_LEN);
    (Md5::digest(message).as_slice() == digest).then_some(message)
}

/// The bytes a length-delimited field of `len` bytes takes in a message
/// (every field of the format has a one-byte key).
pub(crate) fn delimited_len(len: usize) -> usize {
    1 + prost::length_delimiter_len(len) + len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_magic_message_md5() {
        let message = AggregatedRecord {
            partition_key_table: vec![b"pk".to_vec()],
            explicit_hash_key_table: vec![],
            records: vec![Record {
                partition_key_index: Some(0),
                explicit_hash_key_index: None,
                data: Some(b"hello".to_vec()),
                tags: vec![],
            }],
        };
        let bytes = frame(&message);
        // Field 1 "pk", field 3 { field 1 = 0, field 3 "hello" }, by hand.
        let body = [
            0x0A, 2, b'p', b'k', 0x1A, 9, 0x08, 0, 0x1A, 5, b'h', b'e', b'l', b'l', b'o',
        ];
        assert_eq!(bytes[..4], MAGIC);
        assert_eq!(bytes[4..bytes.len() - 16], body);
        // MD5 of the body, computed apart: hashlib.md5(body).hexdigest().
        let md5: Vec<u8> = (0..16)
            .map(|i| {
                u8::from_str_radix(&"a0c542099cb3e82cf61924bc8e5c5c15"[2 * i..][..2], 16).unwrap()
            })
            .collect();
        assert_eq!(bytes[bytes.len() - 16..], md5[..]);
        assert_eq!(unframe(&bytes), Some(&body[..]));
        assert_eq!(bytes.len(), FRAME_LEN + message.encoded_len());
    }

    #[test]
    fn unframe_refuses_what_the_kcl_refuses() {
        let good = frame(&AggregatedRecord::default());
        // An empty message: magic then the digest alone is "not aggregated".
        assert_eq!(good.len(), FRAME_LEN);
        assert_eq!(unframe(&good), None);
        let mut body = MAGIC.to_vec();
        body.push(0x0A);
        body.push(0);
        body.extend_from_slice(&Md5::digest([0x0A, 0]));
        assert_eq!(unframe(&body), Some(&[0x0A, 0][..]));
        let mut bad_digest = body.clone();
        *bad_digest.last_mut().unwrap() ^= 1;
        assert_eq!(unframe(&bad_digest), None);
        let mut bad_magic = body.clone();
        bad_magic[0] = 0xF2;
        assert_eq!(unframe(&bad_magic), None);
        assert_eq!(unframe(&MAGIC[..3]), None);
        assert_eq!(unframe(b""), None);
    }

    #[test]
    fn delimited_len_counts_key_length_and_bytes() {
        assert_eq!(delimited_len(0), 2);
        assert_eq!(delimited_len(127), 129);
        assert_eq!(delimited_len(128), 131);
        assert_eq!(delimited_len(16_383), 16_386);
        assert_eq!(delimited_len(16_384), 16_388);
    }
}
