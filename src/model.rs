//! The input model: what a sensor submits, the rules every value of it must
//! follow, and the reasons a submission is refused.
//!
//! A leaf: [`crate::decode`] fills these types from an SQS body and
//! [`crate::encode`] turns them into Kinesis records; neither knows the other.
//! The types borrow their strings from the decoded body.

use std::borrow::Cow;
use std::fmt;

use std::net::{IpAddr, Ipv6Addr};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use uuid::Uuid;

/// Why a submission was rejected. The code (`as_str`) is what appears in the
/// log line, the metric dimension and the rejects queue attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The body is neither JSON nor standard base64.
    InvalidBase64,
    /// The decoded document is not UTF-8.
    InvalidUtf8,
    /// Not JSON, truncated, too deep, or a number out of range.
    MalformedJson,
    /// The document is not a JSON object.
    NotAnObject,
    /// A required field is absent.
    MissingField,
    /// A field the schema does not have.
    UnknownField,
    /// A key appears twice in one object.
    DuplicateField,
    /// `null` where a value is required.
    NullValue,
    /// A value of the wrong JSON type.
    WrongType,
    /// `submission_id` is not a hyphenated UUID.
    InvalidSubmissionId,
    /// `device_id` is not a hyphenated UUID.
    InvalidDeviceId,
    /// `time_created` is not a date-time of the documented profile.
    InvalidTimeCreated,
    /// A key of `events` other than the known event types.
    UnknownEventType,
    /// `source_ip` is not an IP address.
    InvalidSourceIp,
    /// `destination_ip` is not an IP address.
    InvalidDestinationIp,
    /// `destination_port` is not an integer from 0 to 65535.
    InvalidDestinationPort,
    /// More events than `MAX_EVENTS_PER_SUBMISSION`.
    TooManyEvents,
    /// An event's record would exceed the stream's record limit.
    EventTooLarge,
}

impl Reason {
    /// Every reason, for documentation and exhaustive tests.
    pub const ALL: [Reason; 18] = [
        Reason::InvalidBase64,
        Reason::InvalidUtf8,
        Reason::MalformedJson,
        Reason::NotAnObject,
        Reason::MissingField,
        Reason::UnknownField,
        Reason::DuplicateField,
        Reason::NullValue,
        Reason::WrongType,
        Reason::InvalidSubmissionId,
        Reason::InvalidDeviceId,
        Reason::InvalidTimeCreated,
        Reason::UnknownEventType,
        Reason::InvalidSourceIp,
        Reason::InvalidDestinationIp,
        Reason::InvalidDestinationPort,
        Reason::TooManyEvents,
        Reason::EventTooLarge,
    ];

    /// The reason code, in snake case.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidBase64 => "invalid_base64",
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::MalformedJson => "malformed_json",
            Reason::NotAnObject => "not_an_object",
            Reason::MissingField => "missing_field",
            Reason::UnknownField => "unknown_field",
            Reason::DuplicateField => "duplicate_field",
            Reason::NullValue => "null_value",
            Reason::WrongType => "wrong_type",
            Reason::InvalidSubmissionId => "invalid_submission_id",
            Reason::InvalidDeviceId => "invalid_device_id",
            Reason::InvalidTimeCreated => "invalid_time_created",
            Reason::UnknownEventType => "unknown_event_type",
            Reason::InvalidSourceIp => "invalid_source_ip",
            Reason::InvalidDestinationIp => "invalid_destination_ip",
            Reason::InvalidDestinationPort => "invalid_destination_port",
            Reason::TooManyEvents => "too_many_events",
            Reason::EventTooLarge => "event_too_large",
        }
    }

    pub(crate) fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == code)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A submission that failed validation. `detail` is short, made by this
/// crate (never a copy of the body), and safe to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Why.
    pub reason: Reason,
    /// Where and what, in a few words made by this crate.
    pub detail: String,
    /// The ids as far as they could be read (bounded in length), for logs.
    pub submission_id: Option<String>,
    /// The device id as far as it could be read (bounded), for logs.
    pub device_id: Option<String>,
}

impl Rejection {
    pub(crate) fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
            submission_id: None,
            device_id: None,
        }
    }
}

/// A valid submission. Strings borrow from the decoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission<'a> {
    /// The submission's id.
    pub submission_id: Uuid,
    /// The sensor's id.
    pub device_id: Uuid,
    /// As the sensor sent it (validated as an ISO 8601 date-time).
    pub time_created: RawString<'a>,
    /// In document order: event lists in the order their keys appear in the
    /// `events` object, then list order. Without the dropped events.
    pub events: Vec<Event<'a>>,
    /// The events left out under `INVALID_EVENTS=drop-event`, by sequence;
    /// always empty under `reject-submission`.
    pub dropped: Vec<DroppedEvent>,
    /// SHA-256 of the document the body carries: what makes `event_id`
    /// depend on the content (`crate::encode::event_id`).
    pub document_sha256: [u8; 32],
}

impl<'a> Submission<'a> {
    /// Each event with its `sequence`: its position among all the events the
    /// sensor sent, dropped ones included, so a dropped event leaves a gap.
    pub fn sequenced(&self) -> impl Iterator<Item = (usize, &Event<'a>)> {
        let mut dropped = self.dropped.iter().map(|d| d.sequence).peekable();
        let mut next = 0;
        self.events.iter().map(move |event| {
            while dropped.next_if_eq(&next).is_some() {
                next += 1;
            }
            next += 1;
            (next - 1, event)
        })
    }
}

/// An event left out of its submission under `INVALID_EVENTS=drop-event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedEvent {
    /// Its position in the submission, as [`Submission::sequenced`] counts.
    pub sequence: usize,
    /// What was wrong with it.
    pub reason: Reason,
}

/// How a submission's events become Kinesis records (`RECORD_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordFormat {
    /// One Kinesis record per event, the event's JSON (the original
    /// specification).
    #[default]
    PerEvent,
    /// The same JSON records as user records of KPL aggregated records
    /// ([`crate::aggregate`]): a submission is one Kinesis record, or a few
    /// consecutive ones when it exceeds the record limit.
    Aggregated,
}

impl RecordFormat {
    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordFormat::PerEvent => "per-event",
            RecordFormat::Aggregated => "aggregated",
        }
    }
}

/// What an invalid event does to its submission (`INVALID_EVENTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InvalidEvents {
    /// The whole submission is rejected: a submission is valid only as a
    /// whole (the original specification).
    #[default]
    RejectSubmission,
    /// Only that event is dropped; the others are published with their
    /// `sequence` and `event_id`. Defects of the submission itself (ids,
    /// `time_created`, structure, an undecodable body) still reject it.
    DropEvent,
}

impl InvalidEvents {
    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidEvents::RejectSubmission => "reject-submission",
            InvalidEvents::DropEvent => "drop-event",
        }
    }
}

/// The validation rules that depend on configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `MAX_EVENTS_PER_SUBMISSION`.
    pub max_events: usize,
    /// The stream's record limit, data plus partition key
    /// (`KINESIS_MAX_RECORD_SIZE_KIB`).
    pub max_record_bytes: usize,
    /// `INVALID_EVENTS`.
    pub invalid_events: InvalidEvents,
    /// `RECORD_FORMAT`: an aggregated record adds its framing to an event's
    /// record, so an event fits the limit in one format and not the other.
    pub record_format: RecordFormat,
}

impl Limits {
    /// `max_events`, the default record limit of 1 MiB, and invalid events
    /// rejecting their submission.
    pub const fn with_max_events(max_events: usize) -> Self {
        Limits {
            max_events,
            max_record_bytes: MAX_RECORD_BYTES,
            invalid_events: InvalidEvents::RejectSubmission,
            record_format: RecordFormat::PerEvent,
        }
    }

    /// The same limits with `record_format` set.
    pub const fn with_record_format(self, record_format: RecordFormat) -> Self {
        Limits {
            record_format,
            ..self
        }
    }

    /// The same limits with `invalid_events` set.
    pub const fn with_invalid_events(self, invalid_events: InvalidEvents) -> Self {
        Limits {
            invalid_events,
            ..self
        }
    }
}

/// The default limit on one record, data plus partition key: a stream's
/// `MaxRecordSize` is 1 MiB unless raised with `UpdateMaxRecordSize`
/// (`KINESIS_MAX_RECORD_SIZE_KIB`).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// The largest record Kinesis takes from a stream whose `MaxRecordSize` was
/// raised as far as it goes: 10 MiB.
pub const MAX_RECORD_BYTES_LIMIT: usize = 10 * 1024 * 1024;

/// One event of a submission, as the sensor sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// A process started on the endpoint.
    NewProcess(NewProcess<'a>),
    /// A network connection made by the endpoint.
    NetworkConnection(NetworkConnection<'a>),
}

impl Event<'_> {
    /// The event type: the key of its list in `events`, and the record's `event_type`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::NewProcess(_) => "new_process",
            Event::NetworkConnection(_) => "network_connection",
        }
    }
}

/// `event_data` is the event's own object, without a type tag.
impl Serialize for Event<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Event::NewProcess(e) => e.serialize(s),
            Event::NetworkConnection(e) => e.serialize(s),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
/// `new_process`: a process started on the endpoint.
pub struct NewProcess<'a> {
    #[serde(borrow)]
    /// The command line, as sent.
    pub cmdl: RawString<'a>,
    #[serde(borrow)]
    /// The user who started it, as sent.
    pub user: RawString<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
/// `network_connection`: a connection made by the endpoint.
pub struct NetworkConnection<'a> {
    /// Validated as an IP address ([`is_ip_address`]), published as sent.
    #[serde(borrow)]
    pub source_ip: RawString<'a>,
    #[serde(borrow)]
    /// Validated as an IP address ([`is_ip_address`]), published as sent.
    pub destination_ip: RawString<'a>,
    #[serde(deserialize_with = "crate::model::deserialize_port")]
    /// An integer from 0 to 65535.
    pub destination_port: u16,
}

/// Marks an error raised by our own visitors with its reason code, so it
/// survives serde_json's error type and can be read back.
pub(crate) const REASON_TAG: &str = "edr-reason:";

pub(crate) fn tagged<E: de::Error>(reason: Reason) -> E {
    E::custom(format_args!("{REASON_TAG}{}", reason.as_str()))
}

/// `destination_port`: a JSON integer from 0 to 65535. Fractions, exponents,
/// negative numbers (`-0` included, which JSON parsers read as a float) and
/// out-of-range values are rejected with `invalid_destination_port`.
pub(crate) fn deserialize_port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    struct PortVisitor;
    impl Visitor<'_> for PortVisitor {
        type Value = u16;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer from 0 to 65535")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u16, E> {
            u16::try_from(v).map_err(|_| tagged(Reason::InvalidDestinationPort))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u16, E> {
            u16::try_from(v).map_err(|_| tagged(Reason::InvalidDestinationPort))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<u16, E> {
            Err(tagged(Reason::InvalidDestinationPort))
        }
    }
    d.deserialize_any(PortVisitor)
}

/// A JSON string exactly as the sensor wrote it: the text of the token,
/// quotes and escapes included, borrowed from the body.
///
/// Published byte for byte, never decoded and re-encoded. A Windows command
/// line is UTF-16 and may hold an unpaired surrogate, which a sensor writes
/// as an escape (`"\udc00"`) that JSON's grammar allows but that no Rust
/// string can hold (serde_json refuses it when it decodes a string): decoding
/// it would let one hostile process name drop its whole submission.
/// serde_json checks the token's grammar when it captures it (escapes,
/// control characters), so what is published is always valid JSON.
#[derive(Debug, Clone, Copy)]
pub struct RawString<'a>(&'a RawValue);

impl<'a> RawString<'a> {
    /// The JSON text of the string, quotes and escapes included, as sent.
    pub fn json(&self) -> &'a str {
        self.0.get()
    }

    /// The string's value, for the fields that are checked; `None` when it
    /// holds a lone surrogate escape. Borrowed, without any work, when the
    /// string has no escape.
    pub fn decoded(&self) -> Option<Cow<'a, str>> {
        let json = self.json();
        let inner = json.get(1..json.len().saturating_sub(1))?;
        if !inner.contains('\\') {
            return Some(Cow::Borrowed(inner));
        }
        serde_json::from_str::<String>(json).ok().map(Cow::Owned)
    }
}

impl PartialEq for RawString<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

impl Eq for RawString<'_> {}

/// Only a string: `null` and other types fail with serde's own "invalid
/// type" message, so they map to `null_value` and `wrong_type` as before.
impl<'de: 'a, 'a> Deserialize<'de> for RawString<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(d)?;
        match raw.get().as_bytes().first() {
            Some(b'"') => Ok(RawString(raw)),
            Some(b'n') => Err(de::Error::invalid_type(de::Unexpected::Unit, &"a string")),
            _ => Err(de::Error::invalid_type(
                de::Unexpected::Other("a value that is not a string"),
                &"a string",
            )),
        }
    }
}

impl Serialize for RawString<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// `source_ip` and `destination_ip`: an IPv4 or IPv6 address as the standard
/// library reads it (no brackets, no port), or an IPv6 address with a zone
/// (`fe80::1%12` on Windows, `fe80::1%eth0` on Linux; RFC 4007 §11).
/// Link-local traffic carries one, and it is often lateral movement, so it
/// must not cost the submission. The zone must be what those systems write
/// ([`is_zone_id`]): any other text would reach every consumer as a
/// validated address.
pub fn is_ip_address(text: &str) -> bool {
    if text.parse::<IpAddr>().is_ok() {
        return true;
    }
    let Some((address, zone)) = text.split_once('%') else {
        return false;
    };
    address.parse::<Ipv6Addr>().is_ok() && is_zone_id(zone)
}

/// Longest Linux interface name: `IFNAMSIZ` (16) less its NUL.
pub const MAX_ZONE_NAME_LEN: usize = 15;

/// Most digits of a Windows interface index: a `u32` (`NET_IFINDEX`) has ten.
pub const MAX_ZONE_INDEX_DIGITS: usize = 10;

/// A zone id as real systems write one: a Windows interface index (1 to
/// [`MAX_ZONE_INDEX_DIGITS`] ASCII digits whose value fits a `u32`), or a
/// Linux interface name (1 to [`MAX_ZONE_NAME_LEN`] ASCII letters, digits,
/// `.`, `_` and `-`, not `.` or `..`, which Linux refuses). A zone of digits
/// only is an index, as `getaddrinfo` reads it, so a longer one is refused
/// rather than taken for a name. Nothing else: no quote, `$`, `;`, space or
/// slash reaches a consumer that builds a query or a command from it.
pub fn is_zone_id(zone: &str) -> bool {
    if !zone.is_empty() && zone.bytes().all(|b| b.is_ascii_digit()) {
        return zone.len() <= MAX_ZONE_INDEX_DIGITS && zone.parse::<u32>().is_ok();
    }
    (1..=MAX_ZONE_NAME_LEN).contains(&zone.len())
        && zone != "."
        && zone != ".."
        && zone
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
