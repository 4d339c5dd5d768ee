//! Hostile and broken input: bodies at the SQS size limit, nesting thousands
//! deep, strings of megabytes, hundreds of thousands of tiny events, numbers
//! no integer type holds. Each is rejected with its reason (or accepted when
//! it is valid) without a panic, and the logs of a batch of them carry ids and
//! reasons only: no body, no command line, bounded lines.

use crate::support;

use base64::Engine as _;
use edr_preprocessor::decode;
use edr_preprocessor::model::{Limits, Reason};
use serde_json::json;
use support::*;

const LIMITS: Limits = Limits::with_max_events(10_000);

fn reason(body: &str) -> Option<Reason> {
    let decoded = match decode::decode_body(body) {
        Ok(d) => d,
        Err(r) => return Some(r.reason),
    };
    decode::parse_json(&decoded, LIMITS).err().map(|r| r.reason)
}

fn with_events(events: &str) -> String {
    format!(
        r#"{{"submission_id":"{}","device_id":"{}","time_created":"2021-03-29T12:06:09","events":{events}}}"#,
        uuid(0x5b, 1),
        uuid(0xde, 1)
    )
}

#[test]
fn nesting_thousands_deep_is_refused_without_recursing() {
    for depth in [1_000, 100_000] {
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(
            reason(&with_events(&format!(
                r#"{{"new_process":[{{"cmdl":{deep},"user":"u"}}]}}"#
            ))),
            Some(Reason::WrongType)
        );
        assert_eq!(
            reason(&with_events(&format!(r#"{{"new_process":{deep}}}"#))),
            Some(Reason::WrongType)
        );
        assert_eq!(
            reason(&with_events(&format!(r#"{{"extra":{deep}}}"#))),
            Some(Reason::UnknownEventType)
        );
        let objects = format!("{}{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        assert_eq!(
            reason(&format!("{{\"extra\":{objects}}}")),
            Some(Reason::UnknownField)
        );
        assert_eq!(reason(&objects), Some(Reason::UnknownField));
    }
}

#[test]
fn strings_of_megabytes_are_rejected_when_they_cannot_be_published() {
    let huge = "A".repeat(2 * 1024 * 1024);
    let body = with_events(&format!(
        r#"{{"new_process":[{{"cmdl":"{huge}","user":"u"}}]}}"#
    ));
    let decoded = decode::decode_body(&body).unwrap();
    let parsed = decode::parse_json(&decoded, LIMITS).unwrap();
    let encode = |max_record_bytes| {
        edr_preprocessor::encode::encode(
            &parsed,
            edr_preprocessor::config::PartitionKey::SubmissionId,
            "t",
            max_record_bytes,
        )
    };
    let err = encode(edr_preprocessor::model::MAX_RECORD_BYTES).unwrap_err();
    assert_eq!(err.reason, Reason::EventTooLarge);
    assert!(err.detail.len() < 200);
    // A stream whose MaxRecordSize was raised takes it.
    let records = encode(edr_preprocessor::model::MAX_RECORD_BYTES_LIMIT).unwrap();
    assert!(records.records[0].len() > 2 * 1024 * 1024);
}

#[test]
fn hundreds_of_thousands_of_tiny_events_are_too_many() {
    let tiny = r#"{"cmdl":"","user":""}"#;
    let list = vec![tiny; 300_000].join(",");
    let body = base64::engine::general_purpose::STANDARD
        .encode(with_events(&format!(r#"{{"new_process":[{list}]}}"#)));
    assert!(body.len() > 1024 * 1024, "beyond the SQS body limit");
    assert_eq!(reason(&body), Some(Reason::TooManyEvents));
}

#[test]
fn a_body_at_the_sqs_limit_is_handled() {
    // ~1 MiB of base64: 2,800 events of ~270 bytes.
    let events: Vec<String> = (0..2_800)
        .map(|i| json!({"cmdl": format!("{:0>250}", i), "user": "u"}).to_string())
        .collect();
    let body = base64::engine::general_purpose::STANDARD.encode(with_events(&format!(
        r#"{{"new_process":[{}]}}"#,
        events.join(",")
    )));
    assert!(
        body.len() > 950 * 1024 && body.len() <= 1024 * 1024,
        "{} bytes",
        body.len()
    );
    assert_eq!(reason(&body), None);
}

#[test]
fn numbers_no_port_can_hold_are_refused() {
    for (port, expected) in [
        ("1e400", Reason::MalformedJson),
        ("-0", Reason::InvalidDestinationPort),
        ("18446744073709551616", Reason::InvalidDestinationPort),
        ("-9223372036854775809", Reason::InvalidDestinationPort),
        ("0.5", Reason::InvalidDestinationPort),
        ("true", Reason::WrongType),
    ] {
        let body = with_events(&format!(
            r#"{{"network_connection":[{{"source_ip":"::1","destination_ip":"::1","destination_port":{port}}}]}}"#
        ));
        assert_eq!(reason(&body), Some(expected), "port {port}");
    }
}

#[test]
fn control_characters_and_escapes_are_handled() {
    assert_eq!(
        reason(&with_events(
            r#"{"new_process":[{"cmdl":"\u0000\ud83d\ude00\"","user":"\\"}]}"#
        )),
        None
    );
    // A UTF-16 command line with an unpaired surrogate is valid JSON and
    // real telemetry: it is kept (issue 13), and published as sent.
    for lone in [
        r#"\ud800"#,
        r#"\udc00"#,
        r#"a\ud800\ud800b"#,
        r#"\ude00\ud83d"#,
    ] {
        assert_eq!(
            reason(&with_events(&format!(
                r#"{{"new_process":[{{"cmdl":"{lone}","user":"u"}}]}}"#
            ))),
            None,
            "lone surrogate {lone}"
        );
    }
    assert_eq!(
        reason(&with_events(
            r#"{"new_process":[{"cmdl":"\ud80","user":"u"}]}"#
        )),
        Some(Reason::MalformedJson),
        "a broken escape is still broken"
    );
    assert_eq!(
        reason(&with_events(
            "{\"new_process\":[{\"cmdl\":\"a\u{1}b\",\"user\":\"u\"}]}"
        )),
        Some(Reason::MalformedJson),
        "raw control character"
    );
}

#[test]
fn logs_carry_ids_and_reasons_never_bodies_or_command_lines() {
    const SECRET: &str = "SECRET-PASSWORD-ON-THE-COMMAND-LINE";
    let mut unknown = submission(1, 1, 0);
    unknown["events"]["new_process"][0]["password"] = json!(SECRET);
    let mut typed = submission(2, 1, 0);
    typed["events"]["new_process"][0]["user"] = json!({ "secret": SECRET });
    let mut bad_port = submission(3, 0, 1);
    bad_port["events"]["network_connection"][0]["destination_port"] = json!(SECRET);
    let mut long_field = submission(4, 1, 0);
    long_field[SECRET.repeat(1000)] = json!(1);
    let mut long_id = submission(5, 1, 0);
    long_id["submission_id"] = json!(SECRET.repeat(1000));
    let mut failing = submission(6, 1, 0);
    failing["events"]["new_process"][0]["cmdl"] = json!(SECRET);
    let event = batch(vec![
        message("m-unknown", &b64(&unknown)),
        message("m-typed", &b64(&typed)),
        message("m-port", &b64(&bad_port)),
        message("m-long-field", &b64(&long_field)),
        message("m-long-id", &b64(&long_id)),
        message("m-garbage", &format!("{SECRET}%%%")),
        message("m-fails", &b64(&failing)),
    ]);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let h = handler(ScriptedKinesis::per_record(|_| kms_denied()), &[]);
    let capture = Logs::capture();
    let response = runtime.block_on(h.handle(event, far_deadline())).unwrap();
    assert_eq!(failed_ids(&response), ["m-fails"]);

    let logs = capture.text();
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("submission rejected"))
            .count(),
        6,
        "{logs}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("m-fails") && l.contains("KMSAccessDeniedException"))
    );
    for line in &lines {
        assert!(line.len() < 1024, "a log line of {} bytes", line.len());
        if line.contains("m-long-id") {
            // An id is logged as an id, cut to 64 bytes.
            let parsed: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(
                parsed["fields"]["submission_id"].as_str().map(str::len),
                Some(64)
            );
            continue;
        }
        assert!(!line.contains(SECRET), "a log line leaks content: {line}");
    }
}
