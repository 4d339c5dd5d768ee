//! The resume marker: the progress a copy carries, and the proof that this
//! function wrote it.
//!
//! A sensor writes its SQS message whole, message attributes included, so a
//! marker it wrote itself would make the function skip events and still
//! report the submission published. The function therefore honours only a
//! marker whose MAC verifies under the marker key of `PIPELINE_KEY`
//! ([`crate::keys`]), which sensors never see:
//!
//! `v2/{next}/{hop}/{accounted_limit}/{mac}`
//!
//! - `next`: the `sequence` of the submission's first event not yet
//!   acknowledged;
//! - `hop`: how many copies of the message the function has sent, this one
//!   included (the loop bound and the delay of the next copy rest on it);
//! - `accounted_limit`: the record limit, in bytes, under which the events
//!   dropped at or after `next` were already stored, logged and counted
//!   (`INVALID_EVENTS=drop-event`): a copy read under a lower limit accounts
//!   for the events that limit drops besides;
//! - `mac`: lowercase hex HMAC-SHA256 over the format version, the three
//!   numbers, the SHA-256 of the document and the source queue's ARN
//!   (`eventSourceARN`), each framed by its length.
//!
//! So a marker is bound to one document on one queue: moved onto other
//! content or another queue, or altered, it no longer verifies. Why a MAC
//! and not the message's `SenderId`: docs/guarantees.md, section 9.

use crate::encode::hex;
use crate::keys::PipelineKey;

/// The format version, the marker's first field and the MAC's first part.
pub const VERSION: &str = "v2";

/// The longest marker: the version, `next` and `accounted_limit` of up to
/// 20 digits, `hop` of up to 10, the MAC's 64 hex digits and 4 slashes.
pub const MAX_MARKER_BYTES: usize = VERSION.len() + 20 + 10 + 20 + 64 + 4;

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
    } = progress;
    let mac = hex(&tag);
    format!(
        "{VERSION}/{next}/{hop}/{accounted_limit}/{}",
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

/// What the MAC covers, numbers as 8-byte big-endian integers.
struct Parts<'a> {
    next: [u8; 8],
    hop: [u8; 8],
    accounted_limit: [u8; 8],
    document_sha256: &'a [u8; 32],
    source_arn: &'a str,
}

impl<'a> Parts<'a> {
    fn new(progress: Progress, document_sha256: &'a [u8; 32], source_arn: &'a str) -> Self {
        Parts {
            next: (progress.next as u64).to_be_bytes(),
            hop: u64::from(progress.hop).to_be_bytes(),
            accounted_limit: (progress.accounted_limit as u64).to_be_bytes(),
            document_sha256,
            source_arn,
        }
    }

    fn as_slices(&self) -> [&[u8]; 6] {
        [
            VERSION.as_bytes(),
            &self.next,
            &self.hop,
            &self.accounted_limit,
            self.document_sha256,
            self.source_arn.as_bytes(),
        ]
    }
}

/// The fields of a marker of the current format: digits only, and exactly
/// 64 lowercase hex digits of MAC.
fn parse(marker: &str) -> Option<(Progress, [u8; 32])> {
    let mut fields = marker.split('/');
    if fields.next()? != VERSION {
        return None;
    }
    let next = digits(fields.next()?, 20)?;
    let hop = digits(fields.next()?, 10)?;
    let accounted_limit = digits(fields.next()?, 20)?;
    let mac = unhex(fields.next()?)?;
    if fields.next().is_some() {
        return None;
    }
    let progress = Progress {
        next: usize::try_from(next).ok()?,
        hop: u32::try_from(hop).ok()?,
        accounted_limit: usize::try_from(accounted_limit).ok()?,
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

/// 64 lowercase hex digits as 32 bytes.
fn unhex(field: &str) -> Option<[u8; 32]> {
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    if field.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
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

    fn key() -> PipelineKey {
        PipelineKey::from_secret(crate::config::TEST_PIPELINE_KEY.as_bytes()).unwrap()
    }

    fn progress(next: usize) -> Progress {
        Progress {
            next,
            hop: 3,
            accounted_limit: 1024 * 1024,
        }
    }

    #[test]
    fn a_marker_the_function_wrote_reads_back_on_its_document_and_queue() {
        let marker = write(&key(), progress(4), &[7; 32], ARN);
        assert!(marker.starts_with("v2/4/3/1048576/"), "{marker}");
        assert_eq!(marker.len(), "v2/4/3/1048576/".len() + 64);
        assert_eq!(
            read(Some(&key()), &marker, &[7; 32], Some(ARN)),
            Ok(progress(4))
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
        // Each field altered, the MAC kept.
        let mac = marker.rsplit('/').next().unwrap();
        for altered in ["v2/5/3/1048576", "v2/4/4/1048576", "v2/4/3/1048575"] {
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
        // The format of the first version, and other garbage.
        let old = format!("4/{}", "07".repeat(32));
        let upper = marker.to_uppercase().replace("V2", "v2");
        let zeros = "0".repeat(64);
        for bad in [
            old.as_str(),
            "",
            "v2",
            "v2/4/3/1048576",
            &format!("v2/4/3/1048576/{mac}/"),
            &format!("v2/+4/3/1048576/{mac}"),
            &format!("v2/4/ 3/1048576/{mac}"),
            &format!("v2/4/3/1048576/{}", &mac[..63]),
            &format!("v2/4/99999999999/1048576/{zeros}"),
            &format!("v3/4/3/1048576/{mac}"),
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
        };
        let marker = write(&key, zero, &[7; 32], ARN);
        assert!(marker.starts_with("v2/0/0/0/"), "{marker}");
        assert_eq!(read(Some(&key), &marker, &[7; 32], Some(ARN)), Ok(zero));
        let genuine = write(&key, progress(4), &[7; 32], ARN);
        let mac = genuine.rsplit('/').next().unwrap();
        // The same numbers, padded: the MAC would verify, the text is refused.
        for padded in [
            "v2/04/3/1048576",
            "v2/004/3/1048576",
            "v2/4/03/1048576",
            "v2/4/3/01048576",
            "v2/00/3/1048576",
        ] {
            let padded = format!("{padded}/{mac}");
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
        };
        let marker = write(&key(), longest, &[0; 32], ARN);
        assert_eq!(marker.len(), MAX_MARKER_BYTES);
        assert_eq!(
            read(Some(&key()), &marker, &[0; 32], Some(ARN)),
            Ok(longest)
        );
    }
}
