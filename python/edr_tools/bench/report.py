"""Prints the one table of `make bench` from the results the benchmarks wrote.

Reads, from --dir (default target/bench):
  criterion/transform_*/*/new/estimates.json   criterion's timings (benches/transform.rs)
  transform.json                                allocation counts (benches/transform.rs)
  publisher.json                                simulated Kinesis (benches/publisher.rs)
  coldstart.json                                Runtime API stub (edr_tools.bench.coldstart)
and prints a Markdown table (also written to --dir/report.md). A part whose
results are missing is left out with a note. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

GOAL_NS_PER_EVENT = 1_000
GOAL_CALLS = "≤ ceil(records/500) + max events per submission"
GOAL_WALL_RATIO = 1.2
GOAL_LIMIT_SHARE = 0.90
GOAL_INIT_MS = 25
GOAL_RSS_SMALL_MB = 24
GOAL_RSS_LARGE_MB = 64


def load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _round(value) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "?"


def ok(flag: bool | None) -> str:
    return "—" if flag is None else ("yes" if flag else "**no**")


def fmt_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def fmt_s(s: float) -> str:
    return f"{s * 1e3:.0f} ms" if s < 10 else f"{s:.1f} s"


def transform_rows(d: Path) -> list[tuple]:
    allocs = load(d / "transform.json")
    if not allocs:
        return [("transform", "—", "no results (cargo bench --bench transform)", "", "", "")]
    rows = []
    names = {"sensor": "100 sensor submissions, 6-10 events", "large": "1 submission of 1,000 events"}
    for name, info in allocs["allocations"].items():
        events, subs = info["events"], info["submissions"]
        est = {}
        for stage in ("whole", "decode_base64", "parse_validate", "encode"):
            e = load(d / "criterion" / f"transform_{name}" / stage / "new" / "estimates.json")
            if e:
                est[stage] = e["median"]["point_estimate"]
        whole = est.get("whole")
        a = info["stages"]["whole"]
        case = f"{names.get(name, name)} ({events} events)"
        if whole is not None:
            per_event = whole / events
            stages = " + ".join(
                f"{label} {fmt_ns(est[s] / events)}"
                for s, label in (
                    ("decode_base64", "base64"),
                    ("parse_validate", "parse+validate"),
                    ("encode", "encode"),
                )
                if s in est
            )
            rows.append(
                (
                    "transform",
                    case,
                    "time per event (median)",
                    f"{fmt_ns(per_event)} ({stages})",
                    "≤ 1 µs",
                    ok(per_event <= GOAL_NS_PER_EVENT),
                )
            )
            rows.append(("transform", case, "time per submission", fmt_ns(whole / subs), "", ""))
        rows.append(
            (
                "transform",
                case,
                "allocations per event",
                f"{a['allocations_per_event']:.2f} ({a['bytes_per_event']:.0f} B/event)",
                "allocation-light",
                "",
            )
        )
    return rows


def publisher_rows(d: Path) -> list[tuple]:
    doc = load(d / "publisher.json")
    if not doc:
        return [("publisher", "—", "no results (cargo bench --bench publisher)", "", "", "")]
    rows = []
    for s in doc["scenarios"]:
        case = s["name"].replace("x", " × ", 1).replace(",", ", ")
        calls_ok = s["calls"] <= s["calls_bound"]
        if s["shards"] is None:
            ratio = s["wall_over_bound"]
            result = (
                f"{s['calls']} calls (bound {s['calls_bound']}); {fmt_s(s['wall_s'])} "
                f"= {ratio:.2f} × {fmt_s(s['lower_bound_s'])}"
            )
            goal = f"calls ≤ bound; ≤ {GOAL_WALL_RATIO} × time bound"
            met = calls_ok and ratio <= GOAL_WALL_RATIO
        else:
            share = s["shard_limit_share"]
            published = s["published_submissions"] / s["submissions"]
            result = (
                f"{share * 100:.0f}% of {s['shards']} × 1,000 rec/s; "
                f"{published * 100:.0f}% of submissions published; {fmt_s(s['wall_s'])} "
                f"(bound {fmt_s(s['lower_bound_s'])}); {s['calls']} calls"
                + (f", {s['duplicates_written']} duplicates" if s["duplicates_written"] else "")
            )
            # Throttled records must be sent again: the calls bound is for the
            # unthrottled rows; here the goal is the shards' throughput, with
            # every submission published.
            goal = f"≥ {GOAL_LIMIT_SHARE * 100:.0f}% of limit, all published"
            met = share >= GOAL_LIMIT_SHARE and published == 1
        if s["name"].startswith("format "):
            result += (
                f"; {s['kinesis_records']} Kinesis records, {s['put_payload_units']} PUT units, "
                f"{s['on_demand_billed_kib']} KiB billed on demand"
            )
        result += f"; CPU {s['publisher_cpu_us_per_record']:.2f} µs/record"
        measure = "calls; time vs bound" if s["shards"] is None else "throughput; published; time"
        rows.append(("publisher", case, measure, result, goal, ok(met)))
    return rows


def coldstart_rows(d: Path) -> list[tuple]:
    doc = load(d / "coldstart.json")
    if not doc:
        return [("cold start", "—", "no results (edr_tools.bench.coldstart)", "", "", "")]
    rows = []
    batches = doc["batches"]
    small, large = batches["10 msgs"], batches["6 MB"]
    for label, b in doc["binaries"].items():
        rows.append(
            (
                "cold start",
                f"rust {label}",
                "binary size (stripped)",
                f"{b['stripped_bytes'] / 1e6:.1f} MB (file {b['bytes'] / 1e6:.1f} MB)",
                "",
                "",
            )
        )
    fns = doc["functions"]
    for f in fns:
        lat = f" (Kinesis +{f['kinesis_latency_ms']:g} ms)" if f["kinesis_latency_ms"] else ""
        case = f"{f['label']}{lat}"
        rust = f["kind"] == "rust"
        rows.append(
            (
                "cold start",
                case,
                "init: spawn → first /next, median (min–max)",
                f"{f['init_ms_median']:.1f} ms ({f['init_ms_min']:.1f}–{f['init_ms_max']:.1f})",
                f"≤ {GOAL_INIT_MS} ms" if rust else "",
                ok(f["init_ms_median"] <= GOAL_INIT_MS) if rust else "",
            )
        )
        rows.append(
            (
                "cold start",
                case,
                f"{small['messages']} msgs / {small['events']} events: first; warm invocation",
                f"{f['small_first_ms']:.1f} ms; {f['small_warm_ms']:.1f} ms ({f['small_calls']:.0f} calls)",
                "",
                "",
            )
        )
        rows.append(
            (
                "cold start",
                case,
                f"6 MB batch ({large['messages']} msgs / {large['events']} events)",
                f"{f['large_ms']:.0f} ms ({f['large_calls']:.0f} calls)",
                "",
                "",
            )
        )
        rows.append(
            (
                "cold start",
                case,
                "peak RSS (VmHWM) after 10 msgs / after 6 MB",
                f"{f['hwm_small_kb'] / 1024:.1f} MB / {f['hwm_large_kb'] / 1024:.1f} MB",
                f"≤ {GOAL_RSS_SMALL_MB} / ≤ {GOAL_RSS_LARGE_MB} MB" if rust else "",
                ok(f["hwm_small_kb"] / 1024 <= GOAL_RSS_SMALL_MB and f["hwm_large_kb"] / 1024 <= GOAL_RSS_LARGE_MB)
                if rust
                else "",
            )
        )
    # Python vs Rust, from the same run.
    by_latency: dict[float, dict[str, dict]] = {}
    for f in fns:
        by_latency.setdefault(f["kinesis_latency_ms"], {})[f["label"]] = f
    for latency, group in by_latency.items():
        py = group.get("python boto3")
        if not py:
            continue
        for label, f in group.items():
            if f["kind"] != "rust":
                continue
            lat = f" (Kinesis +{latency:g} ms)" if latency else ""
            ratios = (
                f"init ×{py['init_ms_median'] / f['init_ms_median']:.0f}, "
                f"10 msgs first ×{py['small_first_ms'] / f['small_first_ms']:.1f} "
                f"warm ×{py['small_warm_ms'] / f['small_warm_ms']:.1f}, "
                f"6 MB ×{py['large_ms'] / f['large_ms']:.1f}, "
                f"RSS ×{py['hwm_small_kb'] / f['hwm_small_kb']:.1f} / "
                f"×{py['hwm_large_kb'] / f['hwm_large_kb']:.1f}"
            )
            rows.append(
                (
                    "vs Python",
                    f"python boto3 ÷ {label}{lat}",
                    "Python's figure ÷ Rust's (> 1: Rust better)",
                    ratios,
                    "",
                    "",
                )
            )
    return rows


def profiles_table(d: Path) -> str:
    """`make bench-profiles`: one row per release-profile variant."""
    doc = load(d / "profiles.json")
    if not doc:
        return "no results: run `make bench-profiles`\n"
    lines = [
        "| variant | stripped size | init (median) | 10 msgs: first / warm | 6 MB batch | peak RSS 10 msgs / 6 MB |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in doc["functions"]:
        label = f["label"].split()[1]
        b = doc["binaries"][label]
        lines.append(
            f"| {label} | {b['stripped_bytes'] / 1e6:.1f} MB | {f['init_ms_median']:.1f} ms | "
            f"{f['small_first_ms']:.1f} / {f['small_warm_ms']:.1f} ms | {f['large_ms']:.0f} ms | "
            f"{f['hwm_small_kb'] / 1024:.1f} / {f['hwm_large_kb'] / 1024:.1f} MB |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="target/bench")
    ap.add_argument("--profiles", action="store_true", help="the table of `make bench-profiles` instead")
    args = ap.parse_args()
    d = Path(args.dir)
    if args.profiles:
        text = profiles_table(d)
        sys.stdout.write(text)
        (d / "profiles.md").write_text(text)
        return 0
    rows = transform_rows(d) + publisher_rows(d) + coldstart_rows(d)
    lines = []
    cs = load(d / "coldstart.json")
    tr = load(d / "transform.json")
    if cs:
        m = cs["machine"]
        load_tr = next(iter((tr or {}).get("allocations", {}).values()), {}).get("load_average")
        lines.append(
            f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Linux {m['kernel']}, "
            f"Python {m['python']}. Kinesis stub over {'HTTPS' if cs.get('kinesis_tls') else 'HTTP'}. "
            f"1-minute load average (2 = both cores busy): transform "
            f"{'→'.join(load_tr) if load_tr else '?'}, cold start "
            f"{_round(m.get('load_average_at_start'))}→{_round(m.get('load_average_at_end'))}."
        )
        lines.append("")
    lines.append("| part | case | measure | result | goal | met |")
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    (d / "report.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
