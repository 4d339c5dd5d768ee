//! Transform cost: SQS body -> validated submission -> serialised Kinesis
//! records, on one core: `edr_preprocessor::transform::transform`, the very
//! function the handler calls per message (base64 decode, JSON parse with
//! validation, `encode::encode`), and each of its three stages alone, under
//! the default keyed shard placement (one keyed hash per submission, also
//! timed alone: `placement`).
//!
//! Inputs: 100 realistic sensor submissions (6-10 events each, 795 events
//! in all) and one submission of 1,000 events. Criterion times each stage
//! and the whole path; a counting global allocator then runs the whole path
//! once per input and counts allocations. Results: criterion's own files
//! under `$CRITERION_HOME`, allocation counts in `$BENCH_OUT/transform.json`.
//!
//! From the project root (`make bench-transform` runs the first line):
//!
//!     cargo bench --manifest-path benches/Cargo.toml --bench transform           # everything
//!     cargo bench --manifest-path benches/Cargo.toml --bench transform -- whole  # criterion filter

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use criterion::{Criterion, Throughput};
use std::sync::LazyLock;

use edr_preprocessor::config::{PartitionKey, TEST_PIPELINE_KEY};
use edr_preprocessor::decode;
use edr_preprocessor::encode::{self, EncodedSubmission, RecordKeys};
use edr_preprocessor::keys::PipelineKey;
use edr_preprocessor::model::{self, Limits};

/// Counts every allocation (and reallocation) made through the global allocator.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        ALLOC_BYTES.fetch_add(layout.size() as u64, Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        ALLOC_BYTES.fetch_add(new_size as u64, Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const LIMITS: Limits = Limits::with_max_events(10_000);
const TIME_PROCESSED: &str = "2026-11-22T18:47:44.758345Z";

static PLACEMENT: LazyLock<PipelineKey> = LazyLock::new(|| {
    PipelineKey::from_secret(TEST_PIPELINE_KEY.as_bytes()).expect("a long enough secret")
});

/// The handler's keys under the default settings: `SHARD_PLACEMENT=keyed`.
fn keys() -> RecordKeys<'static> {
    RecordKeys {
        partition_key: PartitionKey::SubmissionId,
        placement: Some(&PLACEMENT),
        // As in production: the hash key is bound to the SQS message id.
        message_id: Some("059f36b4-87a3-44ab-83d2-661975830a7d"),
        carried_hash_key: None,
    }
}

/// The whole path of one SQS body, as the handler runs it.
fn transform(body: &str) -> EncodedSubmission {
    edr_preprocessor::transform::transform(body, LIMITS, keys(), TIME_PROCESSED)
        .expect("valid submission")
}

fn events_in(body: &str) -> usize {
    transform(body).records.len()
}

struct Input {
    name: &'static str,
    bodies: Vec<String>,
    events: usize,
}

fn inputs() -> Vec<Input> {
    let sensor = common::sensor_bodies(7, 100);
    let large = common::fixed_bodies(11, 1, 1_000);
    [("sensor", sensor), ("large", large)]
        .into_iter()
        .map(|(name, bodies)| Input {
            name,
            events: bodies.iter().map(|b| events_in(b)).sum(),
            bodies,
        })
        .collect()
}

fn bench(c: &mut Criterion, inputs: &[Input]) {
    for input in inputs {
        let mut group = c.benchmark_group(format!("transform_{}", input.name));
        group.throughput(Throughput::Elements(input.events as u64));
        group.bench_function("whole", |b| {
            b.iter(|| {
                for body in &input.bodies {
                    black_box(transform(black_box(body)));
                }
            })
        });
        group.bench_function("decode_base64", |b| {
            b.iter(|| {
                for body in &input.bodies {
                    black_box(decode::decode_body(black_box(body)).expect("valid"));
                }
            })
        });
        let decoded: Vec<Vec<u8>> = input
            .bodies
            .iter()
            .map(|b| decode::decode_body(b).expect("valid").into_owned())
            .collect();
        group.bench_function("parse_validate", |b| {
            b.iter(|| {
                for doc in &decoded {
                    black_box(decode::parse_json(black_box(doc), LIMITS).expect("valid"));
                }
            })
        });
        let parsed: Vec<_> = decoded
            .iter()
            .map(|d| decode::parse_json(d, LIMITS).expect("valid"))
            .collect();
        // The keyed hash alone (SHARD_PLACEMENT=keyed), one per submission,
        // which `encode` includes: HMAC-SHA256 of the partition key.
        let partition_keys: Vec<String> =
            parsed.iter().map(|s| s.submission_id.to_string()).collect();
        group.bench_function("placement", |b| {
            b.iter(|| {
                for key in &partition_keys {
                    black_box(PLACEMENT.explicit_hash_key(black_box(key)));
                }
            })
        });
        group.bench_function("encode", |b| {
            b.iter(|| {
                for s in &parsed {
                    black_box(
                        encode::encode(
                            black_box(s),
                            keys(),
                            TIME_PROCESSED,
                            model::MAX_RECORD_BYTES,
                        )
                        .expect("encodable"),
                    );
                }
            })
        });
        group.finish();
    }
}

/// One stage of the path, run on one body.
type Stage<'f> = &'f dyn Fn(&str);

/// Allocations of the whole path, per input, counted on a single pass
/// (the result is dropped inside the window: what a batch would allocate).
fn count_allocations(inputs: &[Input]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for input in inputs {
        let stages: [(&str, Stage); 2] = [
            ("whole", &|b: &str| drop(black_box(transform(b)))),
            ("decode_base64", &|b: &str| {
                drop(black_box(decode::decode_body(b).expect("valid")))
            }),
        ];
        let mut per_stage = serde_json::Map::new();
        for (stage, f) in stages {
            let (a0, b0) = (ALLOCS.load(Relaxed), ALLOC_BYTES.load(Relaxed));
            for body in &input.bodies {
                f(body);
            }
            let (allocs, bytes) = (ALLOCS.load(Relaxed) - a0, ALLOC_BYTES.load(Relaxed) - b0);
            per_stage.insert(
                stage.into(),
                serde_json::json!({
                    "allocations": allocs,
                    "bytes": bytes,
                    "allocations_per_event": allocs as f64 / input.events as f64,
                    "bytes_per_event": bytes as f64 / input.events as f64,
                }),
            );
        }
        out.insert(
            input.name.into(),
            serde_json::json!({
                "submissions": input.bodies.len(),
                "events": input.events,
                "body_bytes": input.bodies.iter().map(String::len).sum::<usize>(),
                "stages": per_stage,
            }),
        );
    }
    serde_json::Value::Object(out)
}

/// The 1-minute load average: other work on the machine inflates timings.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

fn main() {
    let load_before = load_average();
    let inputs = inputs();
    let allocations = count_allocations(&inputs);
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(40)
        .without_plots()
        .configure_from_args();
    bench(&mut c, &inputs);
    c.final_summary();
    let load_after = load_average();
    let mut allocations = allocations;
    if let Some(map) = allocations.as_object_mut() {
        for info in map.values_mut() {
            info["load_average"] = serde_json::json!([load_before, load_after]);
        }
    }
    let path = common::out_dir().join("transform.json");
    let doc = serde_json::json!({"allocations": allocations});
    std::fs::write(&path, serde_json::to_string_pretty(&doc).expect("json")).expect("write");
    eprintln!("allocation counts -> {}", path.display());
    eprintln!(
        "{}",
        serde_json::to_string_pretty(&allocations).expect("json")
    );
}
