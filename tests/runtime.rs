//! The real `bootstrap` binary under a stub Lambda Runtime API: it refuses to
//! start half-configured, serves invocations through the real runtime loop
//! and SDK client, and a panic inside one invocation fails that invocation
//! only, while the process goes on serving.

use crate::support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::runtime_api::RuntimeApiStub;

pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_bootstrap");

/// The environment Lambda gives the process, with stdout and stderr piped.
pub(crate) fn lambda_env(command: &mut Command, runtime_api: &str) {
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "edr-preprocessor")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/edr-preprocessor")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("PIPELINE_KEY", edr_preprocessor::config::TEST_PIPELINE_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
}

pub(crate) fn sensor_batch() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/events/sensor-batch.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs the binary for one invocation of the sensor batch with `timeout` to
/// its deadline and the given settings; returns the answer's body, the ids
/// it reports failed, and how long the answer took.
async fn invoke_once(
    timeout: Duration,
    settings: &[(&str, String)],
) -> (String, Vec<String>, Duration) {
    let stub = RuntimeApiStub {
        timeout,
        ..RuntimeApiStub::default()
    };
    invoke_stub(stub, settings).await
}

/// [`invoke_once`] under a stub set up by the caller.
async fn invoke_stub(
    stub: RuntimeApiStub,
    settings: &[(&str, String)],
) -> (String, Vec<String>, Duration) {
    let address = stub.start().await;
    stub.push(sensor_batch());
    let mut command = Command::new(BINARY);
    lambda_env(&mut command, &address);
    command.env("STREAM_NAME", "events");
    for (name, value) in settings {
        command.env(name, value);
    }
    let started = std::time::Instant::now();
    let mut child = command.spawn().unwrap();
    let answers = stub.answers(1).await;
    let took = started.elapsed();
    child.kill().unwrap();
    let _ = child.wait();
    let (_, kind, body) = answers[0].clone();
    assert_eq!(kind, "response", "{body}");
    let failed = serde_json::from_str::<serde_json::Value>(&body).unwrap()["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect();
    (body, failed, took)
}

fn message_ids() -> Vec<String> {
    sensor_batch()["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["messageId"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_binary_refuses_to_start_with_a_bad_setting() {
    for (name, value) in [
        ("STREAM_NAME", ""),
        ("ORDERING", "sometimes"),
        ("MAX_ATTEMPTS", "0"),
    ] {
        let mut command = Command::new(BINARY);
        lambda_env(&mut command, "127.0.0.1:9");
        if name != "STREAM_NAME" {
            command.env("STREAM_NAME", "events");
        }
        command.env(name, value);
        let output = command.output().unwrap();
        assert!(
            !output.status.success(),
            "{name}={value} must stop the process"
        );
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(all.contains(name), "the error names {name}: {all}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_publishes_a_sensor_batch_through_the_runtime_loop() {
    let stub = RuntimeApiStub::default();
    let address = stub.start().await;
    let event = sensor_batch();
    stub.push(event.clone());
    stub.push(event);

    let mut command = Command::new(BINARY);
    lambda_env(&mut command, &address);
    command
        .env("STREAM_NAME", "events")
        .env("AWS_ENDPOINT_URL", format!("http://{address}"));
    let mut child = command.spawn().unwrap();
    let answers = stub.answers(2).await;
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);

    for (id, kind, body) in &answers {
        assert_eq!(kind, "response", "{id}: {body}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(body).unwrap(),
            serde_json::json!({"batchItemFailures": []})
        );
    }
    let state = stub.state.lock().unwrap();
    let submissions: std::collections::HashSet<&str> = state
        .records
        .iter()
        .filter_map(|r| r["submission_id"].as_str())
        .collect();
    assert_eq!(submissions.len(), 5);
    // Logs and metrics are JSON lines on stdout.
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("\"batch processed\"") && l.contains("\"published\":5")),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(
            |l| l.contains("\"CloudWatchMetrics\"") && l.contains("\"SubmissionsPublished\":5")
        )
    );
    assert!(
        stdout
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "every stdout line is JSON"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_past_its_deadline_reports_failures_in_time() {
    // Kinesis refuses connections (nothing listens on port 9): every call fails,
    // retries stop at the deadline, and the answer names every valid message.
    let settings = [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9".to_owned()),
        ("MAX_ATTEMPTS", "100".to_owned()),
        ("DEADLINE_MARGIN_MS", "300".to_owned()),
    ];
    let (_, failed, took) = invoke_once(Duration::from_secs(2), &settings).await;
    assert_eq!(failed, message_ids());
    assert!(
        took < Duration::from_secs(2),
        "answered within the 2 s deadline: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kinesis_that_accepts_but_never_answers_cannot_eat_the_invocation() {
    // A black hole: accepts connections, reads, never answers. The SDK's
    // per-attempt timeout ends each call; the publisher retries until the deadline.
    let (hole_address, accepted) = black_hole().await;

    let settings = [
        ("AWS_ENDPOINT_URL", format!("http://{hole_address}")),
        ("KINESIS_CALL_TIMEOUT_MS", "400".to_owned()),
        ("RETRY_MAX_DELAY_MS", "100".to_owned()),
        ("MAX_ATTEMPTS", "100".to_owned()),
    ];
    let (body, failed, took) = invoke_once(Duration::from_secs(3), &settings).await;
    assert_eq!(failed, message_ids(), "{body}");
    assert!(
        took < Duration::from_secs(3),
        "answered within the deadline: {took:?}"
    );
    assert!(
        accepted.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "a hung call was abandoned and retried"
    );
}

/// Accepts connections and never answers; returns its address and a count
/// of the connections it accepted.
async fn black_hole() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = hole.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hole.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(socket);
        }
    });
    (address, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_already_past_is_answered_at_once_with_every_valid_submission_failed() {
    // A real epoch deadline one minute ago, and a Kinesis that never answers:
    // taken for "no deadline", the function would wait on Kinesis until Lambda
    // killed it. Out of time, it must publish nothing and answer at once.
    let (hole, _) = black_hole().await;
    let past = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 60_000;
    let stub = RuntimeApiStub {
        deadline_epoch_ms: Some(past),
        ..RuntimeApiStub::default()
    };
    let settings = [("AWS_ENDPOINT_URL", format!("http://{hole}"))];
    let (body, failed, took) = invoke_stub(stub, &settings).await;
    assert_eq!(failed, message_ids(), "{body}");
    assert!(
        took < Duration::from_secs(1),
        "answered within a second: {took:?}"
    );
}

/// The value of the first `key: value` line of template.yaml (trimmed), and
/// the allowed values of the `LogLevel` parameter.
fn template_logging() -> (String, Option<String>, Vec<String>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let value = |key: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_owned())
    };
    let application = value("ApplicationLogLevel:").expect("template sets ApplicationLogLevel");
    let log_level_env = value("LOG_LEVEL:");
    let parameter = text
        .split("\n  LogLevel:\n")
        .nth(1)
        .expect("a LogLevel parameter");
    let allowed = parameter
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("AllowedValues:"))
        .expect("LogLevel has AllowedValues")
        .trim()
        .trim_matches(['[', ']'])
        .split(',')
        .map(|v| v.trim().to_owned())
        .collect();
    (application, log_level_env, allowed)
}

/// Lambda's log-level filter for JSON logs: a line is kept when its `level`
/// is at least `application`; a line without a valid `level` counts as INFO.
fn kept_by_lambda(line: &str, application: &str) -> bool {
    let rank = |level: &str| {
        edr_preprocessor::logging::LAMBDA_LEVELS
            .iter()
            .position(|l| l.eq_ignore_ascii_case(level))
    };
    let info = rank("INFO").unwrap();
    let level = serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v["level"].as_str().and_then(rank))
        .unwrap_or(info);
    level >= rank(application).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_document_survives_lambdas_log_filter_at_every_log_level() {
    // The environment the template gives the function at each LogLevel it
    // allows, Lambda's filter over the real binary's stdout, and what is left.
    let (application, log_level_env, allowed) = template_logging();
    assert_eq!(allowed, ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]);
    for level in &allowed {
        let application_level = match application.as_str() {
            "!Ref LogLevel" => level.clone(),
            literal => literal.to_owned(),
        };
        let stub = RuntimeApiStub::default();
        let address = stub.start().await;
        let mut event = sensor_batch();
        let mut invalid = event["Records"][0].clone();
        invalid["messageId"] = "invalid-1".into();
        invalid["body"] = "%%%".into();
        event["Records"].as_array_mut().unwrap().push(invalid);
        stub.push(event);
        let mut command = Command::new(BINARY);
        lambda_env(&mut command, &address);
        command
            .env("STREAM_NAME", "events")
            .env("AWS_ENDPOINT_URL", format!("http://{address}"))
            .env("AWS_LAMBDA_LOG_LEVEL", &application_level);
        if log_level_env.as_deref() == Some("!Ref LogLevel") {
            command.env("LOG_LEVEL", level);
        }
        // Read stdout while the process runs: at TRACE it writes more than a
        // pipe holds.
        let mut child = command.spawn().unwrap();
        let mut pipe = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut pipe, &mut out).unwrap();
            out
        });
        stub.answers(1).await;
        child.kill().unwrap();
        let _ = child.wait();
        let stdout = reader.join().unwrap();
        let stdout = String::from_utf8_lossy(&stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        let emf: Vec<&&str> = lines.iter().filter(|l| l.contains("\"_aws\"")).collect();
        assert!(
            !emf.is_empty(),
            "LogLevel={level}: no EMF document: {stdout}"
        );
        for doc in &emf {
            assert!(
                kept_by_lambda(doc, &application_level),
                "LogLevel={level}: Lambda (ApplicationLogLevel={application_level}) drops {doc}"
            );
        }
        // The function's own lines follow the chosen level.
        let kept: Vec<&&str> = lines
            .iter()
            .filter(|l| !l.contains("\"_aws\"") && kept_by_lambda(l, &application_level))
            .collect();
        let has = |message: &str| kept.iter().any(|l| l.contains(message));
        let rank = |l: &str| {
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
                .iter()
                .position(|x| *x == l)
        };
        assert_eq!(
            has("\"batch processed\""),
            rank(level) <= rank("INFO"),
            "LogLevel={level}: the INFO summary: {kept:?}"
        );
        assert_eq!(
            has("\"submission rejected\""),
            rank(level) <= rank("WARN"),
            "LogLevel={level}: the WARN rejection: {kept:?}"
        );
        for line in &kept {
            let line_level: serde_json::Value = serde_json::from_str(line).unwrap();
            let line_level = line_level["level"].as_str().unwrap_or("INFO").to_owned();
            assert!(
                rank(&line_level) >= rank(level),
                "LogLevel={level}: a {line_level} line: {line}"
            );
        }
    }
}

/// The binary's stdout, read on a thread while it runs: the lines so far.
fn stdout_lines(child: &mut std::process::Child) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let pipe = std::io::BufReader::new(child.stdout.take().unwrap());
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(pipe).map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_says_once_at_start_up_that_the_stream_ignores_partition_keys() {
    // An on-demand stream with RecordDistributionStrategy AUTO: one ERROR
    // line from the DescribeStreamSummary made at start-up, one call per
    // execution environment whatever the number of invocations.
    let stub = RuntimeApiStub {
        record_distribution: Some("AUTO"),
        ..RuntimeApiStub::default()
    };
    let address = stub.start().await;
    stub.push(sensor_batch());
    let mut command = Command::new(BINARY);
    lambda_env(&mut command, &address);
    command
        .env("STREAM_NAME", "events")
        .env("AWS_ENDPOINT_URL", format!("http://{address}"));
    let mut child = command.spawn().unwrap();
    let lines = stdout_lines(&mut child);
    let says_auto = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| {
                l.contains("\"ERROR\"") && l.contains("service-managed record distribution")
            })
            .count()
    };
    stub.answers(1).await;
    for _ in 0..6000 {
        if says_auto(&lines.lock().unwrap()) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stub.push(sensor_batch());
    let answers = stub.answers(2).await;
    child.kill().unwrap();
    let _ = child.wait();
    for (id, kind, body) in &answers {
        assert_eq!(kind, "response", "{id}: {body}");
        assert!(body.contains("\"batchItemFailures\":[]"), "{body}");
    }
    assert_eq!(stub.state.lock().unwrap().describe_calls, 1);
    assert_eq!(
        says_auto(&lines.lock().unwrap()),
        1,
        "{:?}",
        lines.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_summary_that_never_comes_delays_no_invocation() {
    // DescribeStreamSummary is never answered and may wait 10 minutes (the
    // call timeout): both invocations are answered meanwhile, so the call is
    // not on their path.
    let stub = RuntimeApiStub {
        describe_hangs: true,
        ..RuntimeApiStub::default()
    };
    let address = stub.start().await;
    stub.push(sensor_batch());
    stub.push(sensor_batch());
    let mut command = Command::new(BINARY);
    lambda_env(&mut command, &address);
    command
        .env("STREAM_NAME", "events")
        .env("AWS_ENDPOINT_URL", format!("http://{address}"))
        .env("KINESIS_CALL_TIMEOUT_MS", "600000");
    let mut child = command.spawn().unwrap();
    let answers = stub.answers(2).await;
    child.kill().unwrap();
    let _ = child.wait();
    for (id, kind, body) in &answers {
        assert_eq!(kind, "response", "{id}: {body}");
        assert!(body.contains("\"batchItemFailures\":[]"), "{body}");
    }
    assert_eq!(stub.state.lock().unwrap().describe_calls, 1);
}
