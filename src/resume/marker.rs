//! The resume marker: the progress a copy carries, and the proof that this
//! function wrote it.
//!
//! A sensor writes its SQS message whole, message attributes included, so a
//! marker it wrote itself would make the function skip events and still
//! report the submission published. The function therefore honours only a
//! marker whose MAC verifies under the marker key of `PIPELINE_KEY`
//! ([`crate::keys`]), which sensors never see:
//!
//! `v3/{next}/{hop}/{accounted_limit}/{hash_key}/{mac}`
//!
//! - `next`: the `sequence` of the submission's first event not yet
//!   acknowledged;
//! - `hop`: how many copies of the message the function has sent, this one
//!   included (the loop bound and the delay of the next copy rest on it);
//! - `accounted_limit`: the record limit, in bytes, under which the events
//!   dropped at or after `next` were already stored, logged and counted
//!   (`INVALID_EVENTS=drop-event`): a copy read under a lower limit accounts
//!   for the events that limit drops besides;
//! - `hash_key`: the `ExplicitHashKey` the first delivery's records carried,
//!   32 lowercase hex digits, or `-` if they carried none: a copy's records
//!   carry it too, so that every copy lands on that delivery's shard,
//!   although the copy has a message id of its own (`crate::keys`);
//! - `mac`: lowercase hex HMAC-SHA256 over the format version, the three
//!   numbers, the hash key, the SHA-256 of the document and the source
//!   queue's ARN (`eventSourceARN`), each framed by its length.
//!
//! So a marker is bound to one document on one queue: moved onto other
//! content or another queue, or altered, it no longer verifies; a sensor
//! can neither skip its events nor choose its copies' shard with one. Why
//! a MAC and not the message's `SenderId`: docs/guarantees.md, section 9.
//! Each marker has one spelling (no leading zeros, lowercase hex), so no
//! variant of a genuine marker reads back.

use crate::encode::hex;
use crate::keys::PipelineKey;

/// The format version, the marker's first field and the MAC's first part.
pub const VERSION: &str = "v3";

/// The longest marker: the version, `next` and `accounted_limit` of up to
/// 20 digits, `hop` of up to 10, the hash key's 32 hex digits, the MAC's
/// 64 and 5 slashes.
pub const MAX_MARKER_BYTES: usize = VERSION.len() + 20 + 10 + 20 + 32 + 64 + 5;

/// The `hash_key` field of a delivery whose records carried no
/// `ExplicitHashKey` (`SHARD_PLACEMENT=partition-key`).
const NO_HASH_KEY: &str = "-";

/// What a marker the function wrote says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The `sequence` of the first event not yet acknowledged.
    pub next: usize,
    /// Copies sent so far, this one included (a first delivery is hop 0).
    pub hop: u32,
    /// The record limit (bytes) under which the events dropped at or after
    /// `next` were already stored, logged and counted.
    pub accounted_limit: usize,
    /// The `ExplicitHashKey` of the first delivery's records, if they
    /// carried one: the copy's records carry the same.
    pub hash_key: Option<u128>,
}

/// Why a marker is not honoured: the delivery is published from its first
/// event, as if it carried none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// Not of the current format (an older version's marker, or garbage).
    Malformed,
    /// Its MAC does not verify: written by someone else, or for another
    /// document, another queue, or under another `PIPELINE_KEY`.
    BadMac,
    /// On a FIFO queue, where the function never writes one.
    FifoSource,
    /// No `PIPELINE_KEY` to verify it with (`RESUME=off` and
    /// `SHARD_PLACEMENT=partition-key`).
    NoKey,
}

impl Ignored {
    /// The reason code in the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Ignored::Malformed => "malformed",
            Ignored::BadMac => "bad_mac",
            Ignored::FifoSource => "fifo_source",
            Ignored::NoKey => "no_key",
        }
    }
}

/// The marker for `progress` of the document with `document_sha256`, read
/// from the queue `source_arn`.
pub fn write(
    key: &PipelineKey,
    progress: Progress,
    document_sha256: &[u8; 32],
    source_arn: &str,
) -> String {
    let tag = tag(key, progress, document_sha256, source_arn);
    let Progress {
        next,
        hop,
        accounted_limit,
        hash_key,
    } = progress;
    let hash_key = hash_key.map_or_else(|| NO_HASH_KEY.to_owned(), |h| format!("{h:032x}"));
    let mac = hex(&tag);
    format!(
        "{VERSION}/{next}/{hop}/{accounted_limit}/{hash_key}/{}",
        String::from_utf8_lossy(&mac)
    )
}

/// The progress `marker` carries, if the function wrote it for this
/// document on this queue.
pub fn read(
    key: Option<&PipelineKey>,
    marker: &str,
    document_sha256: &[u8; 32],
    source_arn: Option<&str>,
) -> Result<Progress, Ignored> {
    if source_arn.is_some_and(|arn| arn.ends_with(".fifo")) {
        return Err(Ignored::FifoSource);
    }
    let (progress, mac) = parse(marker).ok_or(Ignored::Malformed)?;
    let key = key.ok_or(Ignored::NoKey)?;
    let parts = Parts::new(progress, document_sha256, source_arn.unwrap_or_default());
    if key.verify_marker_tag(&parts.as_slices(), &mac) {
        Ok(progress)
    } else {
        Err(Ignored::BadMac)
    }
}

fn tag(
    key: &PipelineKey,
    progress: Progress,
    document_sha256: &[u8; 32],
    source_arn: &str,
) -> [u8; 32] {
    let parts = Parts::new(progress, document_sha256, source_arn);
    key.marker_tag(&parts.as_slices())
}

/// What the MAC covers, numbers as 8-byte big-endian integers, the hash
/// key as 16 (none: empty).
struct Parts<'a> {
    next: [u8; 8],
    hop: [u8; 8],
    accounted_limit: [u8; 8],
    hash_key: Option<[u8; 16]>,
    document_sha256: &'a [u8; 32],
    source_arn: &'a str,
}

impl<'a> Parts<'a> {
    fn new(progress: Progress, document_sha256: &'a [u8; 32], source_arn: &'a str) -> Self {
        Parts {
            next: (progress.next as u64).to_be_bytes(),
            hop: u64::from(progress.hop).to_be_bytes(),
            accounted_limit: (progress.accounted_limit as u64).to_be_bytes(),
            hash_key: progress.hash_key.map(u128::to_be_bytes),
            document_sha256,
            source_arn,
        }
    }

    fn as_slices(&self) -> [&[u8]; 7] {
        [
            VERSION.as_bytes(),
            &self.next,
            &self.hop,
            &self.accounted_limit,
            self.hash_key.as_ref().map_or(&[], |h| h.as_slice()),
            self.document_sha256,
            self.source_arn.as_bytes(),
        ]
    }
}

/// The fields of a marker of the current format: digits only, a hash key
/// of exactly 32 lowercase hex digits or `-`, and exactly 64 lowercase hex
/// digits of MAC.
fn parse(marker: &str) -> Option<(Progress, [u8; 32])> {
    let mut fields = marker.split('/');
    if fields.next()? != VERSION {
        return None;
    }
    let next = digits(fields.next()?, 20)?;
    let hop = digits(fields.next()?, 10)?;
    let accounted_limit = digits(fields.next()?, 20)?;
    let hash_key = match fields.next()? {
        NO_HASH_KEY => None,
        field => Some(u128::from_be_bytes(unhex::<16>(field)?)),
    };
    let mac = unhex::<32>(fields.next()?)?;
    if fields.next().is_some() {
        return None;
    }
    let progress = Progress {
        next: usize::try_from(next).ok()?,
        hop: u32::try_from(hop).ok()?,
        accounted_limit: usize::try_from(accounted_limit).ok()?,
        hash_key,
    };
    Some((progress, mac))
}

/// A decimal number of 1 to `max_len` ASCII digits (no sign, no blank), in
/// its one spelling: no leading zero unless it is `0` itself, so that a
/// marker has exactly one text and no variant of a genuine one reads back.
fn digits(field: &str, max_len: usize) -> Option<u64> {
    let plain = (1..=max_len).contains(&field.len())
        && field.bytes().all(|b| b.is_ascii_digit())
        && (field == "0" || !field.starts_with('0'));
    plain.then(|| field.parse().ok()).flatten()
}

/// `2 * N` lowercase hex digits as `N` bytes.
fn unhex<const N: usize>(field: &str) -> Option<[u8; N]> {
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    if field.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(field.as_bytes().chunks_exact(2)) {
        let [high, low] = pair else { return None };
        *byte = (nibble(*high)? << 4) | nibble(*low)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:sqs:eu-west-1:123456789012:submissions";
    /// A hash key whose hex has leading zeros: written at its full width.
    const HASH_KEY: u128 = 0x00ab_cdef_0123_4567_89ab_cdef_0123_4567;
    const HASH_HEX: &str = "00abcdef0123456789abcdef01234567";

    fn key() -> PipelineKey {
        PipelineKey::from_secret(crate::config::TEST_PIPELINE_KEY.as_bytes()).unwrap()
    }

    fn progress(next: usize) -> Progress {
        Progress {
            next,
            hop: 3,
            accounted_limit: 1024 * 1024,
            hash_key: Some(HASH_KEY),
        }
    }

    #[test]
    fn a_marker_the_function_wrote_reads_back_on_its_document_and_queue() {
        let marker = write(&key(), progress(4), &[7; 32], ARN);
        let prefix = format!("v3/4/3/1048576/{HASH_HEX}/");
        assert!(marker.starts_with(&prefix), "{marker}");
        assert_eq!(marker.len(), prefix.len() + 64);
        assert_eq!(
            read(Some(&key()), &marker, &[7; 32], Some(ARN)),
            Ok(progress(4))
        );
        let unkeyed = Progress {
            hash_key: None,
            ..progress(4)
        };
        let marker = write(&key(), unkeyed, &[7; 32], ARN);
        assert!(marker.starts_with("v3/4/3/1048576/-/"), "{marker}");
        assert_eq!(
            read(Some(&key()), &marker, &[7; 32], Some(ARN)),
            Ok(unkeyed)
        );
    }

    #[test]
    fn any_other_marker_is_ignored_with_its_reason() {
        let key = key();
        let marker = write(&key, progress(4), &[7; 32], ARN);
        let read = |m: &str, digest: &[u8; 32], arn: &str| read(Some(&key), m, digest, Some(arn));
        assert_eq!(
            read(&marker, &[8; 32], ARN),
            Err(Ignored::BadMac),
            "other document"
        );
        let other_queue = "arn:aws:sqs:eu-west-1:123456789012:other";
        assert_eq!(read(&marker, &[7; 32], other_queue), Err(Ignored::BadMac));
        let fifo = "arn:aws:sqs:eu-west-1:123456789012:submissions.fifo";
        let on_fifo = write(&key, progress(4), &[7; 32], fifo);
        assert_eq!(read(&on_fifo, &[7; 32], fifo), Err(Ignored::FifoSource));
        // Each field altered, the MAC kept: a sensor cannot move the
        // progress, nor choose the hash key (the shard) of the copy.
        let mac = marker.rsplit('/').next().unwrap();
        let other_hash = format!("{:032x}", HASH_KEY + 1);
        for altered in [
            format!("v3/5/3/1048576/{HASH_HEX}"),
            format!("v3/4/4/1048576/{HASH_HEX}"),
            format!("v3/4/3/1048575/{HASH_HEX}"),
            format!("v3/4/3/1048576/{other_hash}"),
            "v3/4/3/1048576/-".to_owned(),
        ] {
            let forged = format!("{altered}/{mac}");
            assert_eq!(
                read(&forged, &[7; 32], ARN),
                Err(Ignored::BadMac),
                "{forged}"
            );
        }
        let other_key = PipelineKey::from_secret(&[b'k'; 32]).unwrap();
        let foreign = write(&other_key, progress(4), &[7; 32], ARN);
        assert_eq!(read(&foreign, &[7; 32], ARN), Err(Ignored::BadMac));
        // The formats of earlier versions, and other garbage.
        let first = format!("4/{}", "07".repeat(32));
        let second = format!("v2/4/3/1048576/{mac}");
        let upper = marker.to_uppercase().replace("V3", "v3");
        let zeros = "0".repeat(64);
        for bad in [
            first.as_str(),
            second.as_str(),
            "",
            "v3",
            "v3/4/3/1048576",
            &format!("v3/4/3/1048576/{HASH_HEX}"),
            &format!("v3/4/3/1048576/{HASH_HEX}/{mac}/"),
            &format!("v3/+4/3/1048576/{HASH_HEX}/{mac}"),
            &format!("v3/4/ 3/1048576/{HASH_HEX}/{mac}"),
            &format!("v3/4/3/1048576/{HASH_HEX}/{}", &mac[..63]),
            &format!("v3/4/3/1048576/{}/{mac}", &HASH_HEX[..31]),
            &format!("v3/4/3/1048576/abcdef0123456789abcdef01234567/{mac}"),
            &format!("v3/4/3/1048576//{mac}"),
            &format!("v3/4/99999999999/1048576/-/{zeros}"),
            &format!("v4/4/3/1048576/{HASH_HEX}/{mac}"),
            &upper,
        ] {
            assert_eq!(read(bad, &[7; 32], ARN), Err(Ignored::Malformed), "{bad}");
        }
        assert_eq!(
            super::read(None, &marker, &[7; 32], Some(ARN)),
            Err(Ignored::NoKey)
        );
        assert_eq!(
            super::read(Some(&key), &marker, &[7; 32], None),
            Err(Ignored::BadMac),
            "no source queue to bind it to"
        );
    }

    #[test]
    fn each_marker_has_one_spelling_no_leading_zero() {
        let key = key();
        let zero = Progress {
            next: 0,
            hop: 0,
            accounted_limit: 0,
            hash_key: Some(0),
        };
        let marker = write(&key, zero, &[7; 32], ARN);
        let zeros = "0".repeat(32);
        assert!(
            marker.starts_with(&format!("v3/0/0/0/{zeros}/")),
            "{marker}"
        );
        assert_eq!(read(Some(&key), &marker, &[7; 32], Some(ARN)), Ok(zero));
        let genuine = write(&key, progress(4), &[7; 32], ARN);
        let mac = genuine.rsplit('/').next().unwrap();
        // The same numbers, padded: the MAC would verify, the text is refused.
        for padded in [
            "v3/04/3/1048576",
            "v3/004/3/1048576",
            "v3/4/03/1048576",
            "v3/4/3/01048576",
            "v3/00/3/1048576",
        ] {
            let padded = format!("{padded}/{HASH_HEX}/{mac}");
            assert_eq!(
                read(Some(&key), &padded, &[7; 32], Some(ARN)),
                Err(Ignored::Malformed),
                "{padded}"
            );
        }
    }

    #[test]
    fn the_longest_marker_fits_the_room_kept_for_it() {
        let longest = Progress {
            next: usize::MAX,
            hop: u32::MAX,
            accounted_limit: usize::MAX,
            hash_key: Some(u128::MAX),
        };
        let marker = write(&key(), longest, &[0; 32], ARN);
        assert_eq!(marker.len(), MAX_MARKER_BYTES);
        assert_eq!(
            read(Some(&key()), &marker, &[0; 32], Some(ARN)),
            Ok(longest)
        );
    }
}
