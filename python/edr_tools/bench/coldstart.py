"""Cold start, batch duration and memory of Lambda function processes, as Lambda sees them.

Starts each function process under edr_tools.bench.lambda_stub (a Runtime API and a
Kinesis PutRecords endpoint on loopback, dummy credentials) and measures:

- init: from just before the process is spawned to its first
  `GET /runtime/invocation/next` (the process has configured itself, built its
  AWS clients and is ready), over --init-runs fresh processes (median);
- idle RSS after init;
- batch duration: from the event leaving the stub to the response arriving:
  the first (cold) invocation of a 10-message batch, then warm repeats of it,
  then a ~6 MB batch (the Lambda payload limit), over --batch-runs processes;
- peak RSS: VmHWM of the process after the 10-message invocations and after
  the 6 MB one;
- for Rust binaries, the file size and the size once stripped.

Functions: `--rust LABEL=PATH` (repeatable; each run with ORDERING from
--orderings) and `--python VENV_PYTHON` (benches/python_reference/handler.py
under awslambdaric). Every function gets the same batches, the same endpoint
and the same Kinesis latency (--kinesis-latency-ms, repeatable). Results go to
--out as JSON; a summary is printed.

    PYTHONPATH=python python3 -m edr_tools.bench.coldstart --rust tuned=target/release/bootstrap \\
        --python .venv-aws/bin/python --out target/bench/coldstart.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from edr_tools import ROOT, samples
from edr_tools.bench.lambda_stub import KinesisStub, RuntimeApi

BENCHES = ROOT / "benches"
EMPTY_HOME = tempfile.mkdtemp(prefix="bench-home-")
PAYLOAD_LIMIT = 6 * 1024 * 1024  # Lambda's invocation payload limit (6 MB)


# --- batches (edr_tools.samples, as the sample events in events/) ------------


def submission(rng: random.Random, events: int, devices: list[str]) -> dict:
    body_events = samples.sensor_events(rng, events)
    return samples.submission(samples.random_uuid(rng), rng.choice(devices), samples.sample_time(rng), body_events)


def sqs_record(rng: random.Random, doc: dict) -> dict:
    message_id = samples.random_uuid(rng)
    receipt = "AQEB" + uuid.UUID(int=rng.getrandbits(128)).hex * 4
    return samples.sqs_message(
        message_id, receipt, samples.encode(doc), "arn:aws:sqs:us-east-1:123456789012:submissions"
    )


def batches(seed: int = 5) -> dict[str, tuple[bytes, int, int]]:
    """name -> (payload, messages, events): 10 sensor messages (6-10 events), and
    as many 8-event messages as fit in Lambda's 6 MB payload."""
    rng = random.Random(seed)
    devices = [samples.random_uuid(rng) for _ in range(4)]
    small = [submission(rng, rng.randint(6, 10), devices) for _ in range(10)]
    small_payload = json.dumps({"Records": [sqs_record(rng, d) for d in small]}).encode()
    records, size, events = [], len(b'{"Records": []}'), 0
    while True:
        rec = sqs_record(rng, submission(rng, 8, devices))
        grown = size + len(json.dumps(rec)) + 2
        if grown > PAYLOAD_LIMIT:
            break
        records.append(rec)
        size, events = grown, events + 8
    large_payload = json.dumps({"Records": records}).encode()
    assert len(large_payload) <= PAYLOAD_LIMIT, len(large_payload)
    return {
        "10 msgs": (small_payload, len(small), sum(samples.event_count(d) for d in small)),
        "6 MB": (large_payload, len(records), events),
    }


# --- processes --------------------------------------------------------------


def memory_kb(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0])
    return out


class Function:
    def __init__(self, label: str, kind: str, argv: list[str], cwd: Path, env: dict[str, str]):
        self.label, self.kind, self.argv, self.cwd, self.env = label, kind, argv, cwd, env


def process_env(api: RuntimeApi, kinesis: KinesisStub, extra: dict[str, str]) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": "edr-preprocessor-bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/edr-preprocessor-bench",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/22/[$LATEST]bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDBENCHMARKDUMMY00",
        "AWS_SECRET_ACCESS_KEY": "bench-dummy-secret",
        "AWS_SESSION_TOKEN": "bench-dummy-token",
        # An empty home: no ~/.aws config or credentials files, as on Lambda.
        "HOME": EMPTY_HOME,
        "AWS_EC2_METADATA_DISABLED": "true",
        "STREAM_NAME": "events",
        "PIPELINE_KEY": "bench-only-pipeline-key-0123456789abcdef",
    }
    env.update(kinesis.client_env())
    env.update(extra)
    return env


class Running:
    """One function process under the stub."""

    def __init__(self, fn: Function, api: RuntimeApi, kinesis: KinesisStub, log, timeout: float = 30):
        api.reset()
        self.api, self.kinesis = api, kinesis
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            fn.argv, cwd=fn.cwd, env=process_env(api, kinesis, fn.env), stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
        if not api.first_next.wait(timeout) or api.init_error is not None:
            self.stop()
            raise RuntimeError(f"{fn.label}: no /next within {timeout}s (init error: {api.init_error!r})")
        self.init_s = api.first_next_at - started
        # Let the /next request settle, then read memory after init.
        time.sleep(0.05)
        self.idle = memory_kb(self.proc.pid)

    def invoke(self, payload: bytes, messages: int, events: int) -> float:
        calls0, records0 = self.kinesis.counters()
        inv = self.api.invoke(payload)
        if inv.error is not None:
            raise RuntimeError(f"invocation failed: {inv.error[:500]!r}")
        answer = json.loads(inv.response)
        if answer.get("batchItemFailures"):
            raise RuntimeError(f"unexpected batchItemFailures: {len(answer['batchItemFailures'])}")
        calls, records = self.kinesis.counters()
        if records - records0 != events:
            raise RuntimeError(f"Kinesis got {records - records0} records, expected {events}")
        self.last_calls = calls - calls0
        return inv.duration

    def memory(self) -> dict[str, int]:
        return memory_kb(self.proc.pid)

    def stop(self) -> None:
        self.api.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def measure(fn: Function, api, kinesis, the_batches, init_runs: int, batch_runs: int, warm: int, log) -> dict:
    # One unmeasured start, so the binary and its libraries are in the page cache.
    Running(fn, api, kinesis, log).stop()
    inits, idle_rss = [], []
    for _ in range(init_runs):
        r = Running(fn, api, kinesis, log)
        inits.append(r.init_s * 1e3)
        idle_rss.append(r.idle["VmRSS"])
        r.stop()
    runs = []
    for _ in range(batch_runs):
        r = Running(fn, api, kinesis, log)
        try:
            small, msgs, events = the_batches["10 msgs"]
            first = r.invoke(small, msgs, events)
            small_calls = r.last_calls
            warm_durations = [r.invoke(small, msgs, events) for _ in range(warm)]
            hwm_small = r.memory()["VmHWM"]
            large, lmsgs, levents = the_batches["6 MB"]
            large_first = r.invoke(large, lmsgs, levents)
            large_calls = r.last_calls
            hwm_large = r.memory()["VmHWM"]
            runs.append(
                {
                    "small_first_ms": first * 1e3,
                    "small_warm_ms": statistics.median(warm_durations) * 1e3 if warm_durations else None,
                    "small_calls": small_calls,
                    "hwm_small_kb": hwm_small,
                    "large_ms": large_first * 1e3,
                    "large_calls": large_calls,
                    "hwm_large_kb": hwm_large,
                }
            )
        finally:
            r.stop()
    med = lambda key: statistics.median(run[key] for run in runs) if runs else None  # noqa: E731
    return {
        "init_ms": inits,
        "init_ms_median": statistics.median(inits),
        "init_ms_min": min(inits),
        "init_ms_max": max(inits),
        "idle_rss_kb_median": statistics.median(idle_rss),
        "runs": runs,
        "small_first_ms": med("small_first_ms"),
        "small_warm_ms": med("small_warm_ms"),
        "small_calls": med("small_calls"),
        "large_ms": med("large_ms"),
        "large_calls": med("large_calls"),
        "hwm_small_kb": med("hwm_small_kb"),
        "hwm_large_kb": med("hwm_large_kb"),
    }


def stripped_size(path: Path) -> int | None:
    strip = shutil.which("strip")
    if not strip:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bootstrap"
        subprocess.run([strip, "-o", str(out), str(path)], check=True)
        return out.stat().st_size


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": round(os.getloadavg()[0], 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rust", action="append", default=[], metavar="LABEL=PATH")
    ap.add_argument("--orderings", default="strict,relaxed")
    ap.add_argument("--python", metavar="VENV_PYTHON")
    ap.add_argument("--init-runs", type=int, default=20)
    ap.add_argument("--python-init-runs", type=int, default=5)
    ap.add_argument("--batch-runs", type=int, default=3)
    ap.add_argument("--warm", type=int, default=5, help="warm repeats of the 10-message batch")
    ap.add_argument("--kinesis-latency-ms", type=float, action="append", default=None)
    ap.add_argument(
        "--tls", action=argparse.BooleanOptionalAction, default=True, help="Kinesis over HTTPS, as in AWS (default)"
    )
    ap.add_argument("--out", default="target/bench/coldstart.json")
    ap.add_argument("--log", default="target/bench/coldstart.log")
    args = ap.parse_args()
    latencies = args.kinesis_latency_ms or [0.0]

    the_batches = batches()
    functions = []
    binaries = {}
    for spec in args.rust:
        label, _, path = spec.partition("=")
        path = Path(path).resolve()
        binaries[label] = {"path": str(path), "bytes": path.stat().st_size, "stripped_bytes": stripped_size(path)}
        for ordering in args.orderings.split(","):
            functions.append(
                (
                    Function(f"rust {label} {ordering}", "rust", [str(path)], BENCHES, {"ORDERING": ordering}),
                    args.init_runs,
                )
            )
    if args.python:
        functions.append(
            (
                Function(
                    "python boto3",
                    "python",
                    [os.path.abspath(args.python), "-m", "awslambdaric", "handler.handler"],
                    BENCHES / "python_reference",
                    {"LAMBDA_TASK_ROOT": str(BENCHES / "python_reference"), "_HANDLER": "handler.handler"},
                ),
                args.python_init_runs,
            )
        )

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    machine_at_start = machine()
    api = RuntimeApi()
    results = []
    with open(args.log, "wb") as log:
        for latency in latencies:
            kinesis = KinesisStub(latency / 1e3, tls=args.tls)
            for fn, init_runs in functions:
                print(f"  {fn.label}, Kinesis latency {latency:g} ms ...", file=sys.stderr, flush=True)
                result = measure(fn, api, kinesis, the_batches, init_runs, args.batch_runs, args.warm, log)
                result.update(label=fn.label, kind=fn.kind, kinesis_latency_ms=latency)
                results.append(result)
                print(
                    f"    init {result['init_ms_median']:.1f} ms, 10 msgs {result['small_first_ms']:.1f} ms "
                    f"(warm {result['small_warm_ms']:.1f}), 6 MB {result['large_ms']:.0f} ms, "
                    f"RSS {result['hwm_small_kb'] / 1024:.1f} / {result['hwm_large_kb'] / 1024:.1f} MB",
                    file=sys.stderr,
                    flush=True,
                )
            if kinesis.other_requests:
                print(f"  unexpected requests to the Kinesis stub: {kinesis.other_requests[:3]}", file=sys.stderr)
            kinesis.shutdown()
    api.shutdown()
    doc = {
        "machine": {**machine_at_start, "load_average_at_end": round(os.getloadavg()[0], 2)},
        "batches": {name: {"bytes": len(p), "messages": m, "events": e} for name, (p, m, e) in the_batches.items()},
        "binaries": binaries,
        "kinesis_tls": args.tls,
        "functions": results,
    }
    Path(args.out).write_text(json.dumps(doc, indent=1))
    print(f"results -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
