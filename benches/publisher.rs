//! Publisher efficiency against a simulated Kinesis.
//!
//! The simulated stream answers each PutRecords call after a fixed round
//! trip, and enforces the real per-shard write limits (1,000 records/s and
//! 1 MiB/s per shard) with a token bucket per shard: a record that finds its
//! shard's bucket empty is answered `ProvisionedThroughputExceededException`,
//! one entry at a time, as Kinesis does. Shards are chosen by a hash of the
//! partition key (Kinesis uses MD5; any uniform hash spreads load the same).
//! The buckets start empty, as on a stream that is already at its limit, so
//! `records / (shards x 1,000/s)` is a true lower bound on the time.
//!
//! Everything runs on tokio's paused clock (current-thread runtime): network
//! time and backoffs are simulated exactly and instantly, so "wall" below is
//! the time the publisher would take against a Kinesis with that round trip,
//! independent of this machine. The CPU the publisher itself burns is
//! measured separately (thread CPU time minus the simulator's own share).
//!
//! The publisher is the library's: `Config::from_lookup` with the defaults
//! (MAX_IN_FLIGHT_CALLS 8, MAX_ATTEMPTS 10 not counting throttling, backoff
//! 50..500 ms) unless a row says otherwise, records built by
//! `transform::transform` (what the handler runs per message). Results go
//! to stdout and to `$BENCH_OUT/publisher.json`. From the project root
//! (`make bench-publisher` runs the first line):
//!
//!     cargo bench --manifest-path benches/Cargo.toml --bench publisher             # every scenario
//!     cargo bench --manifest-path benches/Cargo.toml --bench publisher -- 10000x8  # rows whose name contains it
//!     BENCH_PUBLISHER_SETTINGS=RETRY_MAX_DELAY_MS=250,MAX_IN_FLIGHT_CALLS=4 \
//!         cargo bench --manifest-path benches/Cargo.toml --bench publisher -- shard  # other settings, throttled rows

mod common;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Mutex;
use std::time::Duration;

use edr_preprocessor::aggregate;
use edr_preprocessor::config::{Config, Ordering, PartitionKey};
use edr_preprocessor::encode::EncodedSubmission;
use edr_preprocessor::model::{Limits, Reason, RecordFormat};
use edr_preprocessor::publisher::{
    CallError, EntryResult, MAX_BYTES_PER_CALL, MAX_RECORDS_PER_CALL, OutboundRecord, Outcome,
    Publisher, RecordSink,
};
use edr_preprocessor::rejects_queue::{self, RejectSink, RejectedMessage};
use edr_preprocessor::transform::transform;
use serde_json::json;
use tokio::time::Instant;

const SHARD_RECORDS_PER_SEC: f64 = 1_000.0;
const SHARD_BYTES_PER_SEC: f64 = 1024.0 * 1024.0;
const TIME_PROCESSED: &str = "2026-11-22T18:47:44.758345Z";

/// One shard's write allowance.
struct Bucket {
    records: f64,
    bytes: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let dt = now.duration_since(self.at).as_secs_f64();
        self.records = (self.records + dt * SHARD_RECORDS_PER_SEC).min(SHARD_RECORDS_PER_SEC);
        self.bytes = (self.bytes + dt * SHARD_BYTES_PER_SEC).min(SHARD_BYTES_PER_SEC);
        self.at = now;
    }
}

#[derive(Default)]
struct SimState {
    calls: u64,
    largest_call: usize,
    entries: u64,
    throttled: u64,
    written: u64,
    /// Records written at least once, by the address of their data (the
    /// publisher resends clones of the same buffer).
    unique_written: HashSet<usize>,
    /// PUT payload units of the unique records (each record in 25 KiB chunks,
    /// provisioned mode) and on-demand billed KiB (each record rounded up
    /// to 1 KiB).
    put_units: u64,
    billed_kib: u64,
    /// Unique records per shard, for the hottest shard's bound.
    shard_load: Vec<u64>,
    shard_bytes: Vec<u64>,
    buckets: Vec<Bucket>,
    sim_cpu: Duration,
}

/// The simulated stream.
struct SimKinesis {
    round_trip: Duration,
    /// `None`: no write limits (an unthrottled stream).
    shards: Option<usize>,
    state: Mutex<SimState>,
}

impl SimKinesis {
    fn new(round_trip: Duration, shards: Option<usize>) -> Self {
        let n = shards.unwrap_or(1);
        let now = Instant::now();
        SimKinesis {
            round_trip,
            shards,
            state: Mutex::new(SimState {
                shard_load: vec![0; n],
                shard_bytes: vec![0; n],
                buckets: (0..n)
                    .map(|_| Bucket {
                        records: 0.0,
                        bytes: 0.0,
                        at: now,
                    })
                    .collect(),
                ..SimState::default()
            }),
        }
    }

    fn shard_of(&self, key: &str) -> usize {
        let n = self.shards.unwrap_or(1);
        (BuildHasherDefault::<DefaultHasher>::default().hash_one(key) % n as u64) as usize
    }
}

impl RecordSink for SimKinesis {
    async fn put_records(
        &self,
        records: Vec<OutboundRecord>,
    ) -> Result<Vec<EntryResult>, CallError> {
        let cpu = thread_cpu();
        let now = Instant::now();
        let results = {
            let mut s = self.state.lock().expect("sim state");
            s.calls += 1;
            s.largest_call = s.largest_call.max(records.len());
            s.entries += records.len() as u64;
            let bytes: usize = records
                .iter()
                .map(|r| r.data.len() + r.partition_key.len())
                .sum();
            assert!(records.len() <= MAX_RECORDS_PER_CALL && bytes <= MAX_BYTES_PER_CALL);
            let mut results = Vec::with_capacity(records.len());
            for r in &records {
                let shard = self.shard_of(&r.partition_key);
                let size = (r.data.len() + r.partition_key.len()) as f64;
                let allowed = match self.shards {
                    None => true,
                    Some(_) => {
                        let b = &mut s.buckets[shard];
                        b.refill(now);
                        if b.records >= 1.0 && b.bytes >= size {
                            b.records -= 1.0;
                            b.bytes -= size;
                            true
                        } else {
                            false
                        }
                    }
                };
                if allowed {
                    s.written += 1;
                    if s.unique_written.insert(r.data.as_ptr() as usize) {
                        s.shard_load[shard] += 1;
                        s.shard_bytes[shard] += size as u64;
                        s.put_units += (size as u64).div_ceil(25 * 1024);
                        s.billed_kib += (size as u64).div_ceil(1024);
                    }
                    results.push(EntryResult::WRITTEN);
                } else {
                    s.throttled += 1;
                    results.push(EntryResult::Failed {
                        code: "ProvisionedThroughputExceededException".into(),
                        message: format!("Rate exceeded for shard shardId-{shard:012}"),
                    });
                }
            }
            s.sim_cpu += thread_cpu().saturating_sub(cpu);
            results
        };
        tokio::time::sleep(self.round_trip).await;
        Ok(results)
    }
}

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

unsafe extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// CPU time of the calling thread (Linux `CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu() -> Duration {
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is Linux's.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

struct Scenario {
    name: String,
    messages: usize,
    events: usize,
    ordering: Ordering,
    /// `None`: unthrottled.
    shards: Option<usize>,
    round_trip_ms: u64,
    /// Settings other than the defaults, as the environment would give them.
    settings: Vec<(String, String)>,
    /// `RECORD_FORMAT`.
    format: RecordFormat,
    /// Bodies of this many bytes at most in all (a batch's payload), instead
    /// of `messages` of them.
    batch_bytes: Option<usize>,
}

fn parse_settings(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn scenarios() -> Vec<Scenario> {
    let mut out = Vec::new();
    let mut add = |messages, events, ordering, shards: Option<usize>, settings: &str| {
        let mode = match ordering {
            Ordering::Strict => "strict",
            Ordering::Relaxed => "relaxed",
        };
        let stream = match shards {
            None => "unthrottled".to_string(),
            Some(n) => format!("{n}-shard"),
        };
        let mut name = format!("{messages}x{events} {mode} {stream}");
        if !settings.is_empty() {
            name.push(' ');
            name.push_str(settings);
        }
        out.push(Scenario {
            name,
            messages,
            events,
            ordering,
            shards,
            round_trip_ms: 20,
            settings: parse_settings(settings),
            format: RecordFormat::PerEvent,
            batch_bytes: None,
        });
    };
    let both = [Ordering::Strict, Ordering::Relaxed];
    // Unthrottled: the publisher against latency alone.
    for (m, e) in [(10, 8), (100, 8), (1_000, 8), (10_000, 8), (1, 5_000)] {
        for o in both {
            add(m, e, o, None, "");
        }
    }
    add(10_000, 8, Ordering::Strict, None, "MAX_IN_FLIGHT_CALLS=64");
    // The stream is the bottleneck: default settings, then any the user asks
    // for. (One 5,000-event submission in strict mode is 5,000 sequential
    // round trips, 50 records/s: latency-bound, never stream-bound, so not here.)
    let extra = std::env::var("BENCH_PUBLISHER_SETTINGS").ok();
    for settings in [""].into_iter().chain(extra.as_deref()) {
        for (m, e, shards) in [(1_000, 8, 1), (10_000, 8, 4), (1, 5_000, 1)] {
            for o in both {
                if e == 5_000 && matches!(o, Ordering::Strict) {
                    continue;
                }
                add(m, e, o, Some(shards), settings);
            }
        }
    }
    out.extend(format_scenarios());
    out
}

/// Per-event against aggregated (`RECORD_FORMAT`), strict, at a 20 ms round
/// trip: 10 and 1,000 submissions of 8 events, and a 6 MB batch (Lambda's
/// payload limit) of 500-event submissions.
fn format_scenarios() -> Vec<Scenario> {
    let mut out = Vec::new();
    for format in [RecordFormat::PerEvent, RecordFormat::Aggregated] {
        for (messages, events, batch_bytes) in
            [(10, 8, None), (1_000, 8, None), (0, 500, Some(6_000_000))]
        {
            let size = if batch_bytes.is_some() {
                "6MB".to_string()
            } else {
                messages.to_string()
            };
            out.push(Scenario {
                name: format!("format {} {size}x{events} strict", format.as_str()),
                messages,
                events,
                ordering: Ordering::Strict,
                shards: None,
                round_trip_ms: 20,
                settings: vec![("RECORD_FORMAT".into(), format.as_str().into())],
                format,
                batch_bytes,
            });
        }
    }
    out
}

fn config(s: &Scenario) -> Config {
    let ordering = match s.ordering {
        Ordering::Strict => "strict",
        Ordering::Relaxed => "relaxed",
    };
    let pairs: HashMap<String, String> = [
        ("STREAM_NAME".to_string(), "events".to_string()),
        ("ORDERING".to_string(), ordering.to_string()),
        (
            "PIPELINE_KEY".to_string(),
            edr_preprocessor::config::TEST_PIPELINE_KEY.to_string(),
        ),
    ]
    .into_iter()
    .chain(s.settings.iter().cloned())
    .collect();
    Config::from_lookup(|k| pairs.get(k).cloned()).expect("valid config")
}

fn encode_all(bodies: &[String], format: RecordFormat) -> Vec<EncodedSubmission> {
    let limits = Limits::with_max_events(10_000).with_record_format(format);
    bodies
        .iter()
        .map(|b| transform(b, limits, PartitionKey::SubmissionId, TIME_PROCESSED).expect("valid"))
        .collect()
}

fn run(s: &Scenario) -> serde_json::Value {
    let messages = match s.batch_bytes {
        // As many bodies of this size as the batch holds.
        Some(total) => total / common::fixed_bodies(1, 1, s.events)[0].len(),
        None => s.messages,
    };
    let bodies = common::fixed_bodies(messages as u64 * 31 + s.events as u64, messages, s.events);
    let encoded = encode_all(&bodies, s.format);
    let records: usize = encoded.iter().map(|e| e.records.len()).sum();
    let bytes: usize = encoded
        .iter()
        .flat_map(|e| e.records.iter().map(|r| r.len() + e.partition_key.len()))
        .sum();
    let settings = config(s);
    let publisher = Publisher::from_config(&settings);
    // The backoff's jitter comes from fastrand: seeded, every run is the same.
    fastrand::seed(0x5EED);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let round_trip = Duration::from_millis(s.round_trip_ms);
    let (report, wall, cpu, sim) = rt.block_on(async {
        let sim = SimKinesis::new(round_trip, s.shards);
        let lanes: Vec<Vec<usize>> = (0..encoded.len()).map(|i| vec![i]).collect();
        // The longest a Lambda function may run: the deadline never cuts a row short.
        let deadline = Instant::now() + Duration::from_secs(900);
        let cpu0 = thread_cpu();
        let t0 = Instant::now();
        let report = publisher.publish(&sim, &encoded, lanes, deadline).await;
        let wall = t0.elapsed();
        let cpu = thread_cpu().saturating_sub(cpu0);
        (report, wall, cpu, sim)
    });
    let st = sim.state.into_inner().expect("sim state");
    let published = report
        .outcomes
        .iter()
        .filter(|o| matches!(o, Some(Outcome::Published)))
        .count();
    // A submission's Kinesis records (its events, or its aggregated
    // records) and their bytes as Kinesis counts them.
    let per_submission = |e: &EncodedSubmission| match s.format {
        RecordFormat::PerEvent => (
            e.records.len(),
            e.records
                .iter()
                .map(|r| r.len() + e.partition_key.len())
                .sum::<usize>(),
        ),
        RecordFormat::Aggregated => {
            let users = e
                .records
                .iter()
                .map(|r| (&*e.partition_key, e.explicit_hash_key.as_deref(), &r[..]));
            let made = aggregate::aggregate(users, settings.max_record_bytes).unwrap_or_default();
            (made.len(), made.iter().map(|r| r.size()).sum())
        }
    };
    let kinesis: Vec<(usize, usize)> = encoded.iter().map(per_submission).collect();
    let kinesis_records: usize = kinesis.iter().map(|k| k.0).sum();
    let kinesis_bytes: usize = kinesis.iter().map(|k| k.1).sum();
    let max_events = kinesis.iter().map(|k| k.0).max().unwrap_or(0);
    // Full calls (by count or by bytes), plus the rounds of the longest lane.
    let calls_bound = kinesis_records
        .div_ceil(MAX_RECORDS_PER_CALL)
        .max(kinesis_bytes.div_ceil(MAX_BYTES_PER_CALL))
        + max_events;
    let rt_s = round_trip.as_secs_f64();
    // Rounds the design needs at least: strict sends one record per submission
    // per round, relaxed one run (<= 500 records) per submission per round;
    // and no round carries more than MAX_IN_FLIGHT_CALLS full calls.
    let per_submission_rounds = match s.ordering {
        Ordering::Strict => max_events,
        Ordering::Relaxed => max_events.div_ceil(MAX_RECORDS_PER_CALL),
    };
    let in_flight = settings.max_in_flight_calls;
    let capacity_rounds = kinesis_records
        .div_ceil(MAX_RECORDS_PER_CALL * in_flight)
        .max(kinesis_bytes.div_ceil(MAX_BYTES_PER_CALL * in_flight));
    let latency_bound = rt_s * per_submission_rounds.max(capacity_rounds) as f64;
    let (bound, bound_kind, limit_share) = match s.shards {
        None => (latency_bound, "latency", None),
        Some(n) => {
            // The brief's bound: records / (shards x 1,000/s); and the exact one
            // for this hash: the hottest shard's records (or bytes).
            let stream_bound = records as f64 / (n as f64 * SHARD_RECORDS_PER_SEC);
            let hottest = st
                .shard_load
                .iter()
                .zip(&st.shard_bytes)
                .map(|(&r, &b)| {
                    (r as f64 / SHARD_RECORDS_PER_SEC).max(b as f64 / SHARD_BYTES_PER_SEC)
                })
                .fold(0.0, f64::max);
            let bound = stream_bound.max(hottest).max(latency_bound);
            // Records the stream took (first copies), per second, against its limit.
            let unique = st.unique_written.len() as f64;
            let share = (unique / wall.as_secs_f64()) / (n as f64 * SHARD_RECORDS_PER_SEC);
            (
                bound,
                if bound == latency_bound {
                    "latency"
                } else {
                    "stream"
                },
                Some(share),
            )
        }
    };
    let sim_cpu = st.sim_cpu;
    let publisher_cpu = cpu.saturating_sub(sim_cpu);
    json!({
        "name": s.name,
        "record_format": s.format.as_str(),
        "kinesis_records": kinesis_records,
        "rounds": (wall.as_secs_f64() / rt_s).round(),
        "put_payload_units": st.put_units,
        "on_demand_billed_kib": st.billed_kib,
        "messages": messages,
        "events_per_message": s.events,
        "ordering": match s.ordering { Ordering::Strict => "strict", Ordering::Relaxed => "relaxed" },
        "shards": s.shards,
        "round_trip_ms": s.round_trip_ms,
        "max_in_flight_calls": in_flight,
        "max_attempts": settings.max_attempts,
        "retry_max_delay_ms": settings.retry_max_delay.as_millis() as u64,
        "records": records,
        "bytes": bytes,
        "calls": report.stats.calls,
        "calls_bound": calls_bound,
        "calls_ok": report.stats.calls as usize <= calls_bound,
        "largest_call": st.largest_call,
        "entries_sent": st.entries,
        "throttled_entries": st.throttled,
        "written_entries": st.written,
        "unique_written": st.unique_written.len(),
        "duplicates_written": st.written - st.unique_written.len() as u64,
        "records_retried": report.stats.records_retried,
        "published_submissions": published,
        "submissions": messages,
        "wall_s": wall.as_secs_f64(),
        "lower_bound_s": bound,
        "bound_kind": bound_kind,
        "brief_strict_bound_s": rt_s * max_events as f64,
        "wall_over_bound": wall.as_secs_f64() / bound,
        "shard_limit_share": limit_share,
        "publisher_cpu_ms": publisher_cpu.as_secs_f64() * 1e3,
        "publisher_cpu_us_per_record": publisher_cpu.as_secs_f64() * 1e6 / records as f64,
        "simulator_cpu_ms": sim_cpu.as_secs_f64() * 1e3,
    })
}

/// A rejects queue that answers every request after a fixed round trip.
struct SimRejects {
    round_trip: Duration,
    requests: Mutex<u64>,
}

impl RejectSink for SimRejects {
    async fn send_batch(&self, messages: &[RejectedMessage<'_>]) -> Vec<Result<(), String>> {
        *self.requests.lock().expect("requests") += 1;
        tokio::time::sleep(self.round_trip).await;
        vec![Ok(()); messages.len()]
    }
}

/// Fleet-wide schema drift: a batch of `messages` invalid submissions, all
/// for the rejects queue. Before SendMessageBatch each message was one
/// SendMessage, ten in flight: `ceil(messages / 10)` round trips.
fn run_rejects(messages: usize, round_trip_ms: u64) -> serde_json::Value {
    let ids: Vec<String> = (0..messages).map(|n| format!("m-{n}")).collect();
    // A sensor-sized body; what is wrong with it does not change the cost.
    let body = common::fixed_bodies(7, 1, 8).remove(0);
    let outgoing: Vec<RejectedMessage<'_>> = ids
        .iter()
        .map(|id| RejectedMessage {
            body: &body,
            reason: Reason::UnknownField,
            detail: "unknown field \"submission\" at line 1 column 13",
            source_message_id: id,
            group_id: None,
            dropped_events: None,
        })
        .collect();
    let round_trip = Duration::from_millis(round_trip_ms);
    let sim = SimRejects {
        round_trip,
        requests: Mutex::new(0),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let (results, wall) = rt.block_on(async {
        let t0 = Instant::now();
        let results =
            rejects_queue::send_all(&sim, &outgoing, Instant::now() + Duration::from_secs(900))
                .await;
        (results, t0.elapsed())
    });
    let stored = results.iter().filter(|r| r.is_ok()).count();
    let requests = *sim.requests.lock().expect("requests");
    let before_rounds = messages.div_ceil(10);
    json!({
        "name": format!("rejects {messages} invalid"),
        "messages": messages,
        "round_trip_ms": round_trip_ms,
        "requests": requests,
        "stored": stored,
        "wall_s": wall.as_secs_f64(),
        "rounds": (wall.as_secs_f64() / round_trip.as_secs_f64()).round(),
        "before_requests": messages,
        "before_wall_s": before_rounds as f64 * round_trip.as_secs_f64(),
    })
}

/// The per-event and aggregated rows side by side.
fn print_formats(results: &[serde_json::Value]) {
    let rows: Vec<_> = results
        .iter()
        .filter(|r| r["name"].as_str().is_some_and(|n| n.starts_with("format ")))
        .collect();
    if rows.is_empty() {
        return;
    }
    println!(
        "\n{:<38} {:>7} {:>8} {:>6} {:>6} {:>9} {:>9} {:>10}",
        "record format",
        "events",
        "kinesis",
        "calls",
        "rounds",
        "wall s",
        "PUT units",
        "billed KiB"
    );
    for r in rows {
        let num = |k: &str| r[k].as_f64().unwrap_or_default();
        println!(
            "{:<38} {:>7} {:>8} {:>6} {:>6} {:>9.3} {:>9} {:>10}",
            r["name"].as_str().unwrap_or_default(),
            num("records"),
            num("kinesis_records"),
            num("calls"),
            num("rounds"),
            num("wall_s"),
            num("put_payload_units"),
            num("on_demand_billed_kib"),
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; anything else not starting with '-' filters rows.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut results = Vec::new();
    println!(
        "{:<38} {:>7} {:>6} {:>6} {:>9} {:>9} {:>6} {:>7} {:>8} {:>9} {:>9}",
        "scenario",
        "records",
        "calls",
        "bound",
        "wall s",
        "lower s",
        "ratio",
        "limit%",
        "publ.%",
        "dup",
        "cpu ms"
    );
    for s in scenarios() {
        if !filters.is_empty() && !filters.iter().any(|f| s.name.contains(f.as_str())) {
            continue;
        }
        let r = run(&s);
        let num = |k: &str| r[k].as_f64().unwrap_or_default();
        println!(
            "{:<38} {:>7} {:>6} {:>6} {:>9.3} {:>9.3} {:>6.2} {:>7} {:>8.1} {:>9} {:>9.1}",
            s.name,
            num("records"),
            num("calls"),
            num("calls_bound"),
            num("wall_s"),
            num("lower_bound_s"),
            num("wall_over_bound"),
            r["shard_limit_share"]
                .as_f64()
                .map_or("-".to_string(), |v| format!("{:.1}", v * 100.0)),
            100.0 * num("published_submissions") / num("submissions"),
            num("duplicates_written"),
            num("publisher_cpu_ms"),
        );
        results.push(r);
    }
    print_formats(&results);
    let mut rejects_rows = Vec::new();
    for round_trip_ms in [20, 60] {
        let name = format!("rejects 1000 invalid {round_trip_ms} ms");
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let r = run_rejects(1_000, round_trip_ms);
        println!(
            "{name:<38} requests {:>5} (before {:>5})  wall {:>6.3} s (before {:>6.3} s)  stored {}",
            r["requests"],
            r["before_requests"],
            r["wall_s"].as_f64().unwrap_or_default(),
            r["before_wall_s"].as_f64().unwrap_or_default(),
            r["stored"]
        );
        rejects_rows.push(r);
    }
    let path = common::out_dir().join("publisher.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&json!({"scenarios": results, "rejects": rejects_rows}))
            .expect("json"),
    )
    .expect("write results");
    eprintln!("results -> {}", path.display());
}
