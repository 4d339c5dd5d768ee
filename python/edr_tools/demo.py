"""`make demo`: the function on a local AWS emulator, end to end.

1. start MiniStack on 127.0.0.1 (port 4566, or a free one if that is taken)
2. deploy with scripts/deploy-local.sh: queue + DLQ + rejects queue, a 2-shard
   stream, the function (provided.al2023, the real bootstrap zipped) and the
   SQS event source mapping with ReportBatchItemFailures
3. send a sensor fleet's submissions (edr_tools.fleet), some broken
4. wait until the queue drains
5. print what arrived on the stream (aggregated records deaggregated, with
   `make demo RECORD_FORMAT=aggregated`) and in the rejects queue, and check it
6. stop everything it started, also on Ctrl-C or failure

Run from the Makefile (which builds the zip and the virtual environments), or:
  PYTHONPATH=python .venv-aws/bin/python -m edr_tools.demo --zip target/lambda/bootstrap/bootstrap.zip
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from edr_tools import ROOT
from edr_tools import emulator as local_emulator
from edr_tools import fleet as sensor_fleet


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zip", default=str(ROOT / "target/lambda/bootstrap/bootstrap.zip"))
    p.add_argument("--port", type=int, default=int(os.environ.get("EMULATOR_PORT", "4566")))
    p.add_argument("--batch-size", type=int, default=int(os.environ.get("BATCH_SIZE", "10")))
    p.add_argument("--visibility-timeout", type=int, default=int(os.environ.get("VISIBILITY_TIMEOUT", "30")))
    p.add_argument("--function-timeout", type=int, default=int(os.environ.get("FUNCTION_TIMEOUT", "10")))
    p.add_argument("--devices", type=int, default=int(os.environ.get("DEMO_DEVICES", "4")))
    p.add_argument("--submissions", type=int, default=int(os.environ.get("DEMO_SUBMISSIONS", "12")))
    p.add_argument("--broken", type=int, default=int(os.environ.get("DEMO_BROKEN", "3")))
    p.add_argument("--seed", type=int, default=int(os.environ.get("FLEET_SEED", "20210329")))
    p.add_argument("--timeout", type=float, default=120, help="seconds to wait for the queue to drain")
    p.add_argument(
        "--region",
        default=local_emulator.local_region(),
        help="region of the deployment (LOCAL_REGION, else eu-west-1)",
    )
    args = p.parse_args(argv)

    if not Path(args.zip).is_file():
        print(f"demo: no deployment package at {args.zip} (make demo builds it)", file=sys.stderr)
        return 2

    # SIGTERM (and SIGHUP) unwind through the finally below, like Ctrl-C does.
    def on_signal(signum, _frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    port = args.port
    if local_emulator.port_in_use(port):
        port = local_emulator.free_port()
        print(f"port {args.port} is taken (a LocalStack?); using {port}")
    log = ROOT / ".cache" / "local" / "demo-ministack.log"
    region = args.region
    emulator = local_emulator.MiniStack(port=port, log_path=log, region=region)
    started = time.monotonic()
    try:
        banner(f"Starting MiniStack on {emulator.endpoint} (region {region})")
        emulator.start()
        print(f"up in {time.monotonic() - started:.1f}s (log: {log.relative_to(ROOT)})")

        env = dict(os.environ)
        for key in [k for k in env if k.startswith("AWS_ENDPOINT_URL")]:
            del env[key]
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
                "BATCH_SIZE": str(args.batch_size),
                "VISIBILITY_TIMEOUT": str(args.visibility_timeout),
                "FUNCTION_TIMEOUT": str(args.function_timeout),
            }
        )
        env.pop("AWS_PROFILE", None)
        os.environ.update(
            {
                k: env[k]
                for k in (
                    "AWS_ENDPOINT_URL",
                    "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY",
                    "AWS_DEFAULT_REGION",
                    "AWS_REGION",
                )
            }
        )

        banner(
            f"Deploying (batch size {args.batch_size}, visibility timeout {args.visibility_timeout}s): "
            f"AWS_ENDPOINT_URL={emulator.endpoint} scripts/deploy-local.sh"
        )
        out = subprocess.run(
            [str(ROOT / "scripts/deploy-local.sh")], env=env, check=True, stdout=subprocess.PIPE, text=True
        ).stdout
        deployed = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        for key in ("QUEUE_URL", "REJECTS_QUEUE_URL", "STREAM_NAME", "FUNCTION_NAME", "EVENT_SOURCE_MAPPING"):
            print(f"  {key}={deployed[key]}")

        banner(f"Sensor fleet: {args.submissions} submissions from {args.devices} devices, {args.broken} broken")
        sqs = sensor_fleet.client("sqs")
        entries = sensor_fleet.make_batch(args.seed, args.devices, args.submissions, args.broken)
        sent_at = time.monotonic()
        sensor_fleet.send(sqs, deployed["QUEUE_URL"], entries)
        for e in entries:
            sub = e["submission"]
            note = f"  BROKEN: {e['broken']}" if e["broken"] else ""
            print(
                f"  sent {sub['submission_id']:<36}  {e['device']:<10} "
                f"{len(sensor_fleet.expected_events(sub)):>2} events{note}"
            )
        manifest = ROOT / ".cache" / "local" / "demo-manifest.json"
        manifest.write_text(json.dumps(entries, indent=1))

        banner("Waiting for the event source mapping to drain the queue")
        took = sensor_fleet.wait_drained(sqs, deployed["QUEUE_URL"], args.timeout)
        print(f"drained {time.monotonic() - sent_at:.1f}s after sending (polled {took:.1f}s)")
        dlq = sensor_fleet.queue_depth(sqs, deployed["DLQ_URL"]) if deployed.get("DLQ_URL") else 0

        banner(f"What arrived on stream '{deployed['STREAM_NAME']}' (decoded, per submission, in order)")
        records = sensor_fleet.read_stream(sensor_fleet.client("kinesis"), deployed["STREAM_NAME"])
        aggregated = {(r["shard"], r["sequence_number"]) for r in records if "sub_sequence_number" in r}
        if aggregated:
            print(
                f"RECORD_FORMAT=aggregated: {len(aggregated)} Kinesis records carried "
                f"{sum('sub_sequence_number' in r for r in records)} events, read deaggregated (edr_tools.kpl)"
            )
        rejects = sensor_fleet.drain_queue(sqs, deployed["REJECTS_QUEUE_URL"])
        problems = sensor_fleet.report(entries, records, rejects)
        if dlq:
            print(f"{dlq} message(s) ended in the dead-letter queue")
            problems += 1
        print(f"\ndemo {'passed' if not problems else 'FAILED'} in {time.monotonic() - started:.1f}s")
        return 1 if problems else 0
    except KeyboardInterrupt as e:
        print(f"\ninterrupted{f' ({e})' if str(e) else ''}; cleaning up", file=sys.stderr)
        return 130
    except subprocess.CalledProcessError as e:
        print(f"\ndemo: {e}", file=sys.stderr)
        print(f"--- MiniStack log (tail) ---\n{emulator.log_tail()}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - report, then clean up
        print(f"\ndemo failed: {type(e).__name__}: {e}", file=sys.stderr)
        print(f"--- MiniStack log (tail) ---\n{emulator.log_tail()}", file=sys.stderr)
        return 1
    finally:
        # Ctrl-C pressed again during cleanup must not leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        emulator.stop()
        print("stopped MiniStack and removed its temp files", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
