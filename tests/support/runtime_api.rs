//! A minimal Lambda Runtime API (and Kinesis PutRecords and
//! DescribeStreamSummary endpoint) on the loopback, for tests that run the
//! real runtime loop: it hands out queued events on `/next`, records what the
//! function answers, and acknowledges every PutRecords entry while
//! remembering the records. Each invocation gets
//! its own request id (`request-N`) and, unless pushed untraced, its own X-Ray
//! trace id, both remembered in `invocations`.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Default)]
pub struct StubState {
    /// Events to hand out, each with whether it carries a trace id.
    events: VecDeque<(Value, bool)>,
    /// (request id, Lambda-Runtime-Trace-Id if sent) of every invocation handed out.
    pub invocations: Vec<(String, Option<String>)>,
    /// (request id, "response" | "error" | "init-error", body)
    pub answers: Vec<(String, String, String)>,
    /// Decoded data of every record put, as JSON.
    pub records: Vec<Value>,
    /// DescribeStreamSummary requests received.
    pub describe_calls: usize,
    invocation: usize,
}

#[derive(Clone, Default)]
pub struct RuntimeApiStub {
    pub state: Arc<Mutex<StubState>>,
    /// How long an invocation may run (sets Lambda-Runtime-Deadline-Ms).
    pub timeout: Duration,
    /// A fixed Lambda-Runtime-Deadline-Ms instead (e.g. one already past).
    pub deadline_epoch_ms: Option<u64>,
    /// The `RecordDistributionStrategy` DescribeStreamSummary names, if any.
    pub record_distribution: Option<&'static str>,
    /// DescribeStreamSummary is never answered.
    pub describe_hangs: bool,
}

impl RuntimeApiStub {
    /// Starts serving on an ephemeral loopback port; returns `host:port`.
    pub async fn start(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let stub = self.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let stub = stub.clone();
                tokio::spawn(async move { stub.serve(socket).await });
            }
        });
        address
    }

    pub fn push(&self, event: Value) {
        self.state.lock().unwrap().events.push_back((event, true));
    }

    /// Queues an event handed out without Lambda-Runtime-Trace-Id.
    pub fn push_untraced(&self, event: Value) {
        self.state.lock().unwrap().events.push_back((event, false));
    }

    /// Waits until `n` answers arrived (or panics after 60 s of real time).
    pub async fn answers(&self, n: usize) -> Vec<(String, String, String)> {
        for _ in 0..6000 {
            {
                let state = self.state.lock().unwrap();
                if state.answers.len() >= n {
                    return state.answers.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no {n} answers: {:?}", self.state.lock().unwrap().answers);
    }

    async fn serve(&self, socket: tokio::net::TcpStream) {
        let (read, mut write) = socket.into_split();
        let mut reader = BufReader::new(read);
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                return;
            }
            let (mut length, mut target) = (0usize, String::new());
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).await.unwrap_or(0) == 0 {
                    return;
                }
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    } else if name.eq_ignore_ascii_case("x-amz-target") {
                        target = value.trim().to_owned();
                    }
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).await.is_err() {
                return;
            }
            let mut parts = request_line.split_whitespace();
            let (method, path) = (
                parts.next().unwrap_or_default().to_owned(),
                parts.next().unwrap_or_default().to_owned(),
            );
            let response = if target.ends_with(".DescribeStreamSummary") {
                self.describe_stream_summary().await
            } else {
                self.route(&method, &path, &body).await
            };
            if write.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    async fn route(&self, method: &str, path: &str, body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body).into_owned();
        if method == "GET" && path.ends_with("/runtime/invocation/next") {
            loop {
                let next = {
                    let mut state = self.state.lock().unwrap();
                    state.events.pop_front().map(|(e, traced)| {
                        state.invocation += 1;
                        let id = format!("request-{}", state.invocation);
                        let trace = traced.then(|| {
                            format!(
                                "Root=1-5759e988-{:024x};Parent=53995c3f42cd8ad8;Sampled=1",
                                state.invocation
                            )
                        });
                        state.invocations.push((id.clone(), trace.clone()));
                        (id, trace, e)
                    })
                };
                if let Some((id, trace, event)) = next {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap();
                    let timeout = if self.timeout.is_zero() {
                        Duration::from_secs(30)
                    } else {
                        self.timeout
                    };
                    let deadline = self
                        .deadline_epoch_ms
                        .map_or((now + timeout).as_millis(), u128::from);
                    let body = event.to_string();
                    let trace = trace
                        .map(|t| format!("Lambda-Runtime-Trace-Id: {t}\r\n"))
                        .unwrap_or_default();
                    return format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {id}\r\n\
                         Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                         Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:eu-west-1:123456789012:function:edr-preprocessor\r\n\
                         {trace}Content-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        if method == "POST" && path.contains("/runtime/invocation/") {
            let id = path.split('/').nth(4).unwrap_or_default().to_owned();
            let kind = if path.ends_with("/error") {
                "error"
            } else {
                "response"
            };
            self.state
                .lock()
                .unwrap()
                .answers
                .push((id, kind.into(), text));
            return accepted();
        }
        if method == "POST" && path.ends_with("/runtime/init/error") {
            self.state
                .lock()
                .unwrap()
                .answers
                .push((String::new(), "init-error".into(), text));
            return accepted();
        }
        if method == "POST" && path == "/" {
            // Kinesis PutRecords (AWS JSON 1.1): acknowledge every entry.
            let request: Value = serde_json::from_str(&text).unwrap_or_default();
            let entries = request["Records"].as_array().cloned().unwrap_or_default();
            let mut results = Vec::new();
            let mut state = self.state.lock().unwrap();
            for entry in entries {
                let data = base64::engine::general_purpose::STANDARD
                    .decode(entry["Data"].as_str().unwrap_or_default())
                    .unwrap_or_default();
                state
                    .records
                    .push(serde_json::from_slice(&data).unwrap_or_default());
                results.push(json!({"SequenceNumber": format!("{}", state.records.len()), "ShardId": "shardId-000000000000"}));
            }
            let body = json!({"FailedRecordCount": 0, "Records": results}).to_string();
            return format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into()
    }
}

impl RuntimeApiStub {
    /// Kinesis DescribeStreamSummary: the stream `events`, naming
    /// `record_distribution` if set; never answered if `describe_hangs`.
    async fn describe_stream_summary(&self) -> String {
        self.state.lock().unwrap().describe_calls += 1;
        if self.describe_hangs {
            std::future::pending::<()>().await;
        }
        let mut summary = json!({
            "StreamName": "events",
            "StreamARN": "arn:aws:kinesis:eu-west-1:123456789012:stream/events",
            "StreamStatus": "ACTIVE",
            "RetentionPeriodHours": 24,
            "StreamCreationTimestamp": 0,
            "EnhancedMonitoring": [],
            "OpenShardCount": 1
        });
        if let Some(strategy) = self.record_distribution {
            summary["RecordDistributionStrategy"] = strategy.into();
        }
        let body = json!({"StreamDescriptionSummary": summary}).to_string();
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }
}

fn accepted() -> String {
    "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n".into()
}
