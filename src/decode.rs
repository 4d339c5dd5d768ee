//! Turning an SQS message body into a validated [`Submission`], or a
//! [`Rejection`] that says why not.
//!
//! Sensors in the field send broken data (ids that are not UUIDs, addresses
//! that are not IPs, `null` command lines). Validation runs before any event
//! is encoded, so what is refused is never partly published. What a defect
//! drops depends on `INVALID_EVENTS` ([`InvalidEvents`]): under the default,
//! `reject-submission`, validation is all-or-nothing and one bad event drops
//! the whole submission; under `drop-event`, a defect inside an event drops
//! that event only (it is listed in [`Submission`]'s dropped events with its
//! reason), while a defect of the submission itself (the body, the ids,
//! `time_created`, the structure) still rejects it whole. The schema is
//! closed: an unknown field or event type is an error, not something to pass
//! through.
//!
//! Parsing borrows strings from the decoded body wherever JSON escapes allow,
//! so a valid submission costs one allocation for the body and one for its
//! event list.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::logging::bounded;
use crate::model::{
    DroppedEvent, Event, InvalidEvents, Limits, NetworkConnection, NewProcess, REASON_TAG,
    RawString, Reason, Rejection, Submission, is_ip_address, tagged,
};

/// Undoes the sensors' transport encoding: a body whose first non-blank
/// character is `{` is JSON as is; anything else must be standard base64
/// (RFC 4648 alphabet, padding optional, surrounding blanks ignored).
pub fn decode_body(body: &str) -> Result<Cow<'_, [u8]>, Rejection> {
    let trimmed = body.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.starts_with('{') {
        return Ok(Cow::Borrowed(trimmed.as_bytes()));
    }
    BASE64
        .decode(trimmed)
        .map(Cow::Owned)
        .map_err(|e| Rejection::new(Reason::InvalidBase64, base64_detail(&e)))
}

const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

fn base64_detail(e: &base64::DecodeError) -> String {
    match e {
        base64::DecodeError::InvalidByte(offset, _) => {
            format!("invalid base64 character at offset {offset}")
        }
        base64::DecodeError::InvalidLength(_) => "invalid base64 length".into(),
        base64::DecodeError::InvalidLastSymbol(offset, _) => {
            format!("invalid last base64 symbol at offset {offset}")
        }
        base64::DecodeError::InvalidPadding => "invalid base64 padding".into(),
    }
}

/// Validates a decoded submission document.
pub fn parse_json(bytes: &[u8], limits: Limits) -> Result<Submission<'_>, Rejection> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Rejection::new(
            Reason::InvalidUtf8,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    if !text.trim_start().starts_with('{') {
        return Err(with_ids(
            Rejection::new(Reason::NotAnObject, "the document is not a JSON object"),
            text,
        ));
    }
    let parsed = match limits.invalid_events {
        InvalidEvents::RejectSubmission => parse_and_validate::<false>(text, limits),
        InvalidEvents::DropEvent => parse_and_validate::<true>(text, limits),
    };
    let mut submission = parsed.map_err(|r| with_ids(r, text))?;
    submission.document_sha256 = Sha256::digest(bytes).into();
    Ok(submission)
}

fn parse_and_validate<const SALVAGE: bool>(
    text: &str,
    limits: Limits,
) -> Result<Submission<'_>, Rejection> {
    let raw: RawSubmission<'_, EventList<'_, SALVAGE>> =
        serde_json::from_str(text).map_err(|e| rejection_from_json(&e))?;
    validate(raw, limits)
}

/// The document's shape. `L` is the event list: [`EventList`] with or
/// without salvage of invalid events, one type per `INVALID_EVENTS` mode so
/// the default mode keeps its single pass over the body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubmission<'a, L> {
    // Raw, like every string: an id with a lone surrogate escape is an
    // invalid id, not a document serde_json cannot read.
    #[serde(borrow)]
    submission_id: RawString<'a>,
    #[serde(borrow)]
    device_id: RawString<'a>,
    #[serde(borrow)]
    time_created: RawString<'a>,
    events: L,
}

fn validate<'a, const SALVAGE: bool>(
    raw: RawSubmission<'a, EventList<'a, SALVAGE>>,
    limits: Limits,
) -> Result<Submission<'a>, Rejection> {
    let submission_id = parse_uuid(raw.submission_id).ok_or_else(|| {
        Rejection::new(
            Reason::InvalidSubmissionId,
            "submission_id is not a hyphenated UUID",
        )
    })?;
    let device_id = parse_uuid(raw.device_id).ok_or_else(|| {
        Rejection::new(
            Reason::InvalidDeviceId,
            "device_id is not a hyphenated UUID",
        )
    })?;
    if !raw
        .time_created
        .decoded()
        .is_some_and(|t| is_iso8601_date_time(&t))
    {
        return Err(Rejection::new(
            Reason::InvalidTimeCreated,
            "time_created is not an ISO 8601 date-time",
        ));
    }
    let EventList { events, dropped } = raw.events;
    let sent = events.len() + dropped.len();
    if sent > limits.max_events {
        return Err(Rejection::new(
            Reason::TooManyEvents,
            format!("{sent} events, at most {} allowed", limits.max_events),
        ));
    }
    // Under salvage every kept event was checked as it was read.
    if !SALVAGE {
        for (sequence, event) in events.iter().enumerate() {
            check_event(sequence, event)?;
        }
    }
    Ok(Submission {
        submission_id,
        device_id,
        time_created: raw.time_created,
        events,
        dropped,
        document_sha256: [0; 32],
    })
}

/// The rules on an event's values that its type cannot express: both
/// addresses must be IP addresses.
fn check_event(sequence: usize, event: &Event<'_>) -> Result<(), Rejection> {
    let Event::NetworkConnection(c) = event else {
        return Ok(());
    };
    let is_ip = |s: &RawString<'_>| s.decoded().is_some_and(|ip| is_ip_address(&ip));
    if !is_ip(&c.source_ip) {
        return Err(Rejection::new(
            Reason::InvalidSourceIp,
            format!("event {sequence}: source_ip is not an IP address"),
        ));
    }
    if !is_ip(&c.destination_ip) {
        return Err(Rejection::new(
            Reason::InvalidDestinationIp,
            format!("event {sequence}: destination_ip is not an IP address"),
        ));
    }
    Ok(())
}

/// Only the canonical 8-4-4-4-12 form (either case) is a sensor id; the
/// other spellings `Uuid::try_parse` allows (braced, URN, no hyphens) are not.
fn parse_uuid(text: RawString<'_>) -> Option<Uuid> {
    let text = text.decoded()?;
    if text.len() != 36 {
        return None;
    }
    Uuid::try_parse(&text).ok()
}

/// The one `time_created` profile: ISO 8601 extended format (RFC 3339 with
/// the offset optional), `YYYY-MM-DD`, `T` or a space, `hh:mm:ss`, an optional
/// fraction of 1 to 9 digits, and an optional `Z` or `±hh:mm`; a real calendar
/// date from year 1, hours 00-23, no leap second. A date alone is not enough:
/// events are ordered by time downstream.
///
/// Written by hand rather than with the `time` crate's ISO 8601 parser: that
/// parser also takes ordinal and week dates, the basic format and fractional
/// hours, which would be published as sent and which common consumers
/// (Python's `datetime.fromisoformat` before 3.11, JavaScript's `Date`)
/// cannot read; and it refuses the space that Python's `str(datetime)` writes.
fn is_iso8601_date_time(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(range)?;
        part.iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let at = |i: usize| b.get(i).copied();
    let (Some(year), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return false;
    };
    let (Some(hour), Some(minute), Some(second)) = (digits(11..13), digits(14..16), digits(17..19))
    else {
        return false;
    };
    let separators = at(4) == Some(b'-')
        && at(7) == Some(b'-')
        && matches!(at(10), Some(b'T' | b' '))
        && at(13) == Some(b':')
        && at(16) == Some(b':');
    let date_ok = year >= 1
        && u8::try_from(month)
            .ok()
            .and_then(|m| time::Month::try_from(m).ok())
            .and_then(|m| time::Date::from_calendar_date(year as i32, m, day as u8).ok())
            .is_some();
    if !(separators && date_ok && hour <= 23 && minute <= 59 && second <= 59) {
        return false;
    }
    let mut rest = b.get(19..).unwrap_or_default();
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|d| d.is_ascii_digit()).count();
        if !(1..=9).contains(&n) {
            return false;
        }
        rest = fraction.get(n..).unwrap_or_default();
    }
    match rest {
        [] | [b'Z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| u32::from(a - b'0') * 10 + u32::from(b - b'0'))
            };
            matches!((two(*h1, *h2), two(*m1, *m2)), (Some(h), Some(m)) if h <= 23 && m <= 59)
        }
        _ => false,
    }
}

/// Maps serde_json's error to a reason. serde's data errors are identified by
/// their documented message prefixes; the detail keeps only the kind, the
/// field name for missing/unknown/duplicate fields (bounded) and the position.
fn rejection_from_json(e: &serde_json::Error) -> Rejection {
    use serde_json::error::Category;
    let at = format!("line {} column {}", e.line(), e.column());
    match e.classify() {
        Category::Io | Category::Syntax | Category::Eof => {
            Rejection::new(Reason::MalformedJson, format!("malformed JSON at {at}"))
        }
        Category::Data => {
            let message = e.to_string();
            if let Some(code) = message.strip_prefix(REASON_TAG) {
                let code = code.split_whitespace().next().unwrap_or_default();
                let reason = Reason::from_code(code).unwrap_or(Reason::WrongType);
                return Rejection::new(reason, format!("{code} at {at}"));
            }
            // Field names come from the input: shown only when they look
            // like schema identifiers, so a log line cannot carry content.
            let field = || {
                let name = message.split('`').nth(1).unwrap_or_default();
                let identifier = (1..=64).contains(&name.len())
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if identifier {
                    name.to_owned()
                } else {
                    "<not an identifier>".to_owned()
                }
            };
            let (reason, detail) = if message.starts_with("missing field") {
                (Reason::MissingField, format!("missing field {:?}", field()))
            } else if message.starts_with("unknown field") {
                (
                    Reason::UnknownField,
                    format!("unknown field {:?} at {at}", field()),
                )
            } else if message.starts_with("duplicate field") {
                (
                    Reason::DuplicateField,
                    format!("duplicate field {:?} at {at}", field()),
                )
            } else if message.starts_with("invalid type: null") {
                (
                    Reason::NullValue,
                    format!("null where a value is required at {at}"),
                )
            } else {
                (
                    Reason::WrongType,
                    format!("value of the wrong type at {at}"),
                )
            };
            Rejection::new(reason, detail)
        }
    }
}

/// Fills in the ids of a rejected submission for its log line, reading them
/// leniently from whatever parses. Runs only on the rejection path.
fn with_ids(mut rejection: Rejection, text: &str) -> Rejection {
    #[derive(Deserialize)]
    struct Ids {
        #[serde(default)]
        submission_id: Lenient,
        #[serde(default)]
        device_id: Lenient,
    }
    if let Ok(ids) = serde_json::from_str::<Ids>(text) {
        rejection.submission_id = ids.submission_id.0;
        rejection.device_id = ids.device_id.0;
    }
    rejection
}

/// Any JSON value; keeps a string (bounded to 64 bytes), drops the rest.
#[derive(Default)]
struct Lenient(Option<String>);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AnyValue;
        impl<'de> Visitor<'de> for AnyValue {
            type Value = Lenient;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Lenient, E> {
                Ok(Lenient(Some(bounded(v, 64))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Lenient, S::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(Lenient(None))
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Lenient, M::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Lenient(None))
            }
        }
        d.deserialize_any(AnyValue)
    }
}

/// The `events` object: keys are event types, values are lists of events.
/// Flattened into one list in document order. With `SALVAGE`, an event that
/// does not parse or check is set aside in `dropped` instead of failing the
/// document; the object and its lists must still be well formed.
struct EventList<'a, const SALVAGE: bool> {
    events: Vec<Event<'a>>,
    dropped: Vec<DroppedEvent>,
}

impl<'de: 'a, 'a, const SALVAGE: bool> Deserialize<'de> for EventList<'a, SALVAGE> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EventListVisitor::<SALVAGE>)
    }
}

struct EventListVisitor<const SALVAGE: bool>;

impl<'de, const SALVAGE: bool> Visitor<'de> for EventListVisitor<SALVAGE> {
    type Value = EventList<'de, SALVAGE>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of event lists")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut list = EventList {
            events: Vec::new(),
            dropped: Vec::new(),
        };
        let (mut seen_process, mut seen_connection) = (false, false);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let (kind, seen) = match key.as_ref() {
                "new_process" => (Kind::NewProcess, &mut seen_process),
                "network_connection" => (Kind::NetworkConnection, &mut seen_connection),
                _ => return Err(tagged(Reason::UnknownEventType)),
            };
            if std::mem::replace(seen, true) {
                return Err(tagged(Reason::DuplicateField));
            }
            map.next_value_seed(ListInto {
                kind,
                out: &mut list,
            })?;
        }
        Ok(list)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    NewProcess,
    NetworkConnection,
}

/// Appends one event list to the shared one, keeping document order
/// without an intermediate vector per list.
struct ListInto<'v, 'a, const SALVAGE: bool> {
    kind: Kind,
    out: &'v mut EventList<'a, SALVAGE>,
}

impl<'de: 'a, 'a, const SALVAGE: bool> DeserializeSeed<'de> for ListInto<'_, 'a, SALVAGE> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de: 'a, 'a, const SALVAGE: bool> Visitor<'de> for ListInto<'_, 'a, SALVAGE> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of events")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        let out = self.out;
        if let Some(n) = seq.size_hint() {
            out.events.reserve(n);
        }
        if SALVAGE {
            // Each event is read twice (its text, then the event), which only
            // this mode pays: a failed event must not fail the document.
            while let Some(raw) = seq.next_element::<&'de RawValue>()? {
                let sequence = out.events.len() + out.dropped.len();
                match salvage(self.kind, raw.get(), sequence) {
                    Ok(event) => out.events.push(event),
                    Err(reason) => out.dropped.push(DroppedEvent { sequence, reason }),
                }
            }
            return Ok(());
        }
        match self.kind {
            Kind::NewProcess => {
                while let Some(Object(e)) = seq.next_element::<Object<NewProcess<'de>>>()? {
                    out.events.push(Event::NewProcess(e));
                }
            }
            Kind::NetworkConnection => {
                while let Some(Object(e)) = seq.next_element::<Object<NetworkConnection<'de>>>()? {
                    out.events.push(Event::NetworkConnection(e));
                }
            }
        }
        Ok(())
    }
}

/// An event read only from a JSON object. serde's derived code also reads a
/// struct from an array of its fields in order (`["calc.exe", "admin"]`),
/// which would publish as an object what the sensor sent as a list: the
/// schema is closed, so a list is `wrong_type` (and `null` is `null_value`).
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event object")
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<T, M::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(ObjectVisitor(std::marker::PhantomData))
            .map(Object)
    }
}

/// One event of a salvaged list, parsed and checked alone.
fn salvage(kind: Kind, text: &str, sequence: usize) -> Result<Event<'_>, Reason> {
    let event = match kind {
        Kind::NewProcess => serde_json::from_str(text).map(|Object(e)| Event::NewProcess(e)),
        Kind::NetworkConnection => {
            serde_json::from_str(text).map(|Object(e)| Event::NetworkConnection(e))
        }
    }
    .map_err(|e| rejection_from_json(&e).reason)?;
    check_event(sequence, &event).map_err(|r| r.reason)?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const LIMITS: Limits = Limits::with_max_events(100);
    const SUBMISSION: &str = "4a1b3c5d-0000-4000-8000-000000000001";
    const DEVICE: &str = "9f8e7d6c-0000-4000-8000-000000000002";

    fn valid() -> Value {
        json!({
            "submission_id": SUBMISSION,
            "device_id": DEVICE,
            "time_created": "2021-03-29T12:06:09.576033",
            "events": {
                "new_process": [{"cmdl": "calc.exe", "user": "admin"}],
                "network_connection": [{"source_ip": "192.168.0.1", "destination_ip": "142.250.74.110", "destination_port": 443}]
            }
        })
    }

    fn check(doc: &Value) -> Result<usize, Rejection> {
        let text = doc.to_string();
        parse_json(text.as_bytes(), LIMITS).map(|s| s.events.len())
    }

    fn reason_of(doc: &Value) -> Reason {
        check(doc).expect_err("must be rejected").reason
    }

    /// The object or array holding the last element of `path`, in `doc`.
    fn parent<'d>(doc: &'d mut Value, path: &[&str]) -> &'d mut Value {
        let mut node = doc;
        for key in &path[..path.len() - 1] {
            node = match key.parse::<usize>() {
                Ok(i) => &mut node[i],
                Err(_) => &mut node[*key],
            };
        }
        node
    }

    fn with(path: &[&str], value: Value) -> Value {
        let mut doc = valid();
        let node = parent(&mut doc, path);
        let last = path[path.len() - 1];
        match last.parse::<usize>() {
            Ok(i) => node[i] = value,
            Err(_) => node[last] = value,
        }
        doc
    }

    fn without(path: &[&str]) -> Value {
        let mut doc = valid();
        parent(&mut doc, path)
            .as_object_mut()
            .unwrap()
            .remove(path[path.len() - 1]);
        doc
    }

    #[test]
    fn a_valid_submission_parses_in_document_order() {
        let text = valid().to_string();
        let s = parse_json(text.as_bytes(), LIMITS).unwrap();
        assert_eq!(s.submission_id.to_string(), SUBMISSION);
        assert_eq!(s.device_id.to_string(), DEVICE);
        assert_eq!(s.time_created.json(), "\"2021-03-29T12:06:09.576033\"");
        assert_eq!(s.events.len(), 2);
        assert_eq!(s.events[0].event_type(), "new_process");
        assert_eq!(s.events[1].event_type(), "network_connection");
    }

    #[test]
    fn event_lists_keep_the_order_of_their_keys() {
        let text = format!(
            r#"{{"submission_id":"{SUBMISSION}","device_id":"{DEVICE}","time_created":"2021-03-29T12:06:09",
            "events":{{"network_connection":[{{"source_ip":"::1","destination_ip":"10.0.0.1","destination_port":1}},
                                            {{"source_ip":"::1","destination_ip":"10.0.0.2","destination_port":2}}],
                       "new_process":[{{"cmdl":"a","user":"u"}}]}}}}"#
        );
        let s = parse_json(text.as_bytes(), LIMITS).unwrap();
        let types: Vec<&str> = s.events.iter().map(Event::event_type).collect();
        assert_eq!(
            types,
            ["network_connection", "network_connection", "new_process"]
        );
        match &s.events[1] {
            Event::NetworkConnection(c) => assert_eq!(c.destination_port, 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn either_list_may_be_empty_or_absent() {
        assert_eq!(check(&without(&["events", "new_process"])).unwrap(), 1);
        assert_eq!(
            check(&without(&["events", "network_connection"])).unwrap(),
            1
        );
        assert_eq!(check(&with(&["events"], json!({}))).unwrap(), 0);
        assert_eq!(
            check(&with(&["events", "new_process"], json!([]))).unwrap(),
            1
        );
    }

    #[test]
    fn ids_must_be_hyphenated_uuids() {
        assert_eq!(
            reason_of(&with(&["submission_id"], json!("not-an-uuid"))),
            Reason::InvalidSubmissionId
        );
        assert_eq!(
            reason_of(&with(&["device_id"], json!("not-an-uuid"))),
            Reason::InvalidDeviceId
        );
        // Other spellings uuid accepts are not sensor ids.
        assert_eq!(
            reason_of(&with(
                &["device_id"],
                json!("9f8e7d6c00004000800000000000000")
            )),
            Reason::InvalidDeviceId
        );
        assert_eq!(
            reason_of(&with(&["device_id"], json!(format!("{{{DEVICE}}}")))),
            Reason::InvalidDeviceId
        );
        assert_eq!(
            reason_of(&with(&["submission_id"], json!(42))),
            Reason::WrongType
        );
        let text = valid()
            .to_string()
            .replace(SUBMISSION, r"4a1b3c5d-0000-4000-8000-00000000000\ud800");
        assert_eq!(
            parse_json(text.as_bytes(), LIMITS).unwrap_err().reason,
            Reason::InvalidSubmissionId,
            "a lone surrogate makes an invalid id, not an unreadable document"
        );
        let escaped = valid()
            .to_string()
            .replace(SUBMISSION, r"4a1b3c5d-0000-4000-8000-00000000000\u0031");
        assert_eq!(
            parse_json(escaped.as_bytes(), LIMITS)
                .unwrap()
                .submission_id
                .to_string(),
            SUBMISSION,
            "an escaped id is the id it spells"
        );
        // Upper case is the same UUID.
        assert!(check(&with(&["device_id"], json!(DEVICE.to_uppercase()))).is_ok());
    }

    #[test]
    fn destination_and_source_must_be_ip_addresses() {
        let bad = with(
            &["events", "network_connection", "0", "destination_ip"],
            json!("not-an-ip"),
        );
        assert_eq!(reason_of(&bad), Reason::InvalidDestinationIp);
        let bad = with(
            &["events", "network_connection", "0", "source_ip"],
            json!("300.1.1.1"),
        );
        assert_eq!(reason_of(&bad), Reason::InvalidSourceIp);
        let v6 = with(
            &["events", "network_connection", "0", "destination_ip"],
            json!("2001:db8::1"),
        );
        assert!(check(&v6).is_ok());
    }

    #[test]
    fn null_command_line_is_rejected() {
        assert_eq!(
            reason_of(&with(&["events", "new_process", "0", "cmdl"], Value::Null)),
            Reason::NullValue
        );
        assert_eq!(
            reason_of(&with(&["events", "new_process", "0", "user"], json!(7))),
            Reason::WrongType
        );
    }

    #[test]
    fn ports_must_be_integers_in_range() {
        for ok in [json!(0), json!(65535)] {
            assert!(
                check(&with(
                    &["events", "network_connection", "0", "destination_port"],
                    ok
                ))
                .is_ok()
            );
        }
        for bad in ["65536", "-1", "443.0", "4.43e2", "-0", "1e400"] {
            let text = valid().to_string().replace("443", bad);
            let got = parse_json(text.as_bytes(), LIMITS).expect_err(bad).reason;
            let expected = if bad == "1e400" {
                Reason::MalformedJson
            } else {
                Reason::InvalidDestinationPort
            };
            assert_eq!(got, expected, "port {bad}");
        }
        let text = valid().to_string().replace("443", "\"443\"");
        assert_eq!(
            parse_json(text.as_bytes(), LIMITS).unwrap_err().reason,
            Reason::WrongType
        );
    }

    #[test]
    fn the_schema_is_closed() {
        assert_eq!(reason_of(&with(&["extra"], json!(1))), Reason::UnknownField);
        assert_eq!(
            reason_of(&with(&["events", "new_process", "0", "pid"], json!(1))),
            Reason::UnknownField
        );
        assert_eq!(
            reason_of(&with(&["events", "file_write"], json!([]))),
            Reason::UnknownEventType
        );
        assert_eq!(reason_of(&without(&["device_id"])), Reason::MissingField);
        assert_eq!(reason_of(&without(&["events"])), Reason::MissingField);
        assert_eq!(
            reason_of(&without(&["events", "new_process", "0", "user"])),
            Reason::MissingField
        );
        assert_eq!(
            reason_of(&with(&["events", "new_process"], json!({"cmdl": "x"}))),
            Reason::WrongType
        );
        assert_eq!(
            reason_of(&with(&["events", "new_process"], Value::Null)),
            Reason::NullValue
        );
        assert_eq!(reason_of(&with(&["events"], json!([]))), Reason::WrongType);
        // serde would read a struct from a list of its fields: not here.
        assert_eq!(
            reason_of(&with(
                &["events", "new_process", "0"],
                json!(["calc.exe", "admin"])
            )),
            Reason::WrongType
        );
        assert_eq!(
            reason_of(&with(
                &["events", "network_connection", "0"],
                json!(["::1", "::1", 1])
            )),
            Reason::WrongType
        );
        assert_eq!(
            reason_of(&with(&["events", "new_process", "0"], Value::Null)),
            Reason::NullValue
        );
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let text = valid()
            .to_string()
            .replacen('{', &format!("{{\"device_id\":\"{DEVICE}\","), 1);
        assert_eq!(
            parse_json(text.as_bytes(), LIMITS).unwrap_err().reason,
            Reason::DuplicateField
        );
        let text = valid()
            .to_string()
            .replace("\"new_process\":", "\"new_process\":[],\"new_process\":");
        assert_eq!(
            parse_json(text.as_bytes(), LIMITS).unwrap_err().reason,
            Reason::DuplicateField
        );
    }

    #[test]
    fn time_created_must_be_an_iso8601_date_time() {
        for ok in [
            "2021-03-29T12:06:09.576033",
            "2021-03-29T12:06:09",
            "2021-03-29T12:06:09Z",
            "2021-03-29T12:06:09.5+02:00",
            // Python's str(datetime): a space instead of the T.
            "2021-03-29 12:06:09",
            "2021-03-29 12:06:09.576033",
            "2021-03-29T12:06:09.123456789-05:30",
            "2024-02-29T23:59:59+23:59",
            "0001-01-01T00:00:00",
        ] {
            assert!(check(&with(&["time_created"], json!(ok))).is_ok(), "{ok}");
        }
        for bad in [
            "2021-03-29",
            "yesterday",
            "2021-02-30T00:00:00",
            "",
            "12:06:09",
            // ISO 8601 forms outside the profile.
            "2021-088T12:06",
            "2021-088T12:06:09",
            "2021-W13-1T12:06:09",
            "20210329T120609",
            "2021-03-29T120609",
            "2021-03-29T12.5",
            "2021-03-29T12:06.5",
            "2021-03-29T12:06",
            "2021-03-29T12:06:09+0200",
            "2021-03-29T12:06:09+02",
            "2021-03-29T12:06:09.",
            "2021-03-29T12:06:09.1234567890",
            "2021-03-29T12:06:09,5",
            "2021-03-29t12:06:09",
            "2021-03-29T12:06:09z",
            "2021-03-29T24:00:00",
            "2021-03-29T23:59:60",
            "2021-03-29T12:06:09+24:00",
            "0000-01-01T00:00:00",
            "+2021-03-29T12:06:09",
            "2021-03-29T12:06:09Z ",
            "2021-3-29T12:06:09",
        ] {
            assert_eq!(
                reason_of(&with(&["time_created"], json!(bad))),
                Reason::InvalidTimeCreated,
                "{bad}"
            );
        }
    }

    #[test]
    fn too_many_events_are_rejected() {
        let many: Vec<Value> = (0..101)
            .map(|_| json!({"cmdl": "a", "user": "b"}))
            .collect();
        let doc = with(&["events", "new_process"], Value::Array(many));
        assert_eq!(reason_of(&doc), Reason::TooManyEvents);
        let exactly: Vec<Value> = (0..99).map(|_| json!({"cmdl": "a", "user": "b"})).collect();
        assert_eq!(
            check(&with(&["events", "new_process"], Value::Array(exactly))).unwrap(),
            100
        );
    }

    #[test]
    fn broken_documents_are_rejected_by_kind() {
        let reason = |bytes: &[u8]| parse_json(bytes, LIMITS).unwrap_err().reason;
        assert_eq!(reason(b"{\"submission_id\": "), Reason::MalformedJson);
        assert_eq!(reason(b"[1, 2]"), Reason::NotAnObject);
        assert_eq!(reason(b"\"text\""), Reason::NotAnObject);
        assert_eq!(reason(b""), Reason::NotAnObject);
        assert_eq!(reason(b"{\"a\": \"\xff\"}"), Reason::InvalidUtf8);
        let deep = format!(
            "{{\"submission_id\":{}{}}}",
            "[".repeat(5000),
            "]".repeat(5000)
        );
        assert!(matches!(
            reason(deep.as_bytes()),
            Reason::MalformedJson | Reason::WrongType
        ));
    }

    #[test]
    fn bodies_are_base64_or_plain_json() {
        let json = valid().to_string();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&json);
        assert_eq!(decode_body(&b64).unwrap().as_ref(), json.as_bytes());
        assert_eq!(
            decode_body(&format!("  {b64}\n")).unwrap().as_ref(),
            json.as_bytes()
        );
        assert_eq!(
            decode_body(b64.trim_end_matches('=')).unwrap().as_ref(),
            json.as_bytes(),
            "padding is optional"
        );
        assert_eq!(
            decode_body(&format!(" {json}")).unwrap().as_ref(),
            json.as_bytes()
        );
        assert_eq!(
            decode_body("not base64!").unwrap_err().reason,
            Reason::InvalidBase64
        );
        let url_safe = base64::engine::general_purpose::URL_SAFE.encode([0xfb, 0xff]);
        assert_eq!(
            decode_body(&url_safe).unwrap_err().reason,
            Reason::InvalidBase64,
            "URL-safe alphabet is refused"
        );
    }

    #[test]
    fn rejections_carry_the_ids_they_could_read_but_no_content() {
        let doc = with(
            &["events", "network_connection", "0", "destination_ip"],
            json!("not-an-ip"),
        );
        let r = check(&doc).unwrap_err();
        assert_eq!(r.submission_id.as_deref(), Some(SUBMISSION));
        assert_eq!(r.device_id.as_deref(), Some(DEVICE));
        let secret = with(
            &["events", "new_process", "0", "pid"],
            json!("s3cr3t-command-line"),
        );
        let r = check(&secret).unwrap_err();
        assert_eq!(r.reason, Reason::UnknownField);
        assert!(!r.detail.contains("s3cr3t"), "{}", r.detail);
        let long = with(&["submission_id"], json!("x".repeat(10_000)));
        let r = check(&long).unwrap_err();
        assert_eq!(
            r.submission_id.map(|s| s.len()),
            Some(64),
            "ids in logs are bounded"
        );
        let port = valid().to_string().replace("443", "\"s3cr3t\"");
        let r = parse_json(port.as_bytes(), LIMITS).unwrap_err();
        assert!(!r.detail.contains("s3cr3t"), "{}", r.detail);
    }

    /// `text` as the `source_ip`, then as the `destination_ip`, of a valid document.
    fn as_either_address(text: &str) -> [(Value, Reason); 2] {
        ["source_ip", "destination_ip"].map(|field| {
            let doc = with(&["events", "network_connection", "0", field], json!(text));
            let reason = match field {
                "source_ip" => Reason::InvalidSourceIp,
                _ => Reason::InvalidDestinationIp,
            };
            (doc, reason)
        })
    }

    #[test]
    fn ipv6_addresses_with_a_zone_are_accepted() {
        for ok in [
            // Windows: an interface index, a u32 in at most ten digits.
            "fe80::1%12",
            "fe80::1%0",
            "fe80::1%4294967295",
            // Linux: an interface name, up to 15 of [A-Za-z0-9._-].
            "fe80::1%eth0",
            "fe80::a:b%wlp3s0",
            "::1%lo",
            "fe80::1%enp0s31f6.100",
            "fe80::1%br-1a2b3c4d5e6f",
            "fe80::1%veth_A-1.2",
            "fe80::1%abcdefghijklmno",
        ] {
            for (doc, _) in as_either_address(ok) {
                assert!(check(&doc).is_ok(), "{ok}");
            }
        }
    }

    #[test]
    fn a_zone_is_an_interface_index_or_name_and_nothing_else() {
        let long_name = format!("fe80::1%{}", "z".repeat(16));
        for bad in [
            // What a hostile sensor writes where a consumer builds a query or a command.
            "fe80::1%';DROP--",
            "fe80::1%$(id)",
            "fe80::1%`id`",
            "fe80::1%a;b",
            "fe80::1%a/b",
            "fe80::1%a:b",
            "fe80::1%<script>",
            "fe80::1%a\\b",
            "fe80::1%\"x",
            "fe80::1%a b",
            "fe80::1%eth0\n",
            "fe80::1%\u{0}",
            "fe80::1%eth\u{e9}",
            // No zone, a zone twice, a zone on what is not an IPv6 address.
            "fe80::1%",
            "fe80::1%1%2",
            "10.0.0.1%eth0",
            "[fe80::1]%1",
            "%eth0",
            // An index beyond u32, or longer than ten digits.
            "fe80::1%4294967296",
            "fe80::1%00000000001",
            "fe80::1%99999999999999",
            // A name over 15 characters (Linux's IFNAMSIZ is 16 with its NUL),
            // and the two names Linux refuses.
            &long_name,
            "fe80::1%.",
            "fe80::1%..",
        ] {
            for (doc, reason) in as_either_address(bad) {
                assert_eq!(reason_of(&doc), reason, "{bad:?}");
            }
        }
    }

    #[test]
    fn strings_are_kept_as_sent_escapes_and_lone_surrogates_included() {
        let text = valid()
            .to_string()
            .replace(r#""calc.exe""#, r#""calc\ud800\u0000\/.exe""#)
            .replace(r#""admin""#, r#""\ud83d\ude00\udc00""#)
            .replace("192.168.0.1", r"fe80::1\u002512");
        let s = parse_json(text.as_bytes(), LIMITS).unwrap();
        let Event::NewProcess(p) = &s.events[0] else {
            panic!("{:?}", s.events[0])
        };
        assert_eq!(p.cmdl.json(), r#""calc\ud800\u0000\/.exe""#);
        assert_eq!(
            p.cmdl.decoded(),
            None,
            "no Rust string holds a lone surrogate"
        );
        assert_eq!(p.user.json(), r#""\ud83d\ude00\udc00""#);
        let Event::NetworkConnection(c) = &s.events[1] else {
            panic!("{:?}", s.events[1])
        };
        assert_eq!(
            c.source_ip.json(),
            r#""fe80::1\u002512""#,
            "checked decoded, kept raw"
        );
        assert_eq!(c.source_ip.decoded().as_deref(), Some("fe80::1%12"));
        // Still refused: what JSON's grammar refuses.
        for bad in [r#""calc\ud80""#, "\"calc\u{1}\"", r#""calc\x""#] {
            let text = valid().to_string().replace(r#""calc.exe""#, bad);
            assert_eq!(
                parse_json(text.as_bytes(), LIMITS).unwrap_err().reason,
                Reason::MalformedJson,
                "{bad}"
            );
        }
    }

    const DROP: Limits = LIMITS.with_invalid_events(InvalidEvents::DropEvent);

    /// The fleet's three event-level defects, at sequences 1, 3 and 4.
    fn with_broken_events() -> Value {
        let connection = |ip: &str, port: Value| json!({"source_ip": "10.0.0.1", "destination_ip": ip, "destination_port": port});
        with(
            &["events"],
            json!({
                "new_process": [
                    {"cmdl": "a", "user": "u"},
                    {"cmdl": null, "user": "u"},
                    {"cmdl": "b", "user": "u"}
                ],
                "network_connection": [
                    connection("not-an-ip", json!(443)),
                    connection("10.0.0.2", json!(70000)),
                    connection("10.0.0.3", json!(53))
                ]
            }),
        )
    }

    #[test]
    fn drop_event_drops_only_the_invalid_events_and_keeps_their_positions() {
        let text = with_broken_events().to_string();
        assert_eq!(
            parse_json(text.as_bytes(), LIMITS).unwrap_err().reason,
            Reason::NullValue,
            "the default still rejects the whole submission"
        );
        let s = parse_json(text.as_bytes(), DROP).unwrap();
        let dropped: Vec<(usize, Reason)> =
            s.dropped.iter().map(|d| (d.sequence, d.reason)).collect();
        assert_eq!(
            dropped,
            [
                (1, Reason::NullValue),
                (3, Reason::InvalidDestinationIp),
                (4, Reason::InvalidDestinationPort)
            ]
        );
        let kept: Vec<usize> = s.sequenced().map(|(sequence, _)| sequence).collect();
        assert_eq!(kept, [0, 2, 5]);
        for (i, bad) in [
            json!(["a", "u"]),
            json!({"cmdl": "a"}),
            json!({"cmdl": "a", "user": "u", "pid": 1}),
        ]
        .into_iter()
        .enumerate()
        {
            let doc = with(&["events", "new_process", "0"], bad);
            let text = doc.to_string();
            let s = parse_json(text.as_bytes(), DROP).unwrap();
            let expected = [
                Reason::WrongType,
                Reason::MissingField,
                Reason::UnknownField,
            ][i];
            assert_eq!(
                s.dropped,
                [DroppedEvent {
                    sequence: 0,
                    reason: expected
                }]
            );
            assert_eq!(s.events.len(), 1);
        }
    }

    #[test]
    fn drop_event_still_rejects_defects_of_the_submission_itself() {
        let broken = with_broken_events();
        let set = |path: &[&str], value: Value| {
            let mut doc = broken.clone();
            let node = parent(&mut doc, path);
            node[path[path.len() - 1]] = value;
            doc
        };
        for (doc, reason) in [
            (
                set(&["device_id"], json!("not-an-uuid")),
                Reason::InvalidDeviceId,
            ),
            (
                set(&["submission_id"], json!("not-an-uuid")),
                Reason::InvalidSubmissionId,
            ),
            (
                set(&["time_created"], json!("yesterday")),
                Reason::InvalidTimeCreated,
            ),
            (
                set(&["events", "file_write"], json!([])),
                Reason::UnknownEventType,
            ),
            (
                set(&["events", "new_process"], json!({"cmdl": "x"})),
                Reason::WrongType,
            ),
            (
                set(&["events", "new_process"], Value::Null),
                Reason::NullValue,
            ),
            (set(&["extra"], json!(1)), Reason::UnknownField),
        ] {
            let text = doc.to_string();
            assert_eq!(
                parse_json(text.as_bytes(), DROP).unwrap_err().reason,
                reason
            );
        }
        let many: Vec<Value> = (0..101)
            .map(|_| json!({"cmdl": null, "user": "b"}))
            .collect();
        let doc = with(&["events", "new_process"], Value::Array(many));
        assert_eq!(
            parse_json(doc.to_string().as_bytes(), DROP)
                .unwrap_err()
                .reason,
            Reason::TooManyEvents,
            "dropped events count toward the limit"
        );
    }

    #[test]
    fn every_reason_has_a_distinct_snake_case_code() {
        let codes: std::collections::HashSet<&str> =
            Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(codes.len(), Reason::ALL.len());
        for r in Reason::ALL {
            assert!(
                r.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            );
            assert_eq!(Reason::from_code(r.as_str()), Some(r));
        }
    }
}
