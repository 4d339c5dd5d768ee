//! The deployment's secret, which the sensors never see, and the two keys
//! derived from it.
//!
//! A sensor writes its SQS message whole, body and message attributes alike
//! (SQS does not separate the two), and it chooses the ids the partition key
//! is made of. Two decisions of the function must therefore rest on
//! something a sensor cannot compute:
//!
//! - whether a resume marker was written by this function (a sensor that
//!   forges one would make the function skip its events and still report
//!   the submission published): the marker carries an HMAC under the
//!   *marker key* (`crate::resume`);
//! - which shard a submission lands on (a sensor that grinds ids whose MD5
//!   falls in one shard's hash range aims its whole volume at the shard other
//!   devices share): the `ExplicitHashKey` is an HMAC under the *placement
//!   key* (`crate::encode`) of the partition key and, for a `submission_id`,
//!   of the SQS message id of the message's first delivery, which SQS
//!   assigns: a sensor that sends every message under one `submission_id`
//!   (or the same document again and again) still spreads over the stream.
//!
//! Both are derived from one secret, `PIPELINE_KEY` (docs/contract.md), by
//! HMAC-SHA256 with a label each, so that neither key can be computed from
//! the other and one setting provisions both. The template generates the
//! secret in Secrets Manager and hands it to the function at deploy time
//! (docs/deploy.md says how to rotate it and what rotation does).

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The shortest `PIPELINE_KEY` accepted, in bytes: 32 characters of the
/// template's generated alphanumeric secret carry about 190 bits.
pub const MIN_SECRET_BYTES: usize = 32;

/// The keys derived from `PIPELINE_KEY`. Its `Debug` shows no key material.
#[derive(Clone, PartialEq, Eq)]
pub struct PipelineKey {
    marker: [u8; 32],
    placement: [u8; 32],
}

impl fmt::Debug for PipelineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PipelineKey(redacted)")
    }
}

impl PipelineKey {
    /// Derives the keys from the secret; `None` if it is shorter than
    /// [`MIN_SECRET_BYTES`].
    pub fn from_secret(secret: &[u8]) -> Option<Self> {
        (secret.len() >= MIN_SECRET_BYTES).then(|| PipelineKey {
            marker: hmac(secret, &[b"edr-preprocessor/resume-marker/v1"]),
            placement: hmac(secret, &[b"edr-preprocessor/shard-placement/v1"]),
        })
    }

    /// The HMAC-SHA256 under the marker key of `parts`, each prefixed with
    /// its length so that no two lists of parts share a tag.
    pub fn marker_tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        framed_mac(&self.marker, parts).map_or([0; 32], |mac| mac.finalize().into_bytes().into())
    }

    /// Whether `tag` is [`PipelineKey::marker_tag`] of `parts`, compared in
    /// constant time.
    pub fn verify_marker_tag(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        framed_mac(&self.marker, parts).is_some_and(|mac| mac.verify_slice(tag).is_ok())
    }

    /// The `ExplicitHashKey` of a record with `partition_key` alone (a
    /// `device_id`: one shard per device, which `PARTITION_KEY=device_id`
    /// asks for): the first 128 bits of its HMAC under the placement key.
    /// Uniform over the hash key space whatever the partition keys.
    pub fn explicit_hash_key(&self, partition_key: &str) -> u128 {
        first_128(hmac(&self.placement, &[partition_key.as_bytes()]))
    }

    /// The `ExplicitHashKey` of a record with `partition_key` delivered in
    /// the SQS message `message_id`: the first 128 bits of the HMAC of both
    /// (each behind its length) under the placement key. SQS assigns the
    /// message id, so one partition key sent in many messages spreads over
    /// the hash key space; a redelivery keeps its message id, so its shard.
    pub fn explicit_hash_key_of_message(&self, partition_key: &str, message_id: &str) -> u128 {
        let parts: [&[u8]; 2] = [partition_key.as_bytes(), message_id.as_bytes()];
        let tag = framed_mac(&self.placement, &parts)
            .map_or([0; 32], |mac| mac.finalize().into_bytes().into());
        first_128(tag)
    }
}

fn first_128(tag: [u8; 32]) -> u128 {
    let mut first = [0u8; 16];
    first.copy_from_slice(tag.split_at(16).0);
    u128::from_be_bytes(first)
}

/// The HMAC-SHA256 under `key`, fed each part behind its length (8 bytes,
/// big-endian) so that no two lists of parts share a tag; `None` only if
/// `key` were refused, which HMAC never does.
fn framed_mac(key: &[u8], parts: &[&[u8]]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    Some(mac)
}

fn hmac<P: AsRef<[u8]>>(key: &[u8], parts: &[P]) -> [u8; 32] {
    // HMAC takes a key of any length: new_from_slice cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    for part in parts {
        mac.update(part.as_ref());
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_short_secret_is_refused() {
        assert!(PipelineKey::from_secret(&SECRET[..31]).is_none());
        assert!(PipelineKey::from_secret(SECRET).is_some());
    }

    #[test]
    fn the_two_keys_differ_and_depend_on_the_secret() {
        let key = PipelineKey::from_secret(SECRET).unwrap();
        assert_ne!(key.marker, key.placement);
        let other = PipelineKey::from_secret(b"0123456789abcdef0123456789abcdeF").unwrap();
        assert_ne!(key.marker, other.marker);
        assert_ne!(
            key.explicit_hash_key("submission"),
            other.explicit_hash_key("submission")
        );
    }

    #[test]
    fn marker_tags_verify_only_for_the_same_parts_and_key() {
        let key = PipelineKey::from_secret(SECRET).unwrap();
        let tag = key.marker_tag(&[b"4", b"digest"]);
        assert!(key.verify_marker_tag(&[b"4", b"digest"], &tag));
        assert!(!key.verify_marker_tag(&[b"5", b"digest"], &tag));
        // Framing: moving a byte between parts changes the tag.
        assert!(!key.verify_marker_tag(&[b"4d", b"igest"], &tag));
        assert!(!key.verify_marker_tag(&[b"4", b"digest"], &tag[..31]));
        let other = PipelineKey::from_secret(b"0123456789abcdef0123456789abcdeF").unwrap();
        assert!(!other.verify_marker_tag(&[b"4", b"digest"], &tag));
    }

    #[test]
    fn a_message_bound_hash_key_depends_on_the_message_id() {
        let key = PipelineKey::from_secret(SECRET).unwrap();
        let of = |id| key.explicit_hash_key_of_message("submission", id);
        assert_eq!(of("m-1"), of("m-1"), "a redelivery keeps it");
        assert_ne!(of("m-1"), of("m-2"));
        assert_ne!(of("m-1"), key.explicit_hash_key("submission"));
        // Framing: the partition key and the id cannot trade bytes.
        assert_ne!(
            key.explicit_hash_key_of_message("submission", "m"),
            key.explicit_hash_key_of_message("submissionm", "")
        );
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = PipelineKey::from_secret(SECRET).unwrap();
        assert_eq!(format!("{key:?}"), "PipelineKey(redacted)");
    }
}
