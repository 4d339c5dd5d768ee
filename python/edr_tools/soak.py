"""`make soak`: the function under a steady load for a bounded time, on the loopback.

1. start MiniStack on a free 127.0.0.1 port (its own process group, its own TMPDIR)
   and the tests' Kinesis fault proxy (edr_tools.fault_proxy) in front of its
   Kinesis, failing a random share of the entries of every PutRecords call, half
   with ProvisionedThroughputExceededException, half with InternalFailure;
2. deploy with scripts/deploy-local.sh: queue + DLQ + rejects queue, a 2-shard
   stream, the function (the real bootstrap, pointed at the proxy with
   AWS_ENDPOINT_URL_KINESIS) and the SQS event source mapping;
3. for --seconds, a sensor fleet keeps the queue busy (tops it up whenever
   fewer than --backlog messages wait), some submissions broken; meanwhile the
   resident memory (VmRSS, VmHWM from /proc/<pid>/status) of every `bootstrap`
   process MiniStack runs is sampled together with the number of invocations
   so far (counted from MiniStack's log);
4. stops sending, waits until the queue is drained (the faults stay on), and
   checks: every valid submission is on the stream complete with its first
   copies in `sequence` order, nothing of an invalid one is, the queue and the
   dead-letter queue are empty, every invalid body is in the rejects queue
   once, no batch failed as a whole (timeout, crash), and no bootstrap
   process's RSS grew between the first and the last thousand invocations;
5. prints the numbers, writes them to .cache/soak/report.json, and stops
   everything it started (also on Ctrl-C or a failure).

MiniStack runs each concurrent batch in its own warm `bootstrap` process (up
to the mapping's MaximumConcurrency) and may recycle them (after a timeout or
crash, or when idle for 5 minutes); the memory check therefore compares each
process that lived through both windows with itself, and reports the others.

Exit status: 0 if every check passed, 1 if one failed, 2 on a usage error.
Run from the Makefile (`make soak`, which builds the zip and the virtual
environments first), or:
  PYTHONPATH=python .venv-aws/bin/python -m edr_tools.soak --zip target/lambda/bootstrap/bootstrap.zip --seconds 180
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC
from pathlib import Path

from edr_tools import ROOT
from edr_tools import emulator as local_emulator
from edr_tools import fleet as sensor_fleet
from edr_tools.fault_proxy import KinesisFaultProxy

NAME = "soak"
WINDOW = 1000  # invocations: "the first and the last thousand"


def say(text: str) -> None:
    print(text, flush=True)


class RandomEntryFailures:
    """Fails each entry of a PutRecords call with probability `rate`, half of
    them throttled (ProvisionedThroughputExceededException: retried until the
    deadline, not counted against MAX_ATTEMPTS), half InternalFailure (counted)."""

    CODES = ("ProvisionedThroughputExceededException", "InternalFailure")

    def __init__(self, rate: float, seed: int):
        self.rate, self.rng = rate, random.Random(seed)

    def __call__(self, _index: int, _record: dict) -> str | None:
        return self.rng.choice(self.CODES) if self.rng.random() < self.rate else None


class Fleet:
    """A fixed fleet of devices sending submissions; a share of them broken."""

    def __init__(self, seed: int, devices: int, broken_share: float):
        self.rng = random.Random(seed)
        self.devices = sensor_fleet.make_fleet(self.rng, devices)
        self.broken_share = broken_share
        self.sent: list[dict] = []

    def next(self, n: int) -> list[dict]:
        out = []
        for _ in range(n):
            device = self.rng.choice(self.devices)
            kind = self.rng.choice(sensor_fleet.BROKEN_ORDER) if self.rng.random() < self.broken_share else None
            sub = sensor_fleet.make_submission(self.rng, device, _now(), broken=kind)
            out.append({"submission": sub, "body": sensor_fleet.encode(sub), "broken": kind, "device": device.name})
        return out


def _now():
    from datetime import datetime

    return datetime.now(UTC)


class Watcher(threading.Thread):
    """Follows MiniStack's log (invocations of the function) and samples the
    memory of every bootstrap process it runs."""

    def __init__(self, ministack_pid: int, log_path: Path, function: str, interval: float = 0.5):
        super().__init__(daemon=True, name="soak-watcher")
        self.ministack_pid, self.log_path, self.function = ministack_pid, log_path, function
        self.interval = interval
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.invocations = 0  # batches the mapping ran (answered or not)
        self.messages_acked = 0
        self.messages_failed = 0  # reported in batchItemFailures
        self.batch_errors = 0  # the invocation failed as a whole (timeout, crash)
        self.error_lines: list[str] = []
        # pid -> [(time, invocations so far, VmRSS kB, VmHWM kB)]
        self.samples: dict[int, list[tuple[float, int, int, int]]] = {}
        self.ministack_rss: list[tuple[float, int]] = []
        self._offset = 0
        self._partial = b""

    def run(self) -> None:
        while not self.stopping.is_set():
            self.poll()
            self.stopping.wait(self.interval)
        self.poll()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)

    def poll(self) -> None:
        self._read_log()
        now = time.monotonic()
        with self.lock:
            count = self.invocations
        for pid in bootstrap_pids(self.ministack_pid):
            mem = read_status(pid)
            if mem:
                with self.lock:
                    self.samples.setdefault(pid, []).append((now, count, mem["VmRSS"], mem["VmHWM"]))
        mem = read_status(self.ministack_pid)
        if mem:
            self.ministack_rss.append((now, mem["VmRSS"]))

    def _read_log(self) -> None:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        marker = f"ESM: Lambda {self.function} "
        with self.lock:
            for raw in lines:
                line = raw.decode("utf-8", "replace")
                if marker not in line:
                    continue
                if "failed processing SQS batch" in line:
                    self.invocations += 1
                    self.batch_errors += 1
                    self.error_lines.append(line[:300])
                elif " processed " in line and " SQS messages" in line:
                    self.invocations += 1
                    words = line.split()
                    self.messages_acked += int(words[words.index("processed") + 1])
                    if "partial failures" in line:
                        self.messages_failed += int(line.rsplit("(", 1)[1].split()[0])

    def snapshot(self) -> dict:
        with self.lock:
            latest = {pid: s[-1] for pid, s in self.samples.items() if s}
            return {
                "invocations": self.invocations,
                "acked": self.messages_acked,
                "failed": self.messages_failed,
                "errors": self.batch_errors,
                "rss_kb": {pid: s[2] for pid, s in latest.items()},
            }


def bootstrap_pids(parent: int) -> list[int]:
    """The `bootstrap` processes that are children of MiniStack."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2 :].split()
        if comm == "bootstrap" and len(fields) > 1 and int(fields[1]) == parent:
            out.append(int(entry))
    return sorted(out)


def read_status(pid: int) -> dict[str, int] | None:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0])
    except (OSError, ValueError):
        return None
    return out if len(out) == 2 else None


def memory_verdict(samples: dict[int, list], total: int, tolerance_kb: int, tolerance_share: float) -> dict:
    """Compares, for every bootstrap process alive in both windows, its largest
    RSS during the first WINDOW invocations with its largest RSS during the last
    WINDOW invocations."""
    window = min(WINDOW, total // 2)
    first_end, last_start = window, total - window
    processes, ok = [], True
    for pid, s in sorted(samples.items()):
        first = [rss for _, n, rss, _ in s if n <= first_end]
        last = [rss for _, n, rss, _ in s if n >= last_start]
        entry = {
            "pid": pid,
            "samples": len(s),
            "seen_from_invocation": s[0][1],
            "seen_until_invocation": s[-1][1],
            "rss_kb_first_seen": s[0][2],
            "rss_kb_last_seen": s[-1][2],
            "hwm_kb_last_seen": s[-1][3],
            # the trend: RSS when a tenth, a fifth, ... of the invocations had run
            "rss_kb_by_decile": [
                next((rss for _, n, rss, _ in reversed(s) if n <= total * d / 10), None) for d in range(1, 11)
            ],
        }
        if first and last:
            a, b = max(first), max(last)
            allowed = max(tolerance_kb, int(a * tolerance_share))
            entry.update(
                first_window_max_rss_kb=a,
                last_window_max_rss_kb=b,
                first_window_median_rss_kb=int(statistics.median(first)),
                last_window_median_rss_kb=int(statistics.median(last)),
                growth_kb=b - a,
                allowed_growth_kb=allowed,
                grew=b - a > allowed,
            )
            ok = ok and b - a <= allowed
        else:
            entry["compared"] = False  # not alive in both windows (spawned late or recycled)
        processes.append(entry)
    compared = [p for p in processes if "growth_kb" in p]
    return {
        "window_invocations": window,
        "first_window": [1, first_end],
        "last_window": [last_start + 1, total],
        "processes": processes,
        "compared": len(compared),
        "ok": ok and bool(compared) and window >= 1,
    }


def main(argv: list[str] | None = None) -> int:
    env_int = lambda k, d: int(os.environ.get(k) or d)  # noqa: E731
    env_float = lambda k, d: float(os.environ.get(k) or d)  # noqa: E731
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zip", default=str(ROOT / "target/lambda/bootstrap/bootstrap.zip"))
    p.add_argument(
        "--seconds",
        type=float,
        default=env_float("SOAK_SECONDS", 180),
        help="how long the fleet keeps sending (SOAK_SECONDS)",
    )
    p.add_argument(
        "--failure-rate",
        type=float,
        default=env_float("SOAK_FAILURE_RATE", 0.05),
        help="share of PutRecords entries the proxy fails (SOAK_FAILURE_RATE)",
    )
    p.add_argument(
        "--broken-share",
        type=float,
        default=env_float("SOAK_BROKEN_SHARE", 0.1),
        help="share of submissions that are invalid (SOAK_BROKEN_SHARE)",
    )
    p.add_argument(
        "--backlog",
        type=int,
        default=env_int("SOAK_BACKLOG", 100),
        help="the fleet tops the queue up to this many messages (SOAK_BACKLOG)",
    )
    p.add_argument("--devices", type=int, default=env_int("SOAK_DEVICES", 50))
    p.add_argument("--batch-size", type=int, default=env_int("SOAK_BATCH_SIZE", 10))
    p.add_argument(
        "--concurrency",
        type=int,
        default=env_int("SOAK_CONCURRENCY", 5),
        help="the mapping's MaximumConcurrency: bootstrap processes at once (SOAK_CONCURRENCY)",
    )
    p.add_argument(
        "--max-attempts",
        type=int,
        default=env_int("SOAK_MAX_ATTEMPTS", 2),
        help="the function's MAX_ATTEMPTS: low, so that some failures reach SQS (SOAK_MAX_ATTEMPTS)",
    )
    p.add_argument("--function-timeout", type=int, default=env_int("SOAK_FUNCTION_TIMEOUT", 5))
    p.add_argument("--visibility-timeout", type=int, default=env_int("SOAK_VISIBILITY_TIMEOUT", 6))
    p.add_argument("--drain-timeout", type=float, default=180)
    p.add_argument(
        "--memory-tolerance-kb",
        type=int,
        default=env_int("SOAK_MEMORY_TOLERANCE_KB", 1024),
        help="RSS growth still counted as none: the larger of this and --memory-tolerance-share",
    )
    p.add_argument("--memory-tolerance-share", type=float, default=env_float("SOAK_MEMORY_TOLERANCE_SHARE", 0.05))
    p.add_argument("--seed", type=int, default=env_int("FLEET_SEED", 20210329))
    p.add_argument("--report", default=str(ROOT / ".cache" / "soak" / "report.json"))
    args = p.parse_args(argv)

    if not Path(args.zip).is_file():
        print(f"soak: no deployment package at {args.zip} (make soak builds it)", file=sys.stderr)
        return 2
    if args.function_timeout > args.visibility_timeout:
        print("soak: the function timeout must not exceed the visibility timeout", file=sys.stderr)
        return 2

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    cache = ROOT / ".cache" / "soak"
    cache.mkdir(parents=True, exist_ok=True)
    log = cache / "ministack.log"
    region = local_emulator.local_region()
    emulator = local_emulator.MiniStack(log_path=log, region=region)
    proxy = KinesisFaultProxy(emulator.endpoint, keep_calls=False)
    watcher: Watcher | None = None
    started = time.monotonic()
    try:
        say(f"== Starting MiniStack on {emulator.endpoint} and the Kinesis fault proxy")
        emulator.start()
        proxy.start()
        say(f"proxy {proxy.endpoint} fails {args.failure_rate:.0%} of PutRecords entries at random")

        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            {
                "AWS_ENDPOINT_URL": emulator.endpoint,
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_DEFAULT_REGION": region,
                "AWS_REGION": region,
                "LOCAL_REGION": region,
                "AWS_CLI": str(Path(sys.executable).parent / "aws"),
                "ZIP": args.zip,
                "FUNCTION_NAME": f"{NAME}-fn",
                "QUEUE_NAME": f"{NAME}-submissions",
                "STREAM_NAME": f"{NAME}-events",
                "REJECTS_QUEUE_NAME": f"{NAME}-rejects",
                "DLQ_NAME": f"{NAME}-dlq",
                "MAX_RECEIVE_COUNT": "100",
                "BATCH_SIZE": str(args.batch_size),
                "VISIBILITY_TIMEOUT": str(args.visibility_timeout),
                "FUNCTION_TIMEOUT": str(args.function_timeout),
                "ARCHITECTURE": "arm64" if os.uname().machine in ("aarch64", "arm64") else "x86_64",
                "FUNCTION_ENV": ",".join(
                    f"{k}={v}"
                    for k, v in {
                        "AWS_ENDPOINT_URL_KINESIS": proxy.endpoint,
                        "MAX_ATTEMPTS": args.max_attempts,
                        "RETRY_BASE_DELAY_MS": 20,
                        "RETRY_MAX_DELAY_MS": 200,
                        "KINESIS_CALL_TIMEOUT_MS": 2000,
                        "KINESIS_CONNECT_TIMEOUT_MS": 500,
                        # Copies come back at once, as before the copy delay:
                        # with the faults on while it drains, delays doubling
                        # up to 15 minutes would outlast --drain-timeout.
                        "RESUME_BASE_DELAY_SECONDS": 0,
                    }.items()
                ),
            }
        )
        for key in (
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
            "AWS_REGION",
        ):
            os.environ[key] = env[key]
        say("== Deploying with scripts/deploy-local.sh")
        out = subprocess.run(
            [str(ROOT / "scripts" / "deploy-local.sh")], env=env, check=True, stdout=subprocess.PIPE, text=True
        ).stdout
        deployed = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        lam, sqs = sensor_fleet.client("lambda"), sensor_fleet.client("sqs")
        lam.update_event_source_mapping(
            UUID=deployed["EVENT_SOURCE_MAPPING"], ScalingConfig={"MaximumConcurrency": args.concurrency}
        )
        queue_url = deployed["QUEUE_URL"]
        say(
            f"function {deployed['FUNCTION_NAME']} (timeout {args.function_timeout}s, MAX_ATTEMPTS "
            f"{args.max_attempts}), batch size {args.batch_size}, concurrency {args.concurrency}, "
            f"visibility timeout {args.visibility_timeout}s"
        )

        proxy.entry_failures(10**12, RandomEntryFailures(args.failure_rate, args.seed))
        watcher = Watcher(emulator.proc.pid, log, deployed["FUNCTION_NAME"])
        watcher.start()

        say(
            f"== Sensor fleet: {args.devices} devices keep {args.backlog}+ messages waiting for "
            f"{args.seconds:.0f}s ({args.broken_share:.0%} broken)"
        )
        fleet = Fleet(args.seed, args.devices, args.broken_share)
        began = time.monotonic()
        next_report = began + 15
        while (now := time.monotonic()) < began + args.seconds:
            if sensor_fleet.queue_depth(sqs, queue_url) < args.backlog:
                entries = fleet.next(50)
                sensor_fleet.send(sqs, queue_url, entries)
                fleet.sent.extend(entries)
            else:
                time.sleep(0.2)
            if now >= next_report:
                next_report += 15
                snap = watcher.snapshot()
                rss = ", ".join(f"{pid}:{kb / 1024:.1f}" for pid, kb in sorted(snap["rss_kb"].items()))
                say(
                    f"  {now - began:5.0f}s  sent {len(fleet.sent):6d}  invocations {snap['invocations']:5d}  "
                    f"reported failed {snap['failed']:4d}  batch errors {snap['errors']}  "
                    f"depth {sensor_fleet.queue_depth(sqs, queue_url):4d}  bootstrap RSS MiB [{rss}]"
                )
        sending = time.monotonic() - began

        say("== Fleet stopped; waiting for the queue to drain (faults still on)")
        drained_in = sensor_fleet.wait_drained(sqs, queue_url, args.drain_timeout, quiet_polls=4)
        watcher.stop()
        say(f"drained {drained_in:.1f}s after the last send")

        say("== Checking the stream, the queues and the memory")
        records = sensor_fleet.read_stream(sensor_fleet.client("kinesis"), deployed["STREAM_NAME"])
        by_sid = sensor_fleet.group_by_submission(records)
        valid = [e for e in fleet.sent if not e["broken"]]
        broken = [e for e in fleet.sent if e["broken"]]
        problems: list[str] = []
        for e in valid:
            problems += sensor_fleet.check_submission(e["submission"], by_sid.get(e["submission"]["submission_id"]))
            pub = by_sid.get(e["submission"]["submission_id"])
            if pub and pub.partition_keys != {e["submission"]["submission_id"]}:
                problems.append(f"{e['submission']['submission_id']}: partition keys {sorted(pub.partition_keys)}")
        valid_ids = {e["submission"]["submission_id"] for e in valid}
        stray = [sid for sid in by_sid if sid not in valid_ids]
        problems += [f"published a submission that was not sent valid: {sid}" for sid in stray]
        unparsed = sum(1 for r in records if not isinstance(r["data"], dict))
        if unparsed:
            problems.append(f"{unparsed} records on the stream are not JSON objects")
        depth = sensor_fleet.queue_depth(sqs, queue_url)
        dlq = sensor_fleet.queue_depth(sqs, deployed["DLQ_URL"])
        if depth:
            problems.append(f"{depth} message(s) still in the queue")
        if dlq:
            problems.append(f"{dlq} message(s) in the dead-letter queue")
        rejected = Counter(m["Body"] for m in sensor_fleet.drain_queue(sqs, deployed["REJECTS_QUEUE_URL"]))
        if rejected != Counter(e["body"] for e in broken):
            missing = sum((Counter(e["body"] for e in broken) - rejected).values())
            extra = sum((rejected - Counter(e["body"] for e in broken)).values())
            problems.append(f"rejects queue: {missing} invalid bodies missing, {extra} unexpected or repeated")
        snap = watcher.snapshot()
        if snap["errors"]:
            problems.append(f"{snap['errors']} batch(es) failed as a whole: {watcher.error_lines[:3]}")
        memory = memory_verdict(
            watcher.samples, snap["invocations"], args.memory_tolerance_kb, args.memory_tolerance_share
        )
        if not memory["ok"]:
            problems.append(
                "bootstrap memory grew between the first and the last invocations (or could not be compared)"
            )

        first_copies = sum(len(p.first_copies()) for p in by_sid.values())
        report = {
            "seconds_sending": round(sending, 1),
            "seconds_draining": round(drained_in, 1),
            "settings": {k: v for k, v in vars(args).items() if k not in ("zip", "report")},
            "submissions_sent": len(fleet.sent),
            "valid": len(valid),
            "invalid": len(broken),
            "events_expected": sum(len(sensor_fleet.expected_events(e["submission"])) for e in valid),
            "records_on_stream": len(records),
            "first_copies": first_copies,
            "duplicate_copies": len(records) - first_copies,
            "invocations": snap["invocations"],
            "messages_acked": snap["acked"],
            "messages_reported_failed": snap["failed"],
            "batch_errors": snap["errors"],
            "proxy": dict(proxy.totals),
            "queue_depth": depth,
            "dlq_depth": dlq,
            "rejects_received": sum(rejected.values()),
            "bootstrap_processes": len(watcher.samples),
            "ministack_rss_kb": [watcher.ministack_rss[0][1], watcher.ministack_rss[-1][1]]
            if watcher.ministack_rss
            else None,
            "memory": memory,
            "problems": problems[:50],
            "problem_count": len(problems),
        }
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=1))

        say(
            f"sent {len(fleet.sent)} submissions in {sending:.0f}s ({len(broken)} invalid) from "
            f"{args.devices} devices; {snap['invocations']} invocations "
            f"({snap['invocations'] / max(sending + drained_in, 1):.1f}/s), "
            f"{snap['failed']} messages reported in batchItemFailures and redelivered, "
            f"{snap['errors']} batch errors"
        )
        say(
            f"proxy: {proxy.totals['put_records']} PutRecords calls, {proxy.totals['records']} entries, "
            f"{proxy.totals['failed_entries']} failed on purpose"
        )
        say(
            f"stream: {len(records)} records, {first_copies} first copies for {report['events_expected']} "
            f"expected events, {len(records) - first_copies} duplicates; queue {depth}, DLQ {dlq}, "
            f"rejects {sum(rejected.values())}/{len(broken)}"
        )
        say(
            f"memory (first {memory['window_invocations']} vs last {memory['window_invocations']} invocations, "
            f"kB of VmRSS, per bootstrap process):"
        )
        for proc in memory["processes"]:
            if "growth_kb" in proc:
                say(
                    f"  pid {proc['pid']}: max {proc['first_window_max_rss_kb']} -> {proc['last_window_max_rss_kb']} "
                    f"(median {proc['first_window_median_rss_kb']} -> {proc['last_window_median_rss_kb']}), "
                    f"growth {proc['growth_kb']:+d} (allowed {proc['allowed_growth_kb']}), "
                    f"VmHWM {proc['hwm_kb_last_seen']}"
                )
                deciles = [kb for kb in proc["rss_kb_by_decile"] if kb is not None]
                if deciles:
                    say(
                        "    RSS after each tenth of the invocations, against the first: "
                        + " ".join(f"{kb - deciles[0]:+d}" for kb in deciles)
                    )
            else:
                say(
                    f"  pid {proc['pid']}: seen from invocation {proc['seen_from_invocation']} to "
                    f"{proc['seen_until_invocation']} only, RSS {proc['rss_kb_first_seen']} -> "
                    f"{proc['rss_kb_last_seen']}, not compared"
                )
        if report["ministack_rss_kb"]:
            say(f"MiniStack itself: RSS {report['ministack_rss_kb'][0]} -> {report['ministack_rss_kb'][1]} kB")
        if problems:
            say(f"\n{len(problems)} problem(s):\n" + "".join(f"  - {p}\n" for p in problems[:20]))
        else:
            say(
                "Every valid submission arrived complete and in order (first copies); nothing invalid was "
                "published; the queue is empty; no bootstrap process's RSS grew beyond the tolerance."
            )
        shown = Path(args.report)
        shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
        say(f"\nsoak {'passed' if not problems else 'FAILED'} in {time.monotonic() - started:.0f}s (report: {shown})")
        return 1 if problems else 0
    except KeyboardInterrupt as e:
        print(f"\ninterrupted{f' ({e})' if str(e) else ''}; cleaning up", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - report, then clean up
        print(f"\nsoak failed: {type(e).__name__}: {e}", file=sys.stderr)
        print(f"--- MiniStack log (tail) ---\n{emulator.log_tail()}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if watcher is not None:
            watcher.stopping.set()
        proxy.stop()
        emulator.stop()
        print("stopped MiniStack and the proxy, removed MiniStack's temp files", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
