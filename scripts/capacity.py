#!/usr/bin/env python3
"""Capacity plan for edr-preprocessor: N sensors, each sending a submission of
E events every T seconds.

    python3 scripts/capacity.py --sensors 100000 --events 8 --interval 60
    make capacity N=100000 E=8 T=60                       # the same
    make capacity N=100000 E=8 T=60 CAPACITY_ARGS="--rtt-ms 35 --memory 256"

It prints: the load (submissions, records and bytes per second); the Kinesis
shards it needs (provisioned, or what on-demand must scale to); batch size,
batching window, memory, function timeout, visibility timeout and maximum
concurrency for the SQS trigger; the first bottleneck and the load at which
each limit is reached, for the recommended settings and for samconfig.toml's
[default] environment; and how end-to-end latency behaves as load grows.
README "Operating at scale" explains the model; every number
comes from the constants and formulas below, nothing else.

Where a figure cannot be measured without AWS (PutRecords round trip) or has
not been benchmarked yet, it is a named constant in the ASSUMPTIONS block with
its source, and a command-line option overrides it. The size of a Kinesis
record is measured from the sample events in events/ by building each record
exactly as README "Output" specifies (scripts/capacity.py --records prints
them, one JSON document a line, for comparison with the function's output).

Standard library only (Python 3.11)."""

from __future__ import annotations

import argparse
import base64
import ipaddress
import json
import math
import re
import sys
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_EVENTS = [ROOT / "events" / f for f in ("sensor-batch.json", "large-batch.json", "fifo-batch.json", "invalid-mix.json")]

MIB = 1024 * 1024

# --- AWS limits (documented quotas; per region and account where it applies) ---
KINESIS_SHARD_RECORDS_PER_S = 1_000  # writes per shard, both capacity modes
KINESIS_SHARD_BYTES_PER_S = 1 * MIB  # data + partition key, per shard
ON_DEMAND_INITIAL_RECORDS_PER_S = 4_000  # a new on-demand stream (4 MiB/s, 4,000 records/s)
ON_DEMAND_INITIAL_BYTES_PER_S = 4 * MIB
ON_DEMAND_DOUBLING_MINUTES = 15  # on-demand absorbs up to 2x its previous peak within 15 minutes
LAMBDA_PAYLOAD_BYTES = 6 * MIB  # an SQS batch must fit the 6 MB invocation payload
LAMBDA_MB_PER_VCPU = 1_769  # a function gets one vCPU at 1,769 MB, proportionally less below
ESM_INITIAL_CONCURRENCY = 5  # the SQS trigger starts with 5 concurrent batches ...
ESM_SCALE_PER_MINUTE = 300  # ... adds up to 300 a minute while messages wait ...
ESM_MAX_CONCURRENCY = 1_000  # ... up to 1,000 (also the maximum of MaximumConcurrency)
ACCOUNT_CONCURRENCY_DEFAULT = 1_000  # default Lambda concurrency of an account and region
KINESIS_ACCOUNT_SHARDS_DEFAULT = 200  # default shard quota of an account in most regions (500 in the largest)
SQS_IN_FLIGHT_LIMIT = 120_000  # received but not deleted messages of a standard queue
SQS_BATCH_WITHOUT_WINDOW = 10  # BatchSize above 10 needs a batching window of 1 s or more
SQS_MAX_BATCH = 10_000
SQS_MAX_VISIBILITY_TIMEOUT_S = 43_200
LAMBDA_MAX_TIMEOUT_S = 900

# --- The function (src/publisher.rs, src/config.rs, template.yaml defaults) ----
PUT_RECORDS_MAX_RECORDS = 500  # publisher::MAX_RECORDS_PER_CALL
PUT_RECORDS_MAX_BYTES = 10 * MIB  # publisher::MAX_BYTES_PER_CALL
DEFAULT_MAX_IN_FLIGHT_CALLS = 8  # MAX_IN_FLIGHT_CALLS
DEFAULT_DEADLINE_MARGIN_MS = 500  # DEADLINE_MARGIN_MS
DEFAULT_MAX_EVENTS_PER_SUBMISSION = 500  # MAX_EVENTS_PER_SUBMISSION
PARTITION_KEY_BYTES = 36  # a hyphenated UUID, submission_id or device_id
TIME_PROCESSED_SAMPLE = "2026-11-22T18:47:44.758345Z"  # fixed width: RFC 3339, microseconds, Z
EVENT_ID_NAMESPACE = uuid.UUID("112ae2df-81a4-48c5-9844-96005350b137")
EVENT_FIELDS = {  # event_data field order: the order of the Rust struct fields (src/event.rs)
    "new_process": ("cmdl", "user"),
    "network_connection": ("source_ip", "destination_ip", "destination_port"),
}
# samconfig.toml [default] (production): what the stack runs unless told otherwise.
SAMCONFIG_DEFAULT = {
    "BatchSize": 10,
    "MaximumBatchingWindowInSeconds": 0,
    "FunctionTimeout": 30,
    "VisibilityTimeout": 180,
    "MaximumConcurrency": 10,
    "MemorySize": 128,
    "StreamShardCount": 1,
}

# --- ASSUMPTIONS: not measurable here, or not benchmarked yet ------------------
# One PutRecords round trip from Lambda to Kinesis in the same region, for a
# call of up to 500 small records. Not measurable without AWS; 20 ms is the
# figure README "Guarantees" section 2 uses. Measure yours: in strict mode a
# batch makes E sequential round trips, so t = PublishLatency p50 / E.
PUT_RECORDS_RTT_MS = 20.0
# CPU to decode, validate and encode one event (base64 + JSON + record JSON +
# uuid5), on one full vCPU. BENCHMARKS.md measures 0.77 us/event for sensor
# submissions and 0.57 us/event for a 1,000-event one on the project's
# (x86_64) machine, 1.1-1.6 us before the encode rewrite. Kept at 2 us: a
# margin of more than 2x for Lambda's slower, shared vCPUs (arm64 by default),
# so the plan errs towards more time, never less.
TRANSFORM_US_PER_EVENT = 2.0
# CPU of one PutRecords call in the SDK (request JSON, SigV4 signing, TLS),
# on one full vCPU. Assumption, not measured (the benchmarks' publisher runs
# against a simulated Kinesis without the SDK); BENCHMARKS.md's batch times
# under a stub Kinesis (`make bench-coldstart`) bound it once they exist.
PUT_RECORDS_CALL_CPU_MS = 0.25
# Per invocation: Runtime API round trip, SQS event parsing, EMF and log
# output. Assumption, not measured; small next to the round trips.
INVOCATION_OVERHEAD_MS = 2.0
# Bytes of one SQS message in the Lambda event besides its body (messageId,
# receiptHandle, attributes, ARN). The sample events have 36-byte receipt
# handles; real ones are several hundred bytes, so round up.
SQS_RECORD_ENVELOPE_BYTES = 1_024
# Batches the trigger fills in parallel (its initial concurrency): with a
# window, a batch of B fills in about B x 5 / S seconds; without one, a batch
# holds what arrived in about one invocation time, divided among them.
# An approximation of the trigger's internals, which AWS does not document.
POLLERS_FILLING_BATCHES = ESM_INITIAL_CONCURRENCY
# Plan every limit for this share of its capacity: headroom for uneven
# hashing across shards, retries, bursts and the trigger's scaling steps.
TARGET_UTILIZATION = 0.75
# Concurrency the batch-size choice aims to stay within (a tenth of the
# account's default 1,000). --concurrency-budget changes it.
CONCURRENCY_BUDGET = 100
# Candidate (BatchSize, MaximumBatchingWindowInSeconds) pairs, smallest first.
BATCH_CANDIDATES = [(10, 0), (50, 1), (100, 1), (250, 2), (500, 2), (1_000, 3), (2_500, 5), (5_000, 5), (10_000, 10)]
# Fallbacks if events/ is not there (the figures it gave when this was written).
FALLBACK_RECORD_DATA_BYTES = 395.0
FALLBACK_BODY_FIXED_BYTES = 240.0
FALLBACK_BODY_BYTES_PER_EVENT = 135.0


# --- Record sizes, measured from the sample events --------------------------------


def decode_body(body: str) -> str:
    """An SQS body as the function reads it: plain JSON if it starts with
    `{`, else standard base64 of UTF-8 JSON."""
    text = body.strip()
    if text.startswith("{"):
        return text
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True).decode("utf-8")


def records_of(body: str, time_processed: str = TIME_PROCESSED_SAMPLE, partition_key: str = "submission_id") -> list[tuple[str, bytes]]:
    """(partition key, data) of every Kinesis record the function publishes for
    a *valid* submission body, built as README "Output" specifies: fields in
    order, compact JSON (serde_json's), ids lowercase, event_data in the
    event struct's field order, events in document order. Raises ValueError
    for an invalid body. The checks are a sketch of README "Input" (enough to
    set apart the sample events' invalid bodies), not the function's rules;
    only sizes are taken from what this builds."""
    try:
        doc = json.loads(decode_body(body), object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"not a JSON submission: {e}") from e
    if not isinstance(doc, dict) or set(doc) != {"submission_id", "device_id", "time_created", "events"}:
        raise ValueError("not a submission")
    submission_id, device_id = _uuid(doc["submission_id"]), _uuid(doc["device_id"])
    if not isinstance(doc["events"], dict) or not _DATE_TIME.fullmatch(str(doc["time_created"])):
        raise ValueError("not a submission")
    events = []
    for event_type, items in doc["events"].items():
        fields = EVENT_FIELDS.get(event_type)
        if fields is None or not isinstance(items, list):
            raise ValueError(f"unknown event type {event_type}")
        for item in items:
            if not isinstance(item, dict) or set(item) != set(fields):
                raise ValueError("invalid event")
            if event_type == "new_process" and not all(isinstance(item[f], str) for f in fields):
                raise ValueError("invalid new_process")
            if event_type == "network_connection":
                port = item["destination_port"]
                if not (isinstance(port, int) and not isinstance(port, bool) and 0 <= port <= 65535):
                    raise ValueError("invalid destination_port")
                for f in ("source_ip", "destination_ip"):
                    if not isinstance(item[f], str) or "%" in item[f]:
                        raise ValueError(f"invalid {f}")
                    ipaddress.ip_address(item[f])  # ValueError if not an address
            events.append((event_type, {f: item[f] for f in fields}))
    key = submission_id if partition_key == "submission_id" else device_id
    out = []
    for sequence, (event_type, data) in enumerate(events):
        record = {
            "event_id": str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{device_id}/{submission_id}/{sequence}")),
            "event_type": event_type,
            "submission_id": submission_id,
            "device_id": device_id,
            "sequence": sequence,
            "event_count": len(events),
            "time_created": doc["time_created"],
            "time_processed": time_processed,
            "event_data": data,
        }
        out.append((key, json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8")))
    return out


_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")


def _uuid(value) -> str:
    if not isinstance(value, str) or len(value) != 36:
        raise ValueError("not a hyphenated UUID")
    return str(uuid.UUID(value))


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


@dataclass(frozen=True)
class Sizes:
    """What one event and one submission weigh, on the wire."""

    record_data_bytes: float  # mean Kinesis record data of one event
    record_data_max: int
    body_fixed_bytes: float  # SQS body = fixed + per_event x E (least squares over the samples)
    body_bytes_per_event: float
    submissions: int
    events: int
    source: str

    @property
    def record_bytes(self) -> float:
        """What counts against a shard's 1 MiB/s: data + partition key."""
        return self.record_data_bytes + PARTITION_KEY_BYTES

    def body_bytes(self, events: int) -> float:
        return self.body_fixed_bytes + self.body_bytes_per_event * events


def measure(paths: list[Path]) -> Sizes:
    data_sizes: list[int] = []
    points: list[tuple[int, int]] = []  # (events, body bytes)
    used = []
    for path in paths:
        if not path.exists():
            continue
        used.append(path.name)
        for message in json.loads(path.read_text())["Records"]:
            try:
                records = records_of(message["body"])
            except (ValueError, KeyError, TypeError):
                continue
            if not records:
                continue
            data_sizes += [len(data) for _, data in records]
            points.append((len(records), len(message["body"].encode("utf-8"))))
    if not data_sizes:
        return Sizes(FALLBACK_RECORD_DATA_BYTES, int(FALLBACK_RECORD_DATA_BYTES), FALLBACK_BODY_FIXED_BYTES,
                     FALLBACK_BODY_BYTES_PER_EVENT, 0, 0, "fallback constants (no sample events found)")
    n = len(points)
    mean_e = sum(e for e, _ in points) / n
    mean_b = sum(b for _, b in points) / n
    var_e = sum((e - mean_e) ** 2 for e, _ in points)
    slope = sum((e - mean_e) * (b - mean_b) for e, b in points) / var_e if var_e else mean_b / mean_e
    fixed = mean_b - slope * mean_e
    return Sizes(sum(data_sizes) / len(data_sizes), max(data_sizes), fixed, slope, n, len(data_sizes),
                 f"{len(data_sizes):,} records of {n:,} valid submissions in events/ ({', '.join(used)})")


# --- The model ----------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    sensors: int
    events: int  # E: events per submission (typical)
    interval_s: float  # T: seconds between two submissions of a sensor
    max_events: int = DEFAULT_MAX_EVENTS_PER_SUBMISSION  # largest submission accepted
    ordering: str = "strict"
    partition_key: str = "submission_id"
    rtt_ms: float = PUT_RECORDS_RTT_MS
    memory_mb: int = 128
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT_CALLS
    deadline_margin_ms: int = DEFAULT_DEADLINE_MARGIN_MS
    transform_us_per_event: float = TRANSFORM_US_PER_EVENT
    batch_size: int | None = None  # None: choose
    window_s: int | None = None
    concurrency_budget: int = CONCURRENCY_BUDGET
    utilization: float = TARGET_UTILIZATION
    record_data_bytes: float | None = None  # None: measured


def cpu_factor(memory_mb: int) -> float:
    """How much slower than one full vCPU the function computes."""
    return max(1.0, LAMBDA_MB_PER_VCPU / memory_mb)


def records_per_call(record_bytes: float) -> int:
    return max(1, min(PUT_RECORDS_MAX_RECORDS, int(PUT_RECORDS_MAX_BYTES // record_bytes)))


@dataclass(frozen=True)
class Invocation:
    """One invocation of a batch of `batch` submissions of E events."""

    batch: float
    rounds: int  # sequential waves of PutRecords calls
    calls: int
    publish_ms: float  # rounds x round trip
    cpu_ms: float
    duration_ms: float


def invocation(inp: Inputs, sizes: Sizes, batch: float, events: int | None = None) -> Invocation:
    """Strict: event position i of every submission is one round (calls of up
    to 500 records, up to max_in_flight at once), E rounds one after the other.
    Relaxed: all B x E records packed into calls, max_in_flight at once.
    No failures; retries add their backoff on top (README "Operating at scale")."""
    e = inp.events if events is None else events
    per_call = records_per_call(sizes.record_bytes)
    b = max(1, math.ceil(batch))
    if inp.ordering == "strict":
        calls_per_position = math.ceil(b / per_call)
        rounds = e * math.ceil(calls_per_position / inp.max_in_flight)
        calls = e * calls_per_position
    else:
        calls = math.ceil(b * e / per_call)
        rounds = math.ceil(calls / inp.max_in_flight)
    factor = cpu_factor(inp.memory_mb)
    cpu_ms = (b * e * inp.transform_us_per_event / 1000 + calls * PUT_RECORDS_CALL_CPU_MS) * factor
    publish_ms = rounds * inp.rtt_ms
    return Invocation(batch, rounds, calls, publish_ms, cpu_ms, publish_ms + cpu_ms + INVOCATION_OVERHEAD_MS)


def per_position_ms(inp: Inputs) -> float:
    """Strict mode, one submission alone in its round: a round trip plus the
    CPU of one call and of one event."""
    factor = cpu_factor(inp.memory_mb)
    return inp.rtt_ms + (PUT_RECORDS_CALL_CPU_MS + inp.transform_us_per_event / 1000) * factor


def largest_submission_ms(inp: Inputs, batch: float, events: int) -> float:
    """A batch holding one submission of `events` events among typical ones:
    in strict mode it needs `events` rounds, one after the other (the others
    finish within the first E); relaxed packs it into calls of 500."""
    factor = cpu_factor(inp.memory_mb)
    others_cpu_ms = max(0.0, math.ceil(batch) - 1) * inp.events * inp.transform_us_per_event / 1000 * factor
    if inp.ordering == "strict":
        return INVOCATION_OVERHEAD_MS + others_cpu_ms + max(events, inp.events) * per_position_ms(inp)
    calls = math.ceil(events / PUT_RECORDS_MAX_RECORDS)
    rounds = math.ceil(calls / inp.max_in_flight)
    return (INVOCATION_OVERHEAD_MS + others_cpu_ms + rounds * inp.rtt_ms
            + (calls * PUT_RECORDS_CALL_CPU_MS + events * inp.transform_us_per_event / 1000) * factor)


def strict_events_within(inp: Inputs, batch: float, timeout_s: float) -> int:
    """The largest submission strict mode publishes before the deadline
    (timeout - DEADLINE_MARGIN_MS), with no failure at all."""
    budget = timeout_s * 1000 - inp.deadline_margin_ms - largest_submission_ms(inp, batch, 0) + inp.events * per_position_ms(inp)
    return max(0, int(budget // per_position_ms(inp)))


@dataclass(frozen=True)
class Batching:
    batch_size: int
    window_s: int
    batch: float  # messages per invocation at this load
    fill_s: float  # time to gather a batch (the window, or less when it fills first)
    payload_cap: int  # largest batch that fits the 6 MB invocation payload
    inv: Invocation
    concurrency: float  # Little's law: invocations/s x duration
    in_flight: float  # messages received and not yet deleted
    latency_s: float  # mean time from the trigger's receive to the answer, no queueing
    gb_seconds_per_day: float  # Lambda compute billed (duration x memory)
    invocations_per_day: float


def batching(inp: Inputs, sizes: Sizes, batch_size: int, window_s: int, load: float = 1.0) -> Batching:
    s = load * inp.sensors / inp.interval_s
    message_bytes = sizes.body_bytes(inp.events) + SQS_RECORD_ENVELOPE_BYTES
    payload_cap = max(1, int(LAMBDA_PAYLOAD_BYTES // message_bytes))
    cap = min(batch_size, payload_cap)
    if window_s == 0:
        # No window: each of the pollers hands over what arrived since its
        # previous batch, about one invocation ago, up to 10.
        since_last = invocation(inp, sizes, SQS_BATCH_WITHOUT_WINDOW).duration_ms / 1000
        batch = max(1.0, min(float(cap), float(SQS_BATCH_WITHOUT_WINDOW), s * since_last / POLLERS_FILLING_BATCHES))
        fill = 0.0
    else:
        # Filled in parallel by several pollers: invoked when full, or at the window.
        full_after = cap * POLLERS_FILLING_BATCHES / s if s > 0 else math.inf
        fill = min(float(window_s), full_after)
        batch = max(1.0, min(float(cap), s * fill / POLLERS_FILLING_BATCHES))
    inv = invocation(inp, sizes, batch)
    concurrency = s / batch * inv.duration_ms / 1000
    in_flight = concurrency * batch + s * fill
    latency = fill / 2 + inv.duration_ms / 1000
    invocations = s / batch * 86400
    gb_s = invocations * inv.duration_ms / 1000 * inp.memory_mb / 1024
    return Batching(batch_size, window_s, batch, fill, payload_cap, inv, concurrency, in_flight, latency, gb_s, invocations)


def erlang_c_wait_s(servers: int, arrivals_per_s: float, service_s: float) -> tuple[float, float]:
    """M/M/c: probability that a batch waits for a free execution, and the
    mean wait. (SQS + the trigger are not exactly M/M/c; the shape, flat
    then steep near saturation, is what matters.)"""
    a = arrivals_per_s * service_s  # offered load in executions
    if servers <= 0 or a >= servers:
        return 1.0, math.inf
    b = 1.0  # Erlang B, computed iteratively (stable for large c)
    for k in range(1, servers + 1):
        b = a * b / (k + a * b)
    c = servers * b / (servers - a * (1 - b))
    return c, c * service_s / (servers - a)


@dataclass
class Limit:
    name: str
    capacity: float
    used: float
    unit: str
    relief: str

    saturates_at: float = math.inf  # load multiple at which it is reached (saturation())

    @property
    def utilization(self) -> float:
        return self.used / self.capacity if self.capacity else math.inf


@dataclass
class Settings:
    batch_size: int
    window_s: int
    memory_mb: int
    function_timeout_s: int
    visibility_timeout_s: int
    maximum_concurrency: int
    shards: int
    max_events_per_submission: int


def limits(inp: Inputs, sizes: Sizes, st: Settings, load: float = 1.0) -> list[Limit]:
    s = load * inp.sensors / inp.interval_s
    r = s * inp.events
    bt = batching(replace(inp, memory_mb=st.memory_mb), sizes, st.batch_size, st.window_s, load)
    concurrency_cap = min(st.maximum_concurrency or ESM_MAX_CONCURRENCY, ESM_MAX_CONCURRENCY)
    return [
        Limit("Kinesis records/s", st.shards * KINESIS_SHARD_RECORDS_PER_S, r, "records/s",
              "more shards (StreamShardCount), or StreamMode=ON_DEMAND"),
        Limit("Kinesis bytes/s", st.shards * KINESIS_SHARD_BYTES_PER_S, r * sizes.record_bytes, "bytes/s",
              "more shards; smaller records"),
        Limit("Lambda concurrency (MaximumConcurrency)", concurrency_cap, bt.concurrency, "executions",
              "raise MaximumConcurrency (<= 1,000), larger batches, more memory if CPU-bound"),
        Limit("Lambda account concurrency", ACCOUNT_CONCURRENCY_DEFAULT, bt.concurrency, "executions",
              "quota increase; reserved concurrency keeps other functions from starving this one"),
        Limit("SQS in-flight messages", SQS_IN_FLIGHT_LIMIT, bt.in_flight, "messages",
              "smaller batches or shorter windows; several queues"),
    ]


def saturation(inp: Inputs, sizes: Sizes, st: Settings) -> list[Limit]:
    """The limits at this load, each with the load multiple at which it is
    reached, found by bisection (concurrency is not linear in load: batches
    grow with it)."""
    found = limits(inp, sizes, st)
    for index, limit in enumerate(found):
        def use(m: float) -> float:
            return limits(inp, sizes, st, m)[index].utilization

        if limit.used <= 0:
            continue
        lo, hi = 0.0, 1.0
        while use(hi) < 1:
            lo, hi = hi, hi * 2
            if hi > 1e9:
                break
        else:
            for _ in range(50):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if use(mid) < 1 else (lo, mid)
            limit.saturates_at = hi
    return found


def recommend(inp: Inputs, sizes: Sizes) -> tuple[Settings, list[Batching], dict]:
    s = inp.sensors / inp.interval_s
    r = s * inp.events
    u = inp.utilization
    # Batch size and window: the smallest candidate whose concurrency fits the
    # budget (with headroom) and whose messages in flight stay well below SQS'.
    table = [batching(inp, sizes, b, w) for b, w in BATCH_CANDIDATES]
    chosen = None
    if inp.batch_size is not None:
        w = inp.window_s if inp.window_s is not None else (0 if inp.batch_size <= SQS_BATCH_WITHOUT_WINDOW else 1)
        chosen = batching(inp, sizes, inp.batch_size, w)
    else:
        for bt in table:
            if bt.concurrency <= inp.concurrency_budget * u and bt.in_flight <= SQS_IN_FLIGHT_LIMIT * u:
                chosen = bt
                break
        if chosen is None:
            chosen = min(table, key=lambda bt: bt.concurrency)
    # Timeout: twice what a typical batch takes (retries, slow calls), at least
    # the template's 30 s. It also bounds the largest submission strict mode
    # can publish (one round trip per event position): MaxEventsPerSubmission
    # is kept within half of that, or the timeout it would need is printed.
    # The visibility timeout follows (6 x timeout + window), and it is also
    # how long a failed submission waits before SQS delivers it again, so a
    # long timeout slows every retry: keep it short.
    typical_s = (chosen.inv.duration_ms + inp.deadline_margin_ms) / 1000
    timeout = min(LAMBDA_MAX_TIMEOUT_S, max(30, math.ceil(2 * typical_s)))
    fits = strict_events_within(inp, chosen.batch, timeout) if inp.ordering == "strict" else None
    max_events = inp.max_events if fits is None else max(1, min(inp.max_events, fits // 2))
    largest_ms = largest_submission_ms(inp, chosen.batch, inp.max_events)
    timeout_for_max_events = math.ceil(2 * (largest_ms + inp.deadline_margin_ms) / 1000)
    visibility = min(SQS_MAX_VISIBILITY_TIMEOUT_S, 6 * timeout + chosen.window_s)
    # A cap, not a reservation: at least the template's 10, so that a quiet
    # stack still absorbs a burst while the trigger scales up.
    max_concurrency = min(ESM_MAX_CONCURRENCY, max(10, math.ceil(chosen.concurrency / u)))
    shards_records = r / KINESIS_SHARD_RECORDS_PER_S
    shards_bytes = r * sizes.record_bytes / KINESIS_SHARD_BYTES_PER_S
    shards = max(1, math.ceil(max(shards_records, shards_bytes) / u))
    st = Settings(chosen.batch_size, chosen.window_s, inp.memory_mb, timeout, visibility, max_concurrency, shards,
                  max_events)
    extra = {
        "chosen": chosen,
        "largest_ms": largest_ms,
        "timeout_for_max_events_s": timeout_for_max_events,
        "shards_by_records": shards_records,
        "shards_by_bytes": shards_bytes,
        "strict_events_within_timeout": fits,
    }
    return st, table, extra


def samconfig_default_settings() -> Settings:
    d = SAMCONFIG_DEFAULT
    return Settings(d["BatchSize"], d["MaximumBatchingWindowInSeconds"], d["MemorySize"], d["FunctionTimeout"],
                    d["VisibilityTimeout"], d["MaximumConcurrency"], d["StreamShardCount"],
                    DEFAULT_MAX_EVENTS_PER_SUBMISSION)


def latency_table(inp: Inputs, sizes: Sizes, st: Settings, loads=(0.25, 0.5, 1, 1.5, 2, 4)) -> list[dict]:
    rows = []
    for load in loads:
        s = load * inp.sensors / inp.interval_s
        bt = batching(replace(inp, memory_mb=st.memory_mb), sizes, st.batch_size, st.window_s, load)
        lim = limits(inp, sizes, st, load)
        worst = max(lim, key=lambda x: x.utilization)
        servers = min(st.maximum_concurrency or ESM_MAX_CONCURRENCY, ESM_MAX_CONCURRENCY, ACCOUNT_CONCURRENCY_DEFAULT)
        p_wait, wait = erlang_c_wait_s(servers, s / bt.batch, bt.inv.duration_ms / 1000)
        row = {"load": load, "submissions_per_s": s, "batch": bt.batch, "duration_ms": bt.inv.duration_ms,
               "concurrency": bt.concurrency, "worst": worst.name, "worst_utilization": worst.utilization,
               "p_wait": p_wait, "queue_wait_s": wait, "fill_s": bt.fill_s}
        if worst.utilization >= 1:
            # Beyond a limit the queue grows: what the limit lets through is
            # load / utilization; the rest accumulates.
            row["backlog_per_s"] = s - s / worst.utilization
            row["latency_s"] = math.inf
        else:
            row["latency_s"] = bt.latency_s + (wait if math.isfinite(wait) else math.inf)
        rows.append(row)
    return rows


def plan(inp: Inputs, sizes: Sizes) -> dict:
    if inp.record_data_bytes is not None:
        sizes = replace(sizes, record_data_bytes=inp.record_data_bytes, record_data_max=int(inp.record_data_bytes),
                        source=f"--record-bytes {inp.record_data_bytes:g}")
    s = inp.sensors / inp.interval_s
    r = s * inp.events
    st, table, extra = recommend(inp, sizes)
    default = samconfig_default_settings()
    rec_limits = saturation(inp, sizes, st)
    def_limits = saturation(inp, sizes, default)
    on_demand_doublings = max(0, math.ceil(math.log2(max(r / ON_DEMAND_INITIAL_RECORDS_PER_S,
                                                         r * sizes.record_bytes / ON_DEMAND_INITIAL_BYTES_PER_S, 1))))
    default_inp = replace(inp, memory_mb=default.memory_mb)
    default_batch = batching(default_inp, sizes, default.batch_size, default.window_s).batch
    default_fits = (strict_events_within(default_inp, default_batch, default.function_timeout_s)
                    if inp.ordering == "strict" else None)
    return {
        "inputs": asdict(inp),
        "sizes": asdict(sizes) | {"record_bytes": sizes.record_bytes, "body_bytes": sizes.body_bytes(inp.events)},
        "load": {"submissions_per_s": s, "records_per_s": r, "bytes_per_s": r * sizes.record_bytes,
                 "records_per_month": r * 86400 * 30},
        "recommended": asdict(st),
        "chosen": asdict(extra["chosen"]),
        "batch_table": [asdict(bt) for bt in table],
        "largest_submission_ms": extra["largest_ms"],
        "timeout_for_max_events_s": extra["timeout_for_max_events_s"],
        "strict_events_within_timeout": extra["strict_events_within_timeout"],
        "default_strict_events_within_timeout": default_fits,
        "shards_by_records": extra["shards_by_records"],
        "shards_by_bytes": extra["shards_by_bytes"],
        "on_demand_doublings": on_demand_doublings,
        "limits_recommended": [asdict(x) | {"utilization": x.utilization, "saturates_at": x.saturates_at} for x in rec_limits],
        "limits_default": [asdict(x) | {"utilization": x.utilization, "saturates_at": x.saturates_at} for x in def_limits],
        "first_bottleneck_default": min(def_limits, key=lambda x: x.saturates_at).name,
        "first_bottleneck_recommended": min(rec_limits, key=lambda x: x.saturates_at).name,
        "latency_recommended": latency_table(inp, sizes, st),
        "latency_default": latency_table(inp, sizes, default),
        "esm_ramp_minutes": max(0.0, (extra["chosen"].concurrency - ESM_INITIAL_CONCURRENCY) / ESM_SCALE_PER_MINUTE),
        "hot_key": {
            "device_records_per_s": inp.events / inp.interval_s,
            "per_submission_records_per_s": 1000 / inp.rtt_ms if inp.ordering == "strict" else None,
            "device_backlog_submissions_to_saturate_a_shard": math.ceil(KINESIS_SHARD_RECORDS_PER_S * inp.rtt_ms / 1000),
        },
    }


# --- Output -------------------------------------------------------------------------


def fmt(x: float, digits: int = 0) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    if digits == 0:
        return f"{round(x):,}"
    return f"{x:,.{digits}f}"


def human_bytes(x: float) -> str:
    for unit, size in (("MiB", MIB), ("KiB", 1024)):
        if x >= size:
            return f"{x / size:,.2f} {unit}"
    return f"{x:,.0f} B"


def duration(seconds: float) -> str:
    if math.isinf(seconds):
        return "grows"
    if seconds < 1:
        return f"{seconds * 1000:,.0f} ms"
    if seconds < 120:
        return f"{seconds:,.1f} s"
    return f"{seconds / 60:,.1f} min"


def render(p: dict) -> str:
    i, z, load, rec, ch = p["inputs"], p["sizes"], p["load"], p["recommended"], p["chosen"]
    out: list[str] = []
    w = out.append
    w(f"Capacity plan: {i['sensors']:,} sensors x 1 submission of {i['events']} event{'s' if i['events'] != 1 else ''} every {i['interval_s']:g} s"
      f"  (ORDERING={i['ordering']}, PARTITION_KEY={i['partition_key']})")
    w("")
    w("Inputs and assumptions")
    w(f"  record size        {z['record_data_bytes']:.0f} B data (max {z['record_data_max']}) + {PARTITION_KEY_BYTES} B key"
      f" = {z['record_bytes']:.0f} B   [{z['source']}]")
    w(f"  SQS body           {z['body_bytes']:.0f} B for {i['events']} events ({z['body_fixed_bytes']:.0f} + {z['body_bytes_per_event']:.0f}/event,"
      f" base64 JSON as sensors send it) + {SQS_RECORD_ENVELOPE_BYTES} B envelope in the Lambda event")
    w(f"  PutRecords round trip t = {i['rtt_ms']:g} ms (assumption: measure as PublishLatency p50 / E in strict mode; --rtt-ms)")
    w(f"  CPU {i['transform_us_per_event']:g} us/event and {PUT_RECORDS_CALL_CPU_MS:g} ms/call at 1 vCPU"
      f" (x{cpu_factor(i['memory_mb']):.1f} at {i['memory_mb']} MB); {INVOCATION_OVERHEAD_MS:g} ms per invocation")
    w(f"  headroom: every limit planned at {i['utilization']:.0%} of its capacity")
    w("")
    w("Load")
    w(f"  {fmt(load['submissions_per_s'], 1)} submissions/s, {fmt(load['records_per_s'])} records/s,"
      f" {human_bytes(load['bytes_per_s'])}/s into Kinesis ({load['records_per_month'] / 1e9:,.2f} billion records / 30 days)")
    w("")
    w("Kinesis")
    binding = "records/s" if p["shards_by_records"] >= p["shards_by_bytes"] else "bytes/s"
    w(f"  shards needed: {p['shards_by_records']:.2f} by records/s (1,000 per shard), {p['shards_by_bytes']:.2f} by bytes/s"
      f" (1 MiB per shard): {binding} binds first")
    w(f"  PROVISIONED: StreamShardCount={rec['shards']} (at {i['utilization']:.0%})"
      + (f"; above the default account quota of {KINESIS_ACCOUNT_SHARDS_DEFAULT} shards in most regions"
         " (500 in the largest): request an increase first" if rec["shards"] > KINESIS_ACCOUNT_SHARDS_DEFAULT else ""))
    if p["on_demand_doublings"]:
        w(f"  ON_DEMAND: a new stream takes 4,000 records/s and 4 MiB/s; this load needs {p['on_demand_doublings']} doubling(s)"
          f" of its peak, up to {p['on_demand_doublings'] * ON_DEMAND_DOUBLING_MINUTES} min of throttling on a cold stream")
    else:
        w("  ON_DEMAND: within a new stream's 4,000 records/s and 4 MiB/s")
    hk = p["hot_key"]
    if hk["per_submission_records_per_s"]:
        w(f"  hot keys: a submission's records go out one per round trip in strict mode"
          f" ({fmt(hk['per_submission_records_per_s'])} records/s per key at most), so one submission never fills a shard;")
    else:
        w("  hot keys: in relaxed mode a call carries up to 500 records of one submission, all to its shard, so a"
          " submission of over 1,000 events takes its shard's whole second;")
    w(f"    PARTITION_KEY=device_id: a device sends {hk['device_records_per_s']:.2f} records/s on average, but"
      f" {hk['device_backlog_submissions_to_saturate_a_shard']} of its submissions in one batch (a backlog after being offline)"
      f" fill its shard's 1,000 records/s")
    w("")
    w("Batch size and batching window (per invocation; strict: E rounds of calls)")
    w("  BatchSize  window  batch@load  duration  of which RTT  concurrency  in flight  added latency"
      "  GB-s/day  invocations/day")
    for bt in p["batch_table"]:
        mark = " <" if (bt["batch_size"], bt["window_s"]) == (ch["batch_size"], ch["window_s"]) else ""
        w(f"  {bt['batch_size']:>9,}  {bt['window_s']:>4} s  {bt['batch']:>10,.0f}  {bt['inv']['duration_ms']:>5,.0f} ms"
          f"  {bt['inv']['publish_ms']:>9,.0f} ms  {bt['concurrency']:>11,.1f}  {bt['in_flight']:>9,.0f}"
          f"  {duration(bt['fill_s'] / 2):>13}  {bt['gb_seconds_per_day']:>8,.0f}  {bt['invocations_per_day']:>15,.0f}{mark}")
    w(f"  (payload: at most {ch['payload_cap']:,} messages fit a 6 MB invocation; < = chosen: the smallest batch whose"
      f" concurrency is within {i['concurrency_budget']} x {i['utilization']:.0%})")
    w("")
    w("Recommended settings (template parameters)")
    w(f"  BatchSize={rec['batch_size']} MaximumBatchingWindowInSeconds={rec['window_s']} MemorySize={rec['memory_mb']}"
      f" FunctionTimeout={rec['function_timeout_s']} VisibilityTimeout={rec['visibility_timeout_s']}"
      f" MaximumConcurrency={rec['maximum_concurrency']} MaxEventsPerSubmission={rec['max_events_per_submission']}"
      f" StreamMode=PROVISIONED StreamShardCount={rec['shards']}")
    cpu_share = ch["inv"]["cpu_ms"] / ch["inv"]["duration_ms"]
    w(f"  CPU is {cpu_share:.0%} of an invocation at {i['memory_mb']} MB"
      + (f": more memory shortens it (CPU grows with memory up to 1 vCPU at {LAMBDA_MB_PER_VCPU:,} MB;"
         " --memory to compare)" if cpu_share > 0.25 and i["memory_mb"] < LAMBDA_MB_PER_VCPU else
         "; the rest is waiting for Kinesis, which more memory does not shorten"))
    w(f"  concurrency {ch['concurrency']:.1f} executions at this load (Little's law: {load['submissions_per_s']:.1f}/s"
      f" / {ch['batch']:.0f} per batch x {ch['inv']['duration_ms']:.0f} ms); from idle the trigger needs"
      f" {p['esm_ramp_minutes']:.1f} min to get there (5, then +300 a minute)")
    w(f"  FunctionTimeout: twice a typical batch ({duration(ch['inv']['duration_ms'] / 1000)}) for retries and slow calls,"
      f" at least 30 s; VisibilityTimeout = 6 x FunctionTimeout + window (AWS guidance). The visibility timeout is also")
    w("    how long a failed submission waits before SQS delivers it again: a longer timeout delays every retry.")
    fits = p["strict_events_within_timeout"]
    if fits is not None:
        w(f"  strict ordering publishes a submission one event position per round trip: within FunctionTimeout="
          f"{rec['function_timeout_s']} at most {fits:,} events")
        w(f"    ({per_position_ms_of(i):.1f} ms each). A larger submission can never be published: it is retried until the"
          f" dead-letter queue.")
        if rec["max_events_per_submission"] < i["max_events"]:
            w(f"    So MaxEventsPerSubmission={rec['max_events_per_submission']:,} (half of that; larger submissions are"
              f" rejected as too_many_events), or, to accept {i['max_events']:,}-event submissions,"
              f" FunctionTimeout={p['timeout_for_max_events_s']:,}" + (" (over Lambda's 900 s: not possible)"
                                                                      if p["timeout_for_max_events_s"] > LAMBDA_MAX_TIMEOUT_S else "")
              + " or ORDERING=relaxed.")
        w(f"    samconfig.toml [default] (FunctionTimeout={SAMCONFIG_DEFAULT['FunctionTimeout']},"
          f" MaxEventsPerSubmission={DEFAULT_MAX_EVENTS_PER_SUBMISSION:,}): at most"
          f" {p['default_strict_events_within_timeout']:,} events.")
    w("")
    for title, key, first in (("with the recommended settings", "limits_recommended", "first_bottleneck_recommended"),
                              ("with samconfig.toml [default] (1 shard, BatchSize 10, MaximumConcurrency 10, 128 MB)",
                               "limits_default", "first_bottleneck_default")):
        w(f"Limits {title}")
        w("  limit                                     capacity        used  utilization  reached at  relieved by")
        for x in p[key]:
            cap, used = ((human_bytes(x["capacity"]), human_bytes(x["used"])) if x["unit"] == "bytes/s"
                         else (fmt(x["capacity"]), fmt(x["used"], 1)))
            w(f"  {x['name']:<40} {cap:>10} {used:>11} {x['utilization']:>11.0%}"
              f"  {('x' + format(x['saturates_at'], ',.2f')) if math.isfinite(x['saturates_at']) else '-':>10}  {x['relief']}")
        first_limit = next(x for x in p[key] if x["name"] == p[first])
        if math.isfinite(first_limit["saturates_at"]):
            w(f"  first bottleneck: {p[first]}, at {first_limit['saturates_at']:.2f} x this load"
              f" (about {first_limit['saturates_at'] * i['sensors']:,.0f} sensors)")
        w("")
    for title, key in (("recommended settings", "latency_recommended"), ("samconfig.toml [default]", "latency_default")):
        w(f"End-to-end latency as load grows ({title}): batching wait + invocation + wait for a free execution")
        w("  load  submissions/s  batch  invocation  concurrency  P(wait)  latency (mean, after the trigger receives)")
        for row in p[key]:
            if "backlog_per_s" in row:
                lat = (f"falls behind: {row['worst']} at {row['worst_utilization']:.0%}; the queue grows by"
                       f" {row['backlog_per_s']:,.0f} submissions/s and their age with it")
            else:
                lat = duration(row["latency_s"])
            w(f"  x{row['load']:<4g} {row['submissions_per_s']:>13,.1f} {row['batch']:>6,.0f} {row['duration_ms']:>8,.0f} ms"
              f" {row['concurrency']:>12,.1f} {row['p_wait']:>8.0%}  {lat}")
        w("")
    w("Add to every latency: the sensor's upload, SQS delivery to the trigger's long poll (not modelled), and the")
    w("consumer's read of the stream. Retries (throttling, errors) add their backoff: 50 ms doubling to 2 s per attempt.")
    return "\n".join(out)


def per_position_ms_of(inputs: dict) -> float:
    return per_position_ms(Inputs(**inputs))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sensors", "-N", type=int, help="number of sensors (N)")
    ap.add_argument("--events", "-E", type=int, help="events per submission (E)")
    ap.add_argument("--interval", "-T", type=float, help="seconds between two submissions of a sensor (T)")
    ap.add_argument("--max-events", type=int, default=DEFAULT_MAX_EVENTS_PER_SUBMISSION,
                    help="largest submission to plan the timeout for (MaxEventsPerSubmission, default %(default)s)")
    ap.add_argument("--ordering", choices=["strict", "relaxed"], default="strict")
    ap.add_argument("--partition-key", choices=["submission_id", "device_id"], default="submission_id")
    ap.add_argument("--rtt-ms", type=float, default=PUT_RECORDS_RTT_MS, help="PutRecords round trip (default %(default)s)")
    ap.add_argument("--memory", type=int, default=128, help="MemorySize in MB (default %(default)s)")
    ap.add_argument("--max-in-flight", type=int, default=DEFAULT_MAX_IN_FLIGHT_CALLS, help="MaxInFlightCalls")
    ap.add_argument("--transform-us-per-event", type=float, default=TRANSFORM_US_PER_EVENT,
                    help="CPU per event on one vCPU, in microseconds (default %(default)s)")
    ap.add_argument("--batch-size", type=int, help="plan for this BatchSize instead of choosing one")
    ap.add_argument("--window", type=int, help="MaximumBatchingWindowInSeconds with --batch-size")
    ap.add_argument("--concurrency-budget", type=int, default=CONCURRENCY_BUDGET,
                    help="executions the batch-size choice should stay within (default %(default)s)")
    ap.add_argument("--utilization", type=float, default=TARGET_UTILIZATION, help="planned share of every limit")
    ap.add_argument("--record-bytes", type=float, help="mean record data bytes, instead of measuring events/")
    ap.add_argument("--json", action="store_true", help="print the plan as JSON")
    ap.add_argument("--records", action="store_true",
                    help="print the records built from the sample events (one JSON document a line) and exit")
    args = ap.parse_args(argv)
    if args.records:
        for path in SAMPLE_EVENTS:
            if path.exists():
                for message in json.loads(path.read_text())["Records"]:
                    try:
                        for _, data in records_of(message["body"]):
                            sys.stdout.write(data.decode("utf-8") + "\n")
                    except (ValueError, KeyError, TypeError):
                        pass
        return 0
    if not (args.sensors and args.events and args.interval):
        ap.error("--sensors N, --events E and --interval T are required (e.g. --sensors 100000 --events 8 --interval 60)")
    if args.sensors < 1 or args.events < 1 or args.interval <= 0:
        ap.error("N and E must be at least 1, T positive")
    if args.batch_size is not None and not 1 <= args.batch_size <= SQS_MAX_BATCH:
        ap.error("--batch-size must be 1-10000")
    if not 0 < args.utilization <= 1:
        ap.error("--utilization must be in (0, 1]")
    inp = Inputs(args.sensors, args.events, args.interval, max_events=args.max_events, ordering=args.ordering,
                 partition_key=args.partition_key, rtt_ms=args.rtt_ms, memory_mb=args.memory,
                 max_in_flight=args.max_in_flight, transform_us_per_event=args.transform_us_per_event,
                 batch_size=args.batch_size, window_s=args.window, concurrency_budget=args.concurrency_budget,
                 utilization=args.utilization, record_data_bytes=args.record_bytes)
    result = plan(inp, measure(SAMPLE_EVENTS))
    if args.json:
        print(json.dumps(result, indent=1, default=lambda o: None if isinstance(o, float) and math.isinf(o) else str(o)))
    else:
        print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
