//! Any valid submission round-trips: the records published for it carry
//! exactly the submission's data, in document order, whatever the strings
//! hold (escapes, quotes, non-ASCII), whichever list comes first, and whether
//! the body is base64 or plain JSON.

use base64::Engine as _;
use edr_preprocessor::config::PartitionKey;
use edr_preprocessor::decode;
use edr_preprocessor::encode::{self, EVENT_ID_NAMESPACE};
use edr_preprocessor::model::{self, Limits};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use uuid::Uuid;

fn ip() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| std::net::Ipv4Addr::from(b).to_string()),
        any::<[u16; 8]>().prop_map(|s| std::net::Ipv6Addr::from(s).to_string()),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ._/-]{0,40}",
        any::<String>(),
        Just("C:\\Program Files\\x \"quoted\" \u{1F600} \t\n".to_owned()),
    ]
}

fn process() -> impl Strategy<Value = Value> {
    (text(), text()).prop_map(|(cmdl, user)| json!({"cmdl": cmdl, "user": user}))
}

fn connection() -> impl Strategy<Value = Value> {
    (ip(), ip(), any::<u16>())
        .prop_map(|(s, d, p)| json!({"source_ip": s, "destination_ip": d, "destination_port": p}))
}

#[derive(Debug, Clone)]
struct Doc {
    submission_id: Uuid,
    device_id: Uuid,
    time_created: String,
    /// Lists in the order their keys appear; `None` for an absent list.
    lists: Vec<(&'static str, Vec<Value>)>,
    base64: bool,
}

impl Doc {
    /// The JSON text, keys in `lists` order (serde_json's map keeps insertion
    /// order only with `preserve_order`, so the text is built by hand).
    fn text(&self) -> String {
        let events: Vec<String> = self
            .lists
            .iter()
            .map(|(key, list)| format!("\"{key}\":{}", Value::Array(list.clone())))
            .collect();
        format!(
            "{{\"device_id\":\"{}\",\"time_created\":{},\"events\":{{{}}},\"submission_id\":\"{}\"}}",
            self.device_id.to_string().to_uppercase(),
            Value::String(self.time_created.clone()),
            events.join(","),
            self.submission_id
        )
    }

    fn expected_events(&self) -> Vec<(&'static str, Value)> {
        self.lists
            .iter()
            .flat_map(|(key, list)| list.iter().map(move |v| (*key, v.clone())))
            .collect()
    }
}

fn doc() -> impl Strategy<Value = Doc> {
    (
        any::<u128>(),
        any::<u128>(),
        prop_oneof![
            Just("2021-03-29T12:06:09.576033"),
            Just("2024-02-29T23:59:59Z"),
            Just("1999-12-31T00:00:00+05:30")
        ],
        prop::option::of(prop::collection::vec(process(), 0..8)),
        prop::option::of(prop::collection::vec(connection(), 0..8)),
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
                    time_created: time.to_owned(),
                    lists,
                    base64,
                }
            },
        )
}

proptest! {
    #[test]
    fn a_valid_submission_round_trips_into_its_records(doc in doc()) {
        let text = doc.text();
        let body = if doc.base64 { base64::engine::general_purpose::STANDARD.encode(&text) } else { text.clone() };
        let decoded = decode::decode_body(&body).unwrap();
        let parsed = decode::parse_json(&decoded, Limits::with_max_events(100)).unwrap();
        let encoded = encode::encode(&parsed, PartitionKey::SubmissionId, "2026-11-22T18:47:44.758345Z", model::MAX_RECORD_BYTES).unwrap();

        let expected = doc.expected_events();
        prop_assert_eq!(encoded.records.len(), expected.len());
        prop_assert_eq!(&*encoded.partition_key, doc.submission_id.to_string());
        for (sequence, (record, (event_type, data))) in encoded.records.iter().zip(&expected).enumerate() {
            let record: Map<String, Value> = serde_json::from_slice(record).unwrap();
            prop_assert_eq!(&record["event_type"], event_type);
            prop_assert_eq!(&record["event_data"], data);
            prop_assert_eq!(&record["sequence"], sequence);
            prop_assert_eq!(&record["event_count"], expected.len());
            prop_assert_eq!(&record["submission_id"], &doc.submission_id.to_string());
            prop_assert_eq!(&record["device_id"], &doc.device_id.to_string());
            prop_assert_eq!(&record["time_created"], &doc.time_created);
            let name = format!("{}/{}/{sequence}", doc.device_id, doc.submission_id);
            prop_assert_eq!(&record["event_id"], &Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes()).to_string());
        }
    }
}
