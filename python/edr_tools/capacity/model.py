"""The capacity model: what a record and a submission weigh (measured from
events/records.golden.jsonl, the records the function itself produces for the
sample events, written and checked by the Rust test tests/sample_events.rs),
and, from the limits, what an invocation takes, the settings to recommend,
when each limit is reached and how latency grows with load. Pure arithmetic."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from edr_tools import ROOT
from edr_tools.capacity import formats
from edr_tools.capacity.limits import (
    ACCOUNT_CONCURRENCY_DEFAULT,
    BATCH_CANDIDATES,
    CONCURRENCY_BUDGET,
    DEFAULT_DEADLINE_MARGIN_MS,
    DEFAULT_MAX_EVENTS_PER_SUBMISSION,
    DEFAULT_MAX_IN_FLIGHT_CALLS,
    ESM_INITIAL_CONCURRENCY,
    ESM_MAX_CONCURRENCY,
    ESM_SCALE_PER_MINUTE,
    FALLBACK_BODY_BYTES_PER_EVENT,
    FALLBACK_BODY_FIXED_BYTES,
    FALLBACK_RECORD_DATA_BYTES,
    INVOCATION_OVERHEAD_MS,
    KINESIS_SHARD_BYTES_PER_S,
    KINESIS_SHARD_RECORDS_PER_S,
    LAMBDA_MAX_TIMEOUT_S,
    LAMBDA_MB_PER_VCPU,
    LAMBDA_PAYLOAD_BYTES,
    ON_DEMAND_INITIAL_BYTES_PER_S,
    ON_DEMAND_INITIAL_RECORDS_PER_S,
    PARTITION_KEY_BYTES,
    POLLERS_FILLING_BATCHES,
    PUT_RECORDS_CALL_CPU_MS,
    PUT_RECORDS_MAX_BYTES,
    PUT_RECORDS_MAX_RECORDS,
    PUT_RECORDS_RTT_MS,
    SAMCONFIG_DEFAULT,
    SQS_BATCH_WITHOUT_WINDOW,
    SQS_IN_FLIGHT_LIMIT,
    SQS_MAX_VISIBILITY_TIMEOUT_S,
    SQS_RECORD_ENVELOPE_BYTES,
    TARGET_UTILIZATION,
    TRANSFORM_US_PER_EVENT,
)

# One JSON object per SQS message of every events/*.json file: its body size
# and, for a valid one, its partition key and the records exactly as published.
GOLDEN_RECORDS = ROOT / "events" / "records.golden.jsonl"


# --- Record sizes, measured from the function's own output for the sample events ---


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
    partition_key_bytes: float = PARTITION_KEY_BYTES  # mean, as measured

    @property
    def record_bytes(self) -> float:
        """What counts against a shard's 1 MiB/s: data + partition key."""
        return self.record_data_bytes + self.partition_key_bytes

    def body_bytes(self, events: int) -> float:
        return self.body_fixed_bytes + self.body_bytes_per_event * events


def golden_records(path: Path = GOLDEN_RECORDS) -> list[dict]:
    """The golden file's lines (none if it is not there)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def measure(path: Path = GOLDEN_RECORDS) -> Sizes:
    """Record and body sizes of the valid sample submissions (rejected ones
    publish nothing and are not measured)."""
    data_sizes: list[int] = []
    key_sizes: list[int] = []
    points: list[tuple[int, int]] = []  # (events, body bytes)
    used: list[str] = []
    for message in golden_records(path):
        records = message.get("records")
        if not records:
            continue
        if message["file"] not in used:
            used.append(message["file"])
        data_sizes += [len(data.encode("utf-8")) for data in records]
        key_sizes += [len(message["partition_key"].encode("utf-8"))] * len(records)
        points.append((len(records), message["body_bytes"]))
    if not data_sizes:
        return Sizes(
            FALLBACK_RECORD_DATA_BYTES,
            int(FALLBACK_RECORD_DATA_BYTES),
            FALLBACK_BODY_FIXED_BYTES,
            FALLBACK_BODY_BYTES_PER_EVENT,
            0,
            0,
            f"fallback constants (no {path.name})",
        )
    n = len(points)
    mean_e = sum(e for e, _ in points) / n
    mean_b = sum(b for _, b in points) / n
    var_e = sum((e - mean_e) ** 2 for e, _ in points)
    slope = sum((e - mean_e) * (b - mean_b) for e, b in points) / var_e if var_e else mean_b / mean_e
    fixed = mean_b - slope * mean_e
    return Sizes(
        sum(data_sizes) / len(data_sizes),
        max(data_sizes),
        fixed,
        slope,
        n,
        len(data_sizes),
        f"{len(data_sizes):,} records of {n:,} valid submissions in events/ ({', '.join(used)})",
        sum(key_sizes) / len(key_sizes),
    )


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
    No failures; retries add their backoff on top (docs/operations.md, "Capacity planning")."""
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
    return (
        INVOCATION_OVERHEAD_MS
        + others_cpu_ms
        + rounds * inp.rtt_ms
        + (calls * PUT_RECORDS_CALL_CPU_MS + events * inp.transform_us_per_event / 1000) * factor
    )


def strict_events_within(inp: Inputs, batch: float, timeout_s: float) -> int:
    """The largest submission strict mode publishes before the deadline
    (timeout - DEADLINE_MARGIN_MS), with no failure at all."""
    budget = (
        timeout_s * 1000
        - inp.deadline_margin_ms
        - largest_submission_ms(inp, batch, 0)
        + inp.events * per_position_ms(inp)
    )
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
    return Batching(
        batch_size, window_s, batch, fill, payload_cap, inv, concurrency, in_flight, latency, gb_s, invocations
    )


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
        Limit(
            "Kinesis records/s",
            st.shards * KINESIS_SHARD_RECORDS_PER_S,
            r,
            "records/s",
            "more shards (StreamShardCount), or StreamMode=ON_DEMAND",
        ),
        Limit(
            "Kinesis bytes/s",
            st.shards * KINESIS_SHARD_BYTES_PER_S,
            r * sizes.record_bytes,
            "bytes/s",
            "more shards; smaller records",
        ),
        Limit(
            "Lambda concurrency (MaximumConcurrency)",
            concurrency_cap,
            bt.concurrency,
            "executions",
            "raise MaximumConcurrency (<= 1,000), larger batches, more memory if CPU-bound",
        ),
        Limit(
            "Lambda account concurrency",
            ACCOUNT_CONCURRENCY_DEFAULT,
            bt.concurrency,
            "executions",
            "quota increase; reserved concurrency keeps other functions from starving this one",
        ),
        Limit(
            "SQS in-flight messages",
            SQS_IN_FLIGHT_LIMIT,
            bt.in_flight,
            "messages",
            "smaller batches or shorter windows; several queues",
        ),
    ]


def saturation(inp: Inputs, sizes: Sizes, st: Settings) -> list[Limit]:
    """The limits at this load, each with the load multiple at which it is
    reached, found by bisection (concurrency is not linear in load: batches
    grow with it)."""
    found = limits(inp, sizes, st)
    for index, limit in enumerate(found):

        def use(m: float, index: int = index) -> float:
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
    st = Settings(
        chosen.batch_size, chosen.window_s, inp.memory_mb, timeout, visibility, max_concurrency, shards, max_events
    )
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
    return Settings(
        d["BatchSize"],
        d["MaximumBatchingWindowInSeconds"],
        d["MemorySize"],
        d["FunctionTimeout"],
        d["VisibilityTimeout"],
        d["MaximumConcurrency"],
        d["StreamShardCount"],
        DEFAULT_MAX_EVENTS_PER_SUBMISSION,
    )


def latency_table(inp: Inputs, sizes: Sizes, st: Settings, loads=(0.25, 0.5, 1, 1.5, 2, 4)) -> list[dict]:
    rows = []
    for load in loads:
        s = load * inp.sensors / inp.interval_s
        bt = batching(replace(inp, memory_mb=st.memory_mb), sizes, st.batch_size, st.window_s, load)
        lim = limits(inp, sizes, st, load)
        worst = max(lim, key=lambda x: x.utilization)
        servers = min(st.maximum_concurrency or ESM_MAX_CONCURRENCY, ESM_MAX_CONCURRENCY, ACCOUNT_CONCURRENCY_DEFAULT)
        p_wait, wait = erlang_c_wait_s(servers, s / bt.batch, bt.inv.duration_ms / 1000)
        row = {
            "load": load,
            "submissions_per_s": s,
            "batch": bt.batch,
            "duration_ms": bt.inv.duration_ms,
            "concurrency": bt.concurrency,
            "worst": worst.name,
            "worst_utilization": worst.utilization,
            "p_wait": p_wait,
            "queue_wait_s": wait,
            "fill_s": bt.fill_s,
        }
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
        sizes = replace(
            sizes,
            record_data_bytes=inp.record_data_bytes,
            record_data_max=int(inp.record_data_bytes),
            source=f"--record-bytes {inp.record_data_bytes:g}",
        )
    s = inp.sensors / inp.interval_s
    r = s * inp.events
    st, table, extra = recommend(inp, sizes)
    default = samconfig_default_settings()
    rec_limits = saturation(inp, sizes, st)
    def_limits = saturation(inp, sizes, default)
    on_demand_doublings = max(
        0,
        math.ceil(
            math.log2(
                max(r / ON_DEMAND_INITIAL_RECORDS_PER_S, r * sizes.record_bytes / ON_DEMAND_INITIAL_BYTES_PER_S, 1)
            )
        ),
    )
    default_inp = replace(inp, memory_mb=default.memory_mb)
    default_batch = batching(default_inp, sizes, default.batch_size, default.window_s).batch
    default_fits = (
        strict_events_within(default_inp, default_batch, default.function_timeout_s)
        if inp.ordering == "strict"
        else None
    )
    return {
        "inputs": asdict(inp),
        "sizes": asdict(sizes) | {"record_bytes": sizes.record_bytes, "body_bytes": sizes.body_bytes(inp.events)},
        "load": {
            "submissions_per_s": s,
            "records_per_s": r,
            "bytes_per_s": r * sizes.record_bytes,
            "records_per_month": r * 86400 * 30,
        },
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
        "record_formats": formats.side_by_side(
            s, inp.events, sizes.record_data_bytes, sizes.partition_key_bytes, inp.utilization
        ),
        "limits_recommended": [
            asdict(x) | {"utilization": x.utilization, "saturates_at": x.saturates_at} for x in rec_limits
        ],
        "limits_default": [
            asdict(x) | {"utilization": x.utilization, "saturates_at": x.saturates_at} for x in def_limits
        ],
        "first_bottleneck_default": min(def_limits, key=lambda x: x.saturates_at).name,
        "first_bottleneck_recommended": min(rec_limits, key=lambda x: x.saturates_at).name,
        "latency_recommended": latency_table(inp, sizes, st),
        "latency_default": latency_table(inp, sizes, default),
        "esm_ramp_minutes": max(0.0, (extra["chosen"].concurrency - ESM_INITIAL_CONCURRENCY) / ESM_SCALE_PER_MINUTE),
        "hot_key": {
            "device_records_per_s": inp.events / inp.interval_s,
            "per_submission_records_per_s": 1000 / inp.rtt_ms if inp.ordering == "strict" else None,
            "device_backlog_submissions_to_saturate_a_shard": math.ceil(
                KINESIS_SHARD_RECORDS_PER_S * inp.rtt_ms / 1000
            ),
        },
    }
