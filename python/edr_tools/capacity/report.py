"""The capacity plan as text (or JSON), and the command line of
`python -m edr_tools.capacity` (`make capacity`)."""

from __future__ import annotations

import argparse
import json
import math
import sys

from edr_tools.capacity import __doc__ as CAPACITY_DOC
from edr_tools.capacity.formats import HOURS_PER_MONTH, PRICES, PRICES_SOURCE
from edr_tools.capacity.limits import (
    CONCURRENCY_BUDGET,
    DEFAULT_MAX_EVENTS_PER_SUBMISSION,
    DEFAULT_MAX_IN_FLIGHT_CALLS,
    INVOCATION_OVERHEAD_MS,
    KINESIS_ACCOUNT_SHARDS_DEFAULT,
    LAMBDA_MAX_TIMEOUT_S,
    LAMBDA_MB_PER_VCPU,
    MIB,
    ON_DEMAND_DOUBLING_MINUTES,
    PUT_RECORDS_CALL_CPU_MS,
    PUT_RECORDS_RTT_MS,
    SAMCONFIG_DEFAULT,
    SQS_MAX_BATCH,
    SQS_RECORD_ENVELOPE_BYTES,
    TARGET_UTILIZATION,
    TRANSFORM_US_PER_EVENT,
)
from edr_tools.capacity.model import Inputs, cpu_factor, golden_records, measure, per_position_ms, plan

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
    w(
        f"Capacity plan: {i['sensors']:,} sensors x 1 submission of {i['events']} event{'s' if i['events'] != 1 else ''} every {i['interval_s']:g} s"
        f"  (ORDERING={i['ordering']}, PARTITION_KEY={i['partition_key']})"
    )
    w("")
    w("Inputs and assumptions")
    w(
        f"  record size        {z['record_data_bytes']:.0f} B data (max {z['record_data_max']}) + {z['partition_key_bytes']:.0f} B key"
        f" = {z['record_bytes']:.0f} B   [{z['source']}]"
    )
    w(
        f"  SQS body           {z['body_bytes']:.0f} B for {i['events']} events ({z['body_fixed_bytes']:.0f} + {z['body_bytes_per_event']:.0f}/event,"
        f" base64 JSON as sensors send it) + {SQS_RECORD_ENVELOPE_BYTES} B envelope in the Lambda event"
    )
    w(
        f"  PutRecords round trip t = {i['rtt_ms']:g} ms (assumption: measure as PublishLatency p50 / E in strict mode; --rtt-ms)"
    )
    w(
        f"  CPU {i['transform_us_per_event']:g} us/event and {PUT_RECORDS_CALL_CPU_MS:g} ms/call at 1 vCPU"
        f" (x{cpu_factor(i['memory_mb']):.1f} at {i['memory_mb']} MB); {INVOCATION_OVERHEAD_MS:g} ms per invocation"
    )
    w(f"  headroom: every limit planned at {i['utilization']:.0%} of its capacity")
    w("")
    w("Load")
    w(
        f"  {fmt(load['submissions_per_s'], 1)} submissions/s, {fmt(load['records_per_s'])} records/s,"
        f" {human_bytes(load['bytes_per_s'])}/s into Kinesis ({load['records_per_month'] / 1e9:,.2f} billion records / 30 days)"
    )
    w("")
    w("Kinesis")
    binding = "records/s" if p["shards_by_records"] >= p["shards_by_bytes"] else "bytes/s"
    w(
        f"  shards needed: {p['shards_by_records']:.2f} by records/s (1,000 per shard), {p['shards_by_bytes']:.2f} by bytes/s"
        f" (1 MiB per shard): {binding} binds first"
    )
    w(
        f"  PROVISIONED: StreamShardCount={rec['shards']} (at {i['utilization']:.0%})"
        + (
            f"; above the default account quota of {KINESIS_ACCOUNT_SHARDS_DEFAULT} shards in most regions"
            " (500 in the largest): request an increase first"
            if rec["shards"] > KINESIS_ACCOUNT_SHARDS_DEFAULT
            else ""
        )
    )
    if p["on_demand_doublings"]:
        w(
            f"  ON_DEMAND: a new stream takes 4,000 records/s and 4 MiB/s; this load needs {p['on_demand_doublings']} doubling(s)"
            f" of its peak, up to {p['on_demand_doublings'] * ON_DEMAND_DOUBLING_MINUTES} min of throttling on a cold stream"
        )
    else:
        w("  ON_DEMAND: within a new stream's 4,000 records/s and 4 MiB/s")
    hk = p["hot_key"]
    if hk["per_submission_records_per_s"]:
        w(
            f"  hot keys: a submission's records go out one per round trip in strict mode"
            f" ({fmt(hk['per_submission_records_per_s'])} records/s per key at most), so one submission never fills a shard;"
        )
    else:
        w(
            "  hot keys: in relaxed mode a call carries up to 500 records of one submission, all to its shard, so a"
            " submission of over 1,000 events takes its shard's whole second;"
        )
    w(
        f"    PARTITION_KEY=device_id: a device sends {hk['device_records_per_s']:.2f} records/s on average, but"
        f" {hk['device_backlog_submissions_to_saturate_a_shard']} of its submissions in one batch (a backlog after being offline)"
        f" fill its shard's 1,000 records/s"
    )
    w("")
    render_formats(p, w)
    w("Batch size and batching window (per invocation; strict: E rounds of calls)")
    w(
        "  BatchSize  window  batch@load  duration  of which RTT  concurrency  in flight  added latency"
        "  GB-s/day  invocations/day"
    )
    for bt in p["batch_table"]:
        mark = " <" if (bt["batch_size"], bt["window_s"]) == (ch["batch_size"], ch["window_s"]) else ""
        w(
            f"  {bt['batch_size']:>9,}  {bt['window_s']:>4} s  {bt['batch']:>10,.0f}  {bt['inv']['duration_ms']:>5,.0f} ms"
            f"  {bt['inv']['publish_ms']:>9,.0f} ms  {bt['concurrency']:>11,.1f}  {bt['in_flight']:>9,.0f}"
            f"  {duration(bt['fill_s'] / 2):>13}  {bt['gb_seconds_per_day']:>8,.0f}  {bt['invocations_per_day']:>15,.0f}{mark}"
        )
    w(
        f"  (payload: at most {ch['payload_cap']:,} messages fit a 6 MB invocation; < = chosen: the smallest batch whose"
        f" concurrency is within {i['concurrency_budget']} x {i['utilization']:.0%})"
    )
    w("")
    w("Recommended settings (template parameters)")
    w(
        f"  BatchSize={rec['batch_size']} MaximumBatchingWindowInSeconds={rec['window_s']} MemorySize={rec['memory_mb']}"
        f" FunctionTimeout={rec['function_timeout_s']} VisibilityTimeout={rec['visibility_timeout_s']}"
        f" MaximumConcurrency={rec['maximum_concurrency']} MaxEventsPerSubmission={rec['max_events_per_submission']}"
        f" StreamMode=PROVISIONED StreamShardCount={rec['shards']}"
    )
    cpu_share = ch["inv"]["cpu_ms"] / ch["inv"]["duration_ms"]
    w(
        f"  CPU is {cpu_share:.0%} of an invocation at {i['memory_mb']} MB"
        + (
            f": more memory shortens it (CPU grows with memory up to 1 vCPU at {LAMBDA_MB_PER_VCPU:,} MB;"
            " --memory to compare)"
            if cpu_share > 0.25 and i["memory_mb"] < LAMBDA_MB_PER_VCPU
            else "; the rest is waiting for Kinesis, which more memory does not shorten"
        )
    )
    w(
        f"  concurrency {ch['concurrency']:.1f} executions at this load (Little's law: {load['submissions_per_s']:.1f}/s"
        f" / {ch['batch']:.0f} per batch x {ch['inv']['duration_ms']:.0f} ms); from idle the trigger needs"
        f" {p['esm_ramp_minutes']:.1f} min to get there (5, then +300 a minute)"
    )
    w(
        f"  FunctionTimeout: twice a typical batch ({duration(ch['inv']['duration_ms'] / 1000)}) for retries and slow calls,"
        f" at least 30 s; VisibilityTimeout = 6 x FunctionTimeout + window (AWS guidance). The visibility timeout is also"
    )
    w("    how long a failed submission waits before SQS delivers it again: a longer timeout delays every retry.")
    fits = p["strict_events_within_timeout"]
    if fits is not None:
        w(
            f"  strict ordering publishes a submission one event position per round trip: within FunctionTimeout="
            f"{rec['function_timeout_s']} at most {fits:,} events"
        )
        w(
            f"    ({per_position_ms_of(i):.1f} ms each). A larger one is published over several deliveries from a standard"
            f" queue with Resume=resend (each sends the rest back with its progress), an invocation per hop;"
        )
        w(
            "    from a FIFO queue or with Resume=off it is retried from its first event until the dead-letter queue,"
            " never published whole."
        )
        if rec["max_events_per_submission"] < i["max_events"]:
            w(
                f"    So MaxEventsPerSubmission={rec['max_events_per_submission']:,} (half of that; larger submissions are"
                f" rejected as too_many_events), or, to accept {i['max_events']:,}-event submissions,"
                f" FunctionTimeout={p['timeout_for_max_events_s']:,}"
                + (
                    " (over Lambda's 900 s: not possible)"
                    if p["timeout_for_max_events_s"] > LAMBDA_MAX_TIMEOUT_S
                    else ""
                )
                + " (ORDERING=relaxed needs fewer round trips but keeps no order of arrival once a call goes"
                " unanswered: only for consumers that order by sequence)."
            )
        w(
            f"    samconfig.toml [default] (FunctionTimeout={SAMCONFIG_DEFAULT['FunctionTimeout']},"
            f" MaxEventsPerSubmission={DEFAULT_MAX_EVENTS_PER_SUBMISSION:,}): at most"
            f" {p['default_strict_events_within_timeout']:,} events."
        )
    w("")
    for title, key, first in (
        ("with the recommended settings", "limits_recommended", "first_bottleneck_recommended"),
        (
            "with samconfig.toml [default] (1 shard, BatchSize 10, MaximumConcurrency 10, 128 MB)",
            "limits_default",
            "first_bottleneck_default",
        ),
    ):
        w(f"Limits {title}")
        w("  limit                                     capacity        used  utilization  reached at  relieved by")
        for x in p[key]:
            cap, used = (
                (human_bytes(x["capacity"]), human_bytes(x["used"]))
                if x["unit"] == "bytes/s"
                else (fmt(x["capacity"]), fmt(x["used"], 1))
            )
            w(
                f"  {x['name']:<40} {cap:>10} {used:>11} {x['utilization']:>11.0%}"
                f"  {('x' + format(x['saturates_at'], ',.2f')) if math.isfinite(x['saturates_at']) else '-':>10}  {x['relief']}"
            )
        first_limit = next(x for x in p[key] if x["name"] == p[first])
        if math.isfinite(first_limit["saturates_at"]):
            w(
                f"  first bottleneck: {p[first]}, at {first_limit['saturates_at']:.2f} x this load"
                f" (about {first_limit['saturates_at'] * i['sensors']:,.0f} sensors)"
            )
        w("")
    for title, key in (
        ("recommended settings", "latency_recommended"),
        ("samconfig.toml [default]", "latency_default"),
    ):
        w(f"End-to-end latency as load grows ({title}): batching wait + invocation + wait for a free execution")
        w("  load  submissions/s  batch  invocation  concurrency  P(wait)  latency (mean, after the trigger receives)")
        for row in p[key]:
            if "backlog_per_s" in row:
                lat = (
                    f"falls behind: {row['worst']} at {row['worst_utilization']:.0%}; the queue grows by"
                    f" {row['backlog_per_s']:,.0f} submissions/s and their age with it"
                )
            else:
                lat = duration(row["latency_s"])
            w(
                f"  x{row['load']:<4g} {row['submissions_per_s']:>13,.1f} {row['batch']:>6,.0f} {row['duration_ms']:>8,.0f} ms"
                f" {row['concurrency']:>12,.1f} {row['p_wait']:>8.0%}  {lat}"
            )
        w("")
    w("Add to every latency: the sensor's upload, SQS delivery to the trigger's long poll (not modelled), and the")
    w(
        "consumer's read of the stream. Retries (throttling, errors) add their backoff: 50 ms doubling to 2 s per attempt."
    )
    return "\n".join(out)


def render_formats(p: dict, w) -> None:
    """RECORD_FORMAT=per-event against aggregated, for the same load."""
    w("Record formats side by side (RECORD_FORMAT; every other figure of this plan is per-event)")
    w(
        "  format        record     records/s      bytes/s   shards (rec/s, bytes/s)  PUT units/s"
        "   on demand in/s   provisioned/month   on-demand/month"
    )
    for f in p["record_formats"]:
        w(
            f"  {f['format']:<11} {f['record_bytes']:>7,} B {f['records_per_s']:>13,.0f} {human_bytes(f['bytes_per_s']):>11}/s"
            f"   {f['shards']:>4} ({f['shards_by_records']:.2f}, {f['shards_by_bytes']:.2f})  {f['put_units_per_s']:>11,.0f}"
            f" {human_bytes(f['on_demand_billed_bytes_per_s']):>14}/s  {'$':>4}{f['monthly_provisioned_usd']:>13,.0f}"
            f"  {'$':>4}{f['monthly_on_demand_usd']:>13,.0f}"
        )
    agg = p["record_formats"][-1]
    w(
        f"  aggregated: {agg['records_per_submission']} record(s) per submission, data and partition key as Kinesis counts them;"
        " consumers must deaggregate (docs/contract.md)"
    )
    w(
        f"  shards at {p['inputs']['utilization']:.0%}; a month = {HOURS_PER_MONTH} h; {PRICES_SOURCE}: shard-hour"
        f" ${PRICES['provisioned_shard_hour']}, PUT units ${PRICES['provisioned_put_units_per_million']}/million,"
        f" on-demand stream-hour ${PRICES['on_demand_stream_hour']}, ${PRICES['on_demand_gib_in']}/GiB in"
        " (each record rounded up to 1 KiB); retention, fan-out and reads not included"
    )
    w("")


def per_position_ms_of(inputs: dict) -> float:
    return per_position_ms(Inputs(**inputs))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=CAPACITY_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sensors", "-N", type=int, help="number of sensors (N)")
    ap.add_argument("--events", "-E", type=int, help="events per submission (E)")
    ap.add_argument("--interval", "-T", type=float, help="seconds between two submissions of a sensor (T)")
    ap.add_argument(
        "--max-events",
        type=int,
        default=DEFAULT_MAX_EVENTS_PER_SUBMISSION,
        help="largest submission to plan the timeout for (MaxEventsPerSubmission, default %(default)s)",
    )
    ap.add_argument("--ordering", choices=["strict", "relaxed"], default="strict")
    ap.add_argument("--partition-key", choices=["submission_id", "device_id"], default="submission_id")
    ap.add_argument(
        "--rtt-ms", type=float, default=PUT_RECORDS_RTT_MS, help="PutRecords round trip (default %(default)s)"
    )
    ap.add_argument("--memory", type=int, default=128, help="MemorySize in MB (default %(default)s)")
    ap.add_argument("--max-in-flight", type=int, default=DEFAULT_MAX_IN_FLIGHT_CALLS, help="MaxInFlightCalls")
    ap.add_argument(
        "--transform-us-per-event",
        type=float,
        default=TRANSFORM_US_PER_EVENT,
        help="CPU per event on one vCPU, in microseconds (default %(default)s)",
    )
    ap.add_argument("--batch-size", type=int, help="plan for this BatchSize instead of choosing one")
    ap.add_argument("--window", type=int, help="MaximumBatchingWindowInSeconds with --batch-size")
    ap.add_argument(
        "--concurrency-budget",
        type=int,
        default=CONCURRENCY_BUDGET,
        help="executions the batch-size choice should stay within (default %(default)s)",
    )
    ap.add_argument("--utilization", type=float, default=TARGET_UTILIZATION, help="planned share of every limit")
    ap.add_argument(
        "--record-bytes", type=float, help="mean record data bytes, instead of measuring events/records.golden.jsonl"
    )
    ap.add_argument("--json", action="store_true", help="print the plan as JSON")
    ap.add_argument(
        "--records",
        action="store_true",
        help="print the records the function publishes for the sample events (events/records.golden.jsonl, one JSON document a line) and exit",
    )
    args = ap.parse_args(argv)
    if args.records:
        for message in golden_records():
            for data in message.get("records", []):
                sys.stdout.write(data + "\n")
        return 0
    if not (args.sensors and args.events and args.interval):
        ap.error(
            "--sensors N, --events E and --interval T are required (e.g. --sensors 100000 --events 8 --interval 60)"
        )
    if args.sensors < 1 or args.events < 1 or args.interval <= 0:
        ap.error("N and E must be at least 1, T positive")
    if args.batch_size is not None and not 1 <= args.batch_size <= SQS_MAX_BATCH:
        ap.error("--batch-size must be 1-10000")
    if not 0 < args.utilization <= 1:
        ap.error("--utilization must be in (0, 1]")
    inp = Inputs(
        args.sensors,
        args.events,
        args.interval,
        max_events=args.max_events,
        ordering=args.ordering,
        partition_key=args.partition_key,
        rtt_ms=args.rtt_ms,
        memory_mb=args.memory,
        max_in_flight=args.max_in_flight,
        transform_us_per_event=args.transform_us_per_event,
        batch_size=args.batch_size,
        window_s=args.window,
        concurrency_budget=args.concurrency_budget,
        utilization=args.utilization,
        record_data_bytes=args.record_bytes,
    )
    result = plan(inp, measure())
    if args.json:
        print(
            json.dumps(result, indent=1, default=lambda o: None if isinstance(o, float) and math.isinf(o) else str(o))
        )
    else:
        print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
