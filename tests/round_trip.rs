//! Any valid submission round-trips: the records published for it carry
//! exactly the submission's data, in document order, whatever the strings
//! hold (escapes of every kind, lone and paired surrogates, `\u0000`, quotes,
//! non-ASCII), whichever list comes first, and whether the body is base64 or
//! plain JSON. Every string of `event_data` is published byte for byte as
//! the sensor wrote it: the test compares the record's bytes with the text of
//! the event in the document. With invalid events mixed in, the default mode
//! rejects the submission, and `INVALID_EVENTS=drop-event` drops exactly the
//! invalid ones while the others keep their sequence and id.

use base64::Engine as _;
use edr_preprocessor::config::PartitionKey;
use edr_preprocessor::encode::EVENT_ID_NAMESPACE;
use edr_preprocessor::model::{InvalidEvents, Limits, Reason};
use edr_preprocessor::transform::transform;
use proptest::prelude::*;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

fn ip() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| std::net::Ipv4Addr::from(b).to_string()),
        any::<[u16; 8]>().prop_map(|s| std::net::Ipv6Addr::from(s).to_string()),
        // Link-local with a zone, as Windows and Linux write it.
        (
            any::<u16>(),
            prop_oneof![Just("12".to_owned()), "[a-z]{2,4}[0-9]{1,2}"]
        )
            .prop_map(|(host, zone)| format!("fe80::{host:x}%{zone}")),
    ]
}

/// One piece of a JSON string as a sensor may write it.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ._/-]{1,8}",
        any::<String>().prop_map(|s| {
            let token = serde_json::to_string(&s).unwrap();
            token[1..token.len() - 1].to_owned()
        }),
        prop_oneof![
            Just(r"\ud800"),
            Just(r"\udfff"),
            Just(r"\udc00"),
            Just(r"\ud83d\ude00"),
            Just(r"\u0000"),
            Just(r#"\""#),
            Just(r"\\"),
            Just(r"\/"),
            Just(r"\n"),
            Just(r"\u00E9"),
            Just("\u{1F600}"),
        ]
        .prop_map(str::to_owned),
    ]
}

/// A JSON string token, quotes included.
fn token() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..6).prop_map(|p| format!("\"{}\"", p.concat()))
}

/// An event's text, and the reason it is invalid, if it is.
type EventText = (String, Option<Reason>);

fn process() -> impl Strategy<Value = EventText> {
    (token(), token())
        .prop_map(|(cmdl, user)| (format!(r#"{{"cmdl":{cmdl},"user":{user}}}"#), None))
}

fn connection() -> impl Strategy<Value = EventText> {
    (ip(), ip(), any::<u16>()).prop_map(|(s, d, p)| {
        (
            format!(r#"{{"source_ip":"{s}","destination_ip":"{d}","destination_port":{p}}}"#),
            None,
        )
    })
}

/// The defects of real sensors, and a few more, each with its reason.
fn broken_process() -> impl Strategy<Value = EventText> {
    prop_oneof![
        Just((r#"{"cmdl":null,"user":"u"}"#, Reason::NullValue)),
        Just((r#"{"cmdl":"a"}"#, Reason::MissingField)),
        Just((r#"{"cmdl":"a","user":7}"#, Reason::WrongType)),
        Just(("7", Reason::WrongType)),
        Just((r#"["a","u"]"#, Reason::WrongType)),
        Just((r#"{"cmdl":"a","user":"u","pid":1}"#, Reason::UnknownField)),
    ]
    .prop_map(|(text, reason)| (text.to_owned(), Some(reason)))
}

fn broken_connection() -> impl Strategy<Value = EventText> {
    let connection = |s: &str, d: &str, p: &str| {
        format!(r#"{{"source_ip":"{s}","destination_ip":"{d}","destination_port":{p}}}"#)
    };
    prop_oneof![
        Just((connection("not-an-ip", "::1", "1"), Reason::InvalidSourceIp)),
        Just((
            connection("::1", "not-an-ip", "1"),
            Reason::InvalidDestinationIp
        )),
        Just((
            connection("::1", "fe80::1%", "1"),
            Reason::InvalidDestinationIp
        )),
        Just((
            connection("::1", r"\ud800", "1"),
            Reason::InvalidDestinationIp
        )),
        Just((
            connection("::1", "::1", "70000"),
            Reason::InvalidDestinationPort
        )),
        Just((
            connection("::1", "::1", "-1"),
            Reason::InvalidDestinationPort
        )),
    ]
    .prop_map(|(text, reason)| (text, Some(reason)))
}

#[derive(Debug, Clone)]
struct Doc {
    submission_id: Uuid,
    device_id: Uuid,
    /// The token as sent, and its value.
    time_created: (&'static str, &'static str),
    /// Lists in the order their keys appear; an absent list is not there.
    lists: Vec<(&'static str, Vec<EventText>)>,
    base64: bool,
}

impl Doc {
    /// The JSON text, keys in `lists` order, built by hand so that every
    /// string is exactly the token generated for it.
    fn text(&self) -> String {
        let events: Vec<String> = self
            .lists
            .iter()
            .map(|(key, list)| {
                let texts: Vec<&str> = list.iter().map(|(t, _)| t.as_str()).collect();
                format!("\"{key}\":[{}]", texts.join(","))
            })
            .collect();
        format!(
            "{{\"device_id\":\"{}\",\"time_created\":{},\"events\":{{{}}},\"submission_id\":\"{}\"}}",
            self.device_id.to_string().to_uppercase(),
            self.time_created.0,
            events.join(","),
            self.submission_id
        )
    }

    /// Every event in document order: (type, text, reason if invalid).
    fn events(&self) -> Vec<(&'static str, &str, Option<Reason>)> {
        self.lists
            .iter()
            .flat_map(|(key, list)| list.iter().map(move |(t, r)| (*key, t.as_str(), *r)))
            .collect()
    }
}

fn doc(broken: bool) -> impl Strategy<Value = Doc> {
    let weight = u32::from(broken);
    let process = prop_oneof![4 => process(), weight => broken_process()];
    let connection = prop_oneof![4 => connection(), weight => broken_connection()];
    (
        any::<u128>(),
        any::<u128>(),
        prop_oneof![
            Just((
                "\"2021-03-29T12:06:09.576033\"",
                "2021-03-29T12:06:09.576033"
            )),
            Just(("\"2024-02-29T23:59:59Z\"", "2024-02-29T23:59:59Z")),
            Just(("\"1999-12-31T00:00:00+05:30\"", "1999-12-31T00:00:00+05:30")),
            // Escapes in a checked string that is published as sent.
            Just((r#""2021-03-29T12:06:09\u002E5""#, "2021-03-29T12:06:09.5")),
            Just((
                r#""2021-03-29\u0020\u0031\u0032:06:09""#,
                "2021-03-29 12:06:09"
            )),
        ],
        prop::option::of(prop::collection::vec(process, 0..8)),
        prop::option::of(prop::collection::vec(connection, 0..8)),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(s, d, time, processes, connections, connections_first, base64)| {
                let mut lists = Vec::new();
                if let Some(p) = processes {
                    lists.push(("new_process", p));
                }
                if let Some(c) = connections {
                    lists.push(("network_connection", c));
                }
                if connections_first {
                    lists.reverse();
                }
                Doc {
                    submission_id: Uuid::from_u128(s),
                    device_id: Uuid::from_u128(d),
                    time_created: time,
                    lists,
                    base64,
                }
            },
        )
}

const EVENT_DATA: &str = ",\"event_data\":";

/// The record's fields before `event_data` as JSON, and `event_data`'s
/// bytes (which may hold a lone surrogate that serde_json cannot decode).
fn split(record: &[u8]) -> (Map<String, Value>, &str) {
    let text = std::str::from_utf8(record).unwrap();
    let at = text.find(EVENT_DATA).unwrap();
    let head: Map<String, Value> = serde_json::from_str(&format!("{}}}", &text[..at])).unwrap();
    (head, &text[at + EVENT_DATA.len()..text.len() - 1])
}

fn check(doc: &Doc, invalid_events: InvalidEvents) -> Result<(), TestCaseError> {
    let text = doc.text();
    let body = if doc.base64 {
        base64::engine::general_purpose::STANDARD.encode(&text)
    } else {
        text.clone()
    };
    let limits = Limits::with_max_events(100).with_invalid_events(invalid_events);
    let result = transform(
        &body,
        limits,
        PartitionKey::SubmissionId,
        "2026-11-22T18:47:44.758345Z",
    );
    let events = doc.events();
    let reasons: Vec<Reason> = events.iter().filter_map(|e| e.2).collect();
    if invalid_events == InvalidEvents::RejectSubmission && !reasons.is_empty() {
        let rejection = result.expect_err("an invalid event rejects the submission");
        prop_assert!(
            reasons.contains(&rejection.reason),
            "{:?} not in {:?}",
            rejection.reason,
            reasons
        );
        return Ok(());
    }
    let encoded = result.unwrap();
    let kept: Vec<_> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.2.is_none())
        .collect();
    let dropped: Vec<(usize, Reason)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.2.map(|r| (i, r)))
        .collect();
    let got: Vec<(usize, Reason)> = encoded
        .dropped
        .iter()
        .map(|d| (d.sequence, d.reason))
        .collect();
    prop_assert_eq!(got, dropped);
    prop_assert_eq!(encoded.records.len(), kept.len());
    prop_assert_eq!(&*encoded.partition_key, doc.submission_id.to_string());
    let digest: String = Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let time_token = format!("\"time_created\":{},", doc.time_created.0);
    for (record, (sequence, (event_type, data, _))) in encoded.records.iter().zip(&kept) {
        let (head, event_data) = split(record);
        prop_assert_eq!(event_data, *data, "event_data is published byte for byte");
        prop_assert_eq!(&head["event_type"], event_type);
        prop_assert_eq!(&head["sequence"], sequence);
        prop_assert_eq!(&head["event_count"], kept.len());
        prop_assert_eq!(&head["submission_id"], &doc.submission_id.to_string());
        prop_assert_eq!(&head["device_id"], &doc.device_id.to_string());
        prop_assert_eq!(&head["time_created"], doc.time_created.1);
        prop_assert!(std::str::from_utf8(record).unwrap().contains(&time_token));
        let name = format!(
            "{}/{}/{digest}/{sequence}",
            doc.device_id, doc.submission_id
        );
        prop_assert_eq!(
            &head["event_id"],
            &Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes()).to_string()
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn a_valid_submission_round_trips_into_its_records(doc in doc(false)) {
        check(&doc, InvalidEvents::RejectSubmission)?;
        check(&doc, InvalidEvents::DropEvent)?;
    }

    #[test]
    fn invalid_events_reject_the_submission_or_only_themselves(doc in doc(true)) {
        check(&doc, InvalidEvents::RejectSubmission)?;
        check(&doc, InvalidEvents::DropEvent)?;
    }
}

/// Records holding lone surrogates, NUL and every escape, which serde_json
/// cannot read into a `Value`, are JSON that Python's `json.loads` (strict:
/// control characters refused) reads, with the values the sensor meant.
#[test]
fn python_reads_every_record_with_the_strings_the_sensor_sent() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut lines = String::new();
    let mut expected = Vec::new();
    while expected.len() < 300 {
        let doc = doc(false).new_tree(&mut runner).unwrap().current();
        let encoded = transform(
            &doc.text(),
            Limits::with_max_events(100),
            PartitionKey::SubmissionId,
            "2026-11-22T18:47:44.758345Z",
        )
        .unwrap();
        for (record, (_, data, _)) in encoded.records.iter().zip(doc.events()) {
            lines.push_str(std::str::from_utf8(record).unwrap());
            lines.push('\n');
            expected.push(data.to_owned());
        }
    }
    // Each record's event_data, as Python reads it, against the event's
    // text in the document as Python reads it.
    let script = "import json, sys\n\
        lines = sys.stdin.read().split('\\n')\n\
        n = int(lines[0])\n\
        for record, data in zip(lines[1:n + 1], lines[n + 1:2 * n + 1]):\n\
        \x20   assert json.loads(record)['event_data'] == json.loads(data), (record, data)\n\
        print(n)\n";
    let input = format!("{}\n{lines}{}\n", expected.len(), expected.join("\n"));
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 on PATH");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "python3 refused a record");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        expected.len().to_string()
    );
    assert!(
        lines.contains(r"\ud800") || lines.contains(r"\udfff") || lines.contains(r"\udc00"),
        "the sample holds lone surrogates"
    );
}
