//! Shared by the Rust benchmarks: deterministic sensor submissions shaped
//! like `events/generate.py` (6-10 events, half `new_process`, half
//! `network_connection`, the same command lines, users and addresses), and
//! SQS batches of them. No randomness from the OS: every run measures the
//! same bytes.
#![allow(dead_code)]

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use base64::Engine as _;
use serde_json::{Value, json};

const USERS: [&str; 4] = ["SYSTEM", "alice", "bob", "svc-backup"];
const COMMANDS: [&str; 6] = [
    "C:\\Windows\\System32\\svchost.exe -k netsvcs",
    "C:\\Program Files\\Mozilla Firefox\\firefox.exe",
    "powershell.exe -NoProfile -Command Get-Process",
    "/usr/bin/ssh deploy@10.0.3.7",
    "/usr/sbin/cron -f",
    "notepad.exe C:\\Users\\alice\\notes.txt",
];
const DESTINATIONS: [&str; 4] = [
    "142.250.74.110",
    "151.101.1.69",
    "2606:4700::6810:84e5",
    "192.0.2.10",
];
const PORTS: [u16; 5] = [22, 53, 80, 443, 8443];

/// xorshift64*: small, fast, deterministic.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    /// A canonical lowercase hyphenated UUID (version 4 bits set).
    pub fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }
}

/// One submission document with `events` events, in the sensors' shape.
pub fn submission(rng: &mut Rng, events: usize) -> Value {
    let devices: Vec<String> = {
        let mut d = Rng::new(4242);
        (0..4).map(|_| d.uuid()).collect()
    };
    let mut new_process = Vec::new();
    let mut network_connection = Vec::new();
    for _ in 0..events {
        if rng.below(2) == 0 {
            new_process.push(json!({"cmdl": rng.pick(&COMMANDS), "user": rng.pick(&USERS)}));
        } else {
            network_connection.push(json!({
                "source_ip": format!("10.0.{}.{}", rng.below(8), 1 + rng.below(254)),
                "destination_ip": rng.pick(&DESTINATIONS),
                "destination_port": rng.pick(&PORTS),
            }));
        }
    }
    json!({
        "submission_id": rng.uuid(),
        "device_id": rng.pick(&devices),
        "time_created": format!("2021-03-29T12:{:02}:{:02}.{:06}", rng.below(60), rng.below(60), rng.below(1_000_000)),
        "events": {"new_process": new_process, "network_connection": network_connection},
    })
}

/// The SQS body a sensor sends: base64 of the JSON document.
pub fn body(doc: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(doc.to_string())
}

/// `count` realistic bodies of 6-10 events each (seeded).
pub fn sensor_bodies(seed: u64, count: usize) -> Vec<String> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| {
            let events = 6 + rng.below(5) as usize;
            body(&submission(&mut rng, events))
        })
        .collect()
}

/// `count` bodies of exactly `events` events each (seeded).
pub fn fixed_bodies(seed: u64, count: usize, events: usize) -> Vec<String> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| body(&submission(&mut rng, events)))
        .collect()
}

/// An SQS event as Lambda delivers it from a standard queue.
pub fn sqs_event(bodies: &[String]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("00000000-0000-4000-8000-{i:012x}"));
            m.body = Some(b.clone());
            m.event_source = Some("aws:sqs".into());
            m.event_source_arn = Some("arn:aws:sqs:eu-west-1:123456789012:submissions".into());
            m
        })
        .collect();
    event
}

/// Where the benchmarks write their machine-readable results
/// (`BENCH_OUT`, default `target/bench`), read by `benches/report.py`.
pub fn out_dir() -> std::path::PathBuf {
    let dir = std::env::var_os("BENCH_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("target/bench"));
    let _ = std::fs::create_dir_all(&dir);
    dir
}
