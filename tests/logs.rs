//! The real `bootstrap` binary's log lines under a stub Lambda Runtime API: no
//! payload reaches them at any log level the template allows, and every line
//! an invocation writes carries its Lambda request id and X-Ray trace id.

use crate::runtime::{BINARY, lambda_env, sensor_batch};
use crate::support;

use std::io::Read;
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;
use support::runtime_api::RuntimeApiStub;
use support::{b64, batch, message, submission};

/// What the process wrote while it served `invocations` answers.
struct Output {
    answers: Vec<(String, String, String)>,
    stdout: String,
    stderr: String,
}

/// Runs the binary against `stub` (already started at `address`, its
/// events queued) with `settings`, until it has answered `invocations`
/// times; stdout and stderr are read while it runs (at TRACE a dependency
/// can write more than a pipe holds).
async fn run(
    stub: &RuntimeApiStub,
    address: &str,
    settings: &[(&str, &str)],
    invocations: usize,
) -> Output {
    let mut command = Command::new(BINARY);
    lambda_env(&mut command, address);
    command
        .env("STREAM_NAME", "events")
        .env("AWS_ENDPOINT_URL", format!("http://{address}"));
    for (name, value) in settings {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut out = String::new();
            pipe.read_to_string(&mut out).unwrap();
            out
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let answers = stub.answers(invocations).await;
    child.kill().unwrap();
    let _ = child.wait();
    Output {
        answers,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// A marker no log line can hold by chance.
fn unique_marker(level: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("cmdl-marker-{level}-{}-{nanos:x}-end", std::process::id())
}

/// The base64 text that `marker` becomes wherever it starts in an encoded
/// body, for each of the three alignments: the 4-character groups made only
/// of the marker's bytes.
fn base64_forms(marker: &str) -> Vec<String> {
    (0..3)
        .map(|offset| {
            let mut bytes = vec![b'x'; offset];
            bytes.extend_from_slice(marker.as_bytes());
            let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
            let first = if offset == 0 { 0 } else { 1 };
            let last = bytes.len() / 3;
            encoded[4 * first..4 * last].to_owned()
        })
        .collect()
}

/// A valid submission whose first command line is `marker`.
fn with_marker(n: usize, marker: &str) -> Value {
    let mut doc = submission(n, 2, 1);
    doc["events"]["new_process"][0]["cmdl"] = marker.into();
    doc
}

/// One batch: the marker in a plain-JSON body, in a base64 body, and in an
/// invalid plain-JSON body (no `device_id`: rejected); returns the event and
/// the base64 body.
fn batch_with_marker(marker: &str) -> (Value, String) {
    let plain = with_marker(1, marker).to_string();
    let encoded = b64(&with_marker(2, marker));
    let mut invalid = with_marker(3, marker);
    invalid.as_object_mut().unwrap().remove("device_id");
    let event = serde_json::to_value(batch(vec![
        message("plain", &plain),
        message("base64", &encoded),
        message("invalid", &invalid.to_string()),
    ]))
    .unwrap();
    (event, encoded)
}

/// The lines of `output` (stdout and stderr) that hold `marker`, in clear or
/// in base64, or the whole base64 body.
fn lines_with_payload<'a>(output: &'a Output, marker: &str, encoded_body: &str) -> Vec<&'a str> {
    let mut needles = base64_forms(marker);
    needles.push(marker.to_owned());
    needles.push(encoded_body.to_owned());
    output
        .stdout
        .lines()
        .chain(output.stderr.lines())
        .filter(|line| needles.iter().any(|n| line.contains(n.as_str())))
        .collect()
}

#[test]
fn the_base64_forms_find_the_marker_at_every_alignment() {
    let marker = unique_marker("TEST");
    let forms = base64_forms(&marker);
    for prefix in ["", "a", "ab", "abc", "abcd"] {
        let body = base64::engine::general_purpose::STANDARD.encode(format!("{prefix}{marker}}}"));
        assert!(
            forms.iter().any(|f| body.contains(f.as_str())),
            "prefix {prefix:?}: {body}"
        );
    }
    assert!(forms.iter().all(|f| f.len() >= marker.len()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_payload_reaches_the_logs_at_any_log_level() {
    // The environment the template gives the function: Lambda's filter at
    // TRACE, the chosen level in LOG_LEVEL. At TRACE lambda_runtime logs every
    // event it receives, whole; it must stay at WARN whatever LOG_LEVEL says.
    for level in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] {
        let marker = unique_marker(level);
        let (event, encoded) = batch_with_marker(&marker);
        let stub = RuntimeApiStub::default();
        let address = stub.start().await;
        stub.push(event);
        let settings = [("LOG_LEVEL", level), ("AWS_LAMBDA_LOG_LEVEL", "TRACE")];
        let output = run(&stub, &address, &settings, 1).await;

        let (_, kind, body) = &output.answers[0];
        assert_eq!(
            (kind.as_str(), body.as_str()),
            ("response", r#"{"batchItemFailures":[]}"#)
        );
        // The marker went through the function: both valid bodies were published.
        let published = stub.state.lock().unwrap().records.clone();
        let with = published
            .iter()
            .filter(|r| r.to_string().contains(&marker))
            .count();
        assert_eq!(with, 2, "LOG_LEVEL={level}: {published:?}");
        if level == "TRACE" {
            assert!(output.stdout.contains("\"batch processed\""));
        }
        let leaks = lines_with_payload(&output, &marker, &encoded);
        assert!(leaks.is_empty(), "LOG_LEVEL={level}: {leaks:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_can_still_ask_for_a_dependency_below_warn_and_is_warned_about() {
    // The way to debug a dependency stays open, on purpose, and says so at
    // start-up; this also shows that the check above finds a payload when one
    // is written.
    let marker = unique_marker("RUST_LOG");
    let (event, encoded) = batch_with_marker(&marker);
    let stub = RuntimeApiStub::default();
    let address = stub.start().await;
    stub.push(event);
    let settings = [("LOG_LEVEL", "INFO"), ("RUST_LOG", "lambda_runtime=trace")];
    let output = run(&stub, &address, &settings, 1).await;

    assert!(!lines_with_payload(&output, &marker, &encoded).is_empty());
    let warning: Vec<Value> = output
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["level"] == "WARN" && l["rust_log"] == "lambda_runtime=trace")
        .collect();
    assert_eq!(warning.len(), 1, "{}", output.stdout);
    assert!(
        warning[0].get("span").is_none(),
        "a start-up line: {:?}",
        warning[0]
    );
    assert_eq!(warning[0]["below_warn"], "lambda_runtime=trace");
}

/// A batch whose invocation writes lines at INFO and WARN: the sensor
/// samples and one undecodable body.
fn batch_with_a_rejection() -> Value {
    let mut event = sensor_batch();
    let mut invalid = event["Records"][0].clone();
    invalid["messageId"] = "invalid-1".into();
    invalid["body"] = "%%%".into();
    event["Records"].as_array_mut().unwrap().push(invalid);
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_of_an_invocation_carries_its_request_id_and_trace_id() {
    let stub = RuntimeApiStub::default();
    let address = stub.start().await;
    stub.push(batch_with_a_rejection());
    stub.push_untraced(batch_with_a_rejection());
    stub.push(batch_with_a_rejection());
    // AWS_LAMBDA_LOG_LEVEL=WARN makes the function write an ERROR line at
    // start-up (Lambda would drop its metrics), outside any invocation.
    let settings = [("LOG_LEVEL", "INFO"), ("AWS_LAMBDA_LOG_LEVEL", "WARN")];
    let output = run(&stub, &address, &settings, 3).await;
    let sent = stub.state.lock().unwrap().invocations.clone();
    assert_eq!(sent.len(), 3);
    assert!(sent[0].1.is_some() && sent[1].1.is_none() && sent[2].1.is_some());

    let lines: Vec<Value> = output
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    // The EMF documents are unchanged: no level, no span, one summary each.
    let (emf, logs): (Vec<&Value>, Vec<&Value>) =
        lines.iter().partition(|l| l.get("_aws").is_some());
    assert_eq!(
        emf.iter()
            .filter(|d| d.get("SubmissionsReceived").is_some())
            .count(),
        3
    );
    for doc in &emf {
        assert!(
            doc.get("level").is_none() && doc.get("span").is_none(),
            "{doc}"
        );
    }
    for line in &logs {
        assert!(
            line["level"].is_string(),
            "every log line has a level: {line}"
        );
    }
    // Lines outside any invocation are the start-up lines: the ERROR about
    // Lambda's level, and what the task spawned at start-up (which no
    // invocation waits for) finds about the stream's record distribution.
    // Every other line belongs to an invocation and says which.
    let (startup, invocation): (Vec<&Value>, Vec<&Value>) =
        logs.iter().partition(|l| l.get("span").is_none());
    assert!(
        startup
            .iter()
            .any(|l| l["level"] == "ERROR" && l["application_log_level"] == "WARN"),
        "{startup:#?}"
    );
    for line in &startup {
        assert!(
            line.get("application_log_level").is_some() || line.get("stream").is_some(),
            "a line of an invocation without its request id: {line}"
        );
    }
    let mut seen = Vec::new();
    for line in &invocation {
        let span = &line["span"];
        let request = span["requestId"]
            .as_str()
            .unwrap_or_else(|| panic!("{line}"));
        let (_, trace) = sent.iter().find(|(id, _)| id == request).unwrap();
        assert_eq!(span["xrayTraceId"].as_str(), trace.as_deref(), "{line}");
        if seen.last() != Some(&request) {
            assert!(!seen.contains(&request), "invocations interleave: {line}");
            seen.push(request);
        }
    }
    assert_eq!(seen, ["request-1", "request-2", "request-3"]);
    for (request, _) in &sent {
        let messages: Vec<&str> = logs
            .iter()
            .filter(|l| l["span"]["requestId"] == request.as_str())
            .filter_map(|l| l["message"].as_str())
            .collect();
        assert!(
            messages.contains(&"batch processed"),
            "{request}: {messages:?}"
        );
        assert!(
            messages.contains(&"submission rejected"),
            "{request}: {messages:?}"
        );
    }
}
