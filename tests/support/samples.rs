//! Realistic sensor submissions, deterministic: the one Rust generator of
//! sample submissions, shared by the tests and the benchmarks (benches/common
//! includes this file). 6-10 events, about half `new_process`, half
//! `network_connection`, drawn from the vocabulary the Python generator
//! (`python/edr_tools/samples.py`) draws from too:
//! `python/edr_tools/vocabulary.json`. No randomness from the OS: every run
//! gives the same bytes.
#![allow(dead_code)]

use std::sync::OnceLock;

use base64::Engine as _;
use serde_json::{Value, json};

/// The sample vocabulary: command lines, users, destinations and ports.
pub struct Vocabulary {
    pub users: Vec<String>,
    pub commands: Vec<String>,
    pub destinations: Vec<String>,
    pub ports: Vec<u16>,
    pub sample_day: String,
}

/// The vocabulary file, read once.
pub fn vocabulary() -> &'static Vocabulary {
    static VOCABULARY: OnceLock<Vocabulary> = OnceLock::new();
    VOCABULARY.get_or_init(|| {
        let text = include_str!("../../python/edr_tools/vocabulary.json");
        let v: Value = serde_json::from_str(text).expect("vocabulary.json is JSON");
        let strings = |key: &str| -> Vec<String> {
            v[key]
                .as_array()
                .expect("a list")
                .iter()
                .map(|s| s.as_str().expect("a string").to_owned())
                .collect()
        };
        Vocabulary {
            users: strings("users"),
            commands: strings("commands"),
            destinations: strings("destinations"),
            ports: v["ports"]
                .as_array()
                .expect("a list")
                .iter()
                .map(|p| p.as_u64().expect("a port") as u16)
                .collect(),
            sample_day: v["sample_day"].as_str().expect("a day").to_owned(),
        }
    })
}

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
    let vocabulary = vocabulary();
    let mut new_process = Vec::new();
    let mut network_connection = Vec::new();
    for _ in 0..events {
        if rng.below(2) == 0 {
            new_process.push(json!({"cmdl": rng.pick(&vocabulary.commands), "user": rng.pick(&vocabulary.users)}));
        } else {
            network_connection.push(json!({
                "source_ip": format!("10.0.{}.{}", rng.below(8), 1 + rng.below(254)),
                "destination_ip": rng.pick(&vocabulary.destinations),
                "destination_port": rng.pick(&vocabulary.ports),
            }));
        }
    }
    json!({
        "submission_id": rng.uuid(),
        "device_id": rng.pick(&devices),
        "time_created": format!("{}T12:{:02}:{:02}.{:06}", vocabulary.sample_day, rng.below(60), rng.below(60), rng.below(1_000_000)),
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
