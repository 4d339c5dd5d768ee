"""A fleet of EDR sensors for the local demo and the end-to-end tests.

Subcommands (the endpoint comes from AWS_ENDPOINT_URL, as for the AWS CLI):

  send          send submissions from several devices to the source queue and
                write a manifest of what was sent
  wait-drained  wait until the source queue has no visible or in-flight messages
  report        read the stream from its start, print every submission's decoded
                events in order, read the rejects queue, and compare with the
                manifest: exit 1 if a valid submission is missing or out of order,
                or if an invalid one was published
  show          the same without a manifest, for submissions another fleet sent
                (e.g. the original homework environment's sensor-fleet/main.py):
                each submission's events in order, checked only against their
                own event_count, and the rejects queue with each reason

Each submission is what a sensor uploads: base64 of UTF-8 JSON with a
submission id, a device id, the time it was created and 6-10 events of two
types. A few are broken the way real sensors break them: "not-an-uuid" ids,
"not-an-ip" destinations, null command lines (and, on request only, ports out
of range). The last three are defects of one event, which the function
drops alone under INVALID_EVENTS=drop-event (`event_defects` finds them).

The submissions come from edr_tools.samples (the one generator of the project);
the end-to-end tests, the demo and the soak import these functions.

    python -m edr_tools.fleet send --queue-url ... --manifest sent.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from edr_tools import kpl, samples

# --- what sensors send (drawn from edr_tools.samples) -----------------------------

# How a broken submission is broken, and the reason the function gives for it.
BROKEN_KINDS = {
    "submission_id": "invalid_submission_id",  # "submission_id": "not-an-uuid"
    "device_id": "invalid_device_id",  # "device_id": "not-an-uuid"
    "destination_ip": "invalid_destination_ip",  # a connection to "not-an-ip"
    "cmdl": "null_value",  # a process with "cmdl": null
    "destination_port": "invalid_destination_port",  # a connection to port 70000
}
# The kinds make_batch draws from, in turn ("destination_port" only on request,
# so that the batches of a seed stay what they were).
BROKEN_ORDER = ["destination_ip", "submission_id", "cmdl", "device_id"]
# The kinds that break one event, not the submission: under
# INVALID_EVENTS=drop-event only that event is left out.
EVENT_LEVEL_KINDS = {"destination_ip", "cmdl", "destination_port"}
PORT_OUT_OF_RANGE = 70000


@dataclass
class Device:
    device_id: str
    name: str
    os: str  # "windows" | "linux"
    ip: str
    network_first: bool  # which event type this sensor writes first


def make_fleet(rng: random.Random, count: int) -> list[Device]:
    devices = []
    for i in range(count):
        os_kind = "windows" if i % 2 == 0 else "linux"
        devices.append(
            Device(
                device_id=samples.random_uuid(rng),
                name=f"{'laptop' if os_kind == 'windows' else 'server'}-{i + 1:02d}",
                os=os_kind,
                ip=f"10.20.{rng.randint(0, 15)}.{rng.randint(2, 250)}",
                network_first=(i % 3 == 2),
            )
        )
    return devices


def make_submission(
    rng: random.Random, device: Device, created: datetime, n_events: int | None = None, broken: str | None = None
) -> dict:
    """One sensor upload as a JSON-ready dict (keys in the order sensors write them)."""
    n = n_events if n_events is not None else rng.randint(6, 10)
    n_proc = rng.randint(1, n - 1) if n > 1 else n
    processes = [samples.new_process(rng) for _ in range(n_proc)]
    connections = []
    for _ in range(n - n_proc):
        connection = samples.network_connection(rng, source_ip=device.ip)
        if rng.random() >= 0.8:  # now and then a client port of the sensor's own
            connection["destination_port"] = rng.randint(1024, 65535)
        connections.append(connection)
    events = (
        {"network_connection": connections, "new_process": processes}
        if device.network_first
        else {"new_process": processes, "network_connection": connections}
    )
    sub = samples.submission(
        samples.random_uuid(rng),
        device.device_id,
        created.replace(tzinfo=None).isoformat(timespec="microseconds"),
        events,
    )
    if broken == "submission_id":
        sub["submission_id"] = "not-an-uuid"
    elif broken == "device_id":
        sub["device_id"] = "not-an-uuid"
    elif broken in ("destination_ip", "destination_port"):
        if not connections:
            events["network_connection"] = connections = [
                {"source_ip": device.ip, "destination_ip": samples.DESTINATIONS[0], "destination_port": 443}
            ]
        connection = connections[rng.randrange(len(connections))]
        if broken == "destination_ip":
            connection["destination_ip"] = "not-an-ip"
        else:
            connection["destination_port"] = PORT_OUT_OF_RANGE
    elif broken == "cmdl":
        processes[rng.randrange(len(processes))]["cmdl"] = None
    elif broken is not None:
        raise ValueError(f"unknown breakage {broken!r}")
    return sub


encode = samples.encode  # the SQS message body: base64 of the UTF-8 JSON (or the JSON itself)


def expected_events(sub: dict) -> list[tuple[str, dict]]:
    """(event_type, event_data) in document order: sequence 0, 1, ..."""
    return [(etype, ev) for etype, evs in sub["events"].items() for ev in evs]


def event_defects(sub: dict) -> dict[int, str]:
    """{sequence: reason} of the events make_submission broke (EVENT_LEVEL_KINDS):
    those INVALID_EVENTS=drop-event leaves out."""
    defects = {}
    for sequence, (etype, ev) in enumerate(expected_events(sub)):
        if etype == "new_process" and ev.get("cmdl", "") is None:
            defects[sequence] = BROKEN_KINDS["cmdl"]
        elif etype == "network_connection" and ev.get("destination_ip") == "not-an-ip":
            defects[sequence] = BROKEN_KINDS["destination_ip"]
        elif etype == "network_connection" and ev.get("destination_port") == PORT_OUT_OF_RANGE:
            defects[sequence] = BROKEN_KINDS["destination_port"]
    return defects


def make_batch(seed: int, devices: int, submissions: int, broken: int, start: datetime | None = None) -> list[dict]:
    """Manifest entries: {"submission", "body", "broken", "device"} in sending order."""
    rng = random.Random(seed)
    fleet = make_fleet(rng, devices)
    start = start or datetime.now(UTC) - timedelta(minutes=5)
    # Spread the broken ones over the batch, not all at its end.
    broken_at = set(rng.sample(range(submissions), min(broken, submissions)))
    out, kinds = [], iter(BROKEN_ORDER * submissions)
    for i in range(submissions):
        device = fleet[i % len(fleet)]
        created = start + timedelta(seconds=7 * i, microseconds=rng.randint(0, 999_999))
        kind = next(kinds) if i in broken_at else None
        sub = make_submission(rng, device, created, broken=kind)
        out.append({"submission": sub, "body": encode(sub), "broken": kind, "device": device.name})
    return out


# --- AWS plumbing ---------------------------------------------------------------


def client(service: str):
    import boto3
    from botocore.config import Config

    from edr_tools.emulator import local_region

    return boto3.client(
        service,
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or local_region(),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )


def send(sqs, queue_url: str, entries: list[dict]) -> None:
    """Sends the bodies 10 at a time; records each entry's SQS message id."""
    for start in range(0, len(entries), 10):
        chunk = entries[start : start + 10]
        resp = sqs.send_message_batch(
            QueueUrl=queue_url, Entries=[{"Id": str(i), "MessageBody": e["body"]} for i, e in enumerate(chunk)]
        )
        if resp.get("Failed"):
            raise RuntimeError(f"send_message_batch failed: {resp['Failed']}")
        for ok in resp["Successful"]:
            chunk[int(ok["Id"])]["message_id"] = ok["MessageId"]


def queue_depth(sqs, queue_url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


def wait_drained(sqs, queue_url: str, timeout: float, quiet_polls: int = 2, interval: float = 0.5) -> float:
    """Waits until the queue reports nothing waiting, in flight or delayed, twice in a row."""
    began = time.monotonic()
    quiet = 0
    while True:
        depth = queue_depth(sqs, queue_url)
        quiet = quiet + 1 if depth == 0 else 0
        if quiet >= quiet_polls:
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise TimeoutError(f"{depth} message(s) still in {queue_url} after {timeout:.0f}s")
        time.sleep(interval)


def read_stream(kinesis, stream: str) -> list[dict]:
    """Every record of every shard from TRIM_HORIZON, shard by shard, in shard order,
    an aggregated record as its user records (with "sub_sequence_number").
    Each: {"shard", "partition_key", "sequence_number", "data" (decoded JSON or raw)}."""
    out = []
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    for shard in shards:
        it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        while it:
            resp = kinesis.get_records(ShardIterator=it, Limit=10000)
            for r in resp["Records"]:
                # An aggregated record (RECORD_FORMAT=aggregated) is read as its
                # user records, in order, each as a record of its own.
                users = kpl.user_records(r["Data"])
                for sub, raw in enumerate([u["data"] for u in users] if users is not None else [r["Data"]]):
                    try:
                        data = json.loads(raw)
                    except ValueError:
                        data = raw
                    record = {
                        "shard": shard["ShardId"],
                        "partition_key": r["PartitionKey"],
                        "sequence_number": r["SequenceNumber"],
                        "data": data,
                    }
                    if users is not None:
                        record["sub_sequence_number"] = sub
                    out.append(record)
            if not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0:
                break
            it = resp.get("NextShardIterator")
    return out


def drain_queue(sqs, queue_url: str, idle_polls: int = 2) -> list[dict]:
    """Receives (and deletes) everything in a queue, with message attributes."""
    got, idle = [], 0
    while idle < idle_polls:
        resp = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        )
        msgs = resp.get("Messages", [])
        if not msgs:
            idle += 1
            time.sleep(0.2)
            continue
        idle = 0
        got.extend(msgs)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)],
        )
    return got


# --- checking what arrived ----------------------------------------------------------


@dataclass
class Published:
    submission_id: str
    shard: str
    partition_keys: set = field(default_factory=set)
    records: list = field(default_factory=list)  # data dicts in stream order

    def first_copies(self) -> list[dict]:
        seen, out = set(), []
        for r in self.records:
            if r["sequence"] not in seen:
                seen.add(r["sequence"])
                out.append(r)
        return out

    def last_copies(self) -> list[dict]:
        last = {}
        for pos, r in enumerate(self.records):
            last[r["sequence"]] = (pos, r)
        return [r for _, r in sorted(last.values(), key=lambda pr: pr[0])]


def group_by_submission(records: list[dict]) -> dict[str, Published]:
    out: dict[str, Published] = {}
    for rec in records:
        data = rec["data"]
        sid = data.get("submission_id") if isinstance(data, dict) else None
        if sid is None:
            continue
        pub = out.setdefault(sid, Published(sid, rec["shard"]))
        pub.partition_keys.add(rec["partition_key"])
        pub.records.append(data)
    return out


RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def check_submission(
    sub: dict,
    pub: Published | None,
    copies: str = "first",
    *,
    body: str | None = None,
    dropped: set[int] | dict[int, str] | None = None,
) -> list[str]:
    """Problems with one valid submission's published events (empty list: all good).

    `body`: the SQS body it was sent as; then every event_id must be the
    function's (samples.event_id). `dropped`: the sequences the function
    leaves out (INVALID_EVENTS=drop-event): the others are published with
    their own sequence and event_count is the number published."""
    expected = expected_events(sub)
    dropped = set(dropped or ())
    kept = [i for i in range(len(expected)) if i not in dropped]
    if pub is None:
        return [f"{sub['submission_id']}: nothing published ({len(kept)} events expected)"]
    problems = []
    chosen = pub.first_copies() if copies == "first" else pub.last_copies()
    seqs = [r["sequence"] for r in chosen]
    if seqs != kept:
        problems.append(
            f"{sub['submission_id']}: {copies} copies in order {seqs}, expected "
            + (f"0..{len(expected) - 1}" if not dropped else f"{kept} (dropped {sorted(dropped)})")
        )
    for r in chosen:
        i = r.get("sequence")
        if not isinstance(i, int) or not 0 <= i < len(expected) or i in dropped:
            continue
        etype, edata = expected[i]
        want = {
            "event_type": etype,
            "submission_id": sub["submission_id"],
            "device_id": sub["device_id"],
            "event_count": len(kept),
            "time_created": sub["time_created"],
            "event_data": edata,
        }
        if body is not None:
            want["event_id"] = samples.event_id(body, sub["device_id"], sub["submission_id"], i)
        for key, value in want.items():
            if r.get(key) != value:
                problems.append(f"{sub['submission_id']} #{i}: {key} = {r.get(key)!r}, expected {value!r}")
        try:
            if uuid.UUID(r.get("event_id", "")).version != 5:
                problems.append(f"{sub['submission_id']} #{i}: event_id {r.get('event_id')} is not a UUID v5")
        except (ValueError, TypeError, AttributeError):
            problems.append(f"{sub['submission_id']} #{i}: event_id {r.get('event_id')!r} is not a UUID")
        if not RFC3339_Z.match(str(r.get("time_processed", ""))):
            problems.append(
                f"{sub['submission_id']} #{i}: time_processed {r.get('time_processed')!r} is not RFC 3339 UTC (…Z)"
            )
    return problems


def describe_event(r: dict) -> str:
    d = r.get("event_data") or {}
    if r.get("event_type") == "new_process":
        return f"{'new_process':<19} {d.get('user')}  {d.get('cmdl')}"
    if r.get("event_type") == "network_connection":
        dst = d.get("destination_ip", "")
        dst = f"[{dst}]" if ":" in dst else dst
        return f"{'network_connection':<19} {d.get('source_ip')} -> {dst}:{d.get('destination_port')}"
    return json.dumps(r)


def report(
    manifest: list[dict],
    records: list[dict],
    rejects: list[dict] | None,
    out=sys.stdout,
    partition_key: str = "submission_id",
) -> int:
    """Prints what arrived; returns the number of problems found."""
    by_sid = group_by_submission(records)
    sent_valid = [m for m in manifest if not m["broken"]]
    sent_broken = [m for m in manifest if m["broken"]]
    problems: list[str] = []
    shards = sorted({r["shard"] for r in records})
    w = out.write
    w(f"\nStream: {len(records)} records on {len(shards)} shard(s)\n")
    first = next((r for r in records if isinstance(r["data"], dict)), None)
    if first is not None:
        w(f"\nOne record as published (partition key {first['partition_key']}, {first['shard']}):\n")
        w("".join(f"  {line}\n" for line in json.dumps(first["data"], indent=2, ensure_ascii=False).splitlines()))
    for m in manifest:
        sub = m["submission"]
        pub = by_sid.get(sub["submission_id"]) if not m["broken"] else None
        if m["broken"] or pub is None:
            continue
        first = pub.first_copies()
        dups = len(pub.records) - len(first)
        key = sub[partition_key]
        pk_ok = pub.partition_keys == {key}
        w(
            f"\nsubmission {sub['submission_id']}  {m['device']} ({sub['device_id'][:8]}…)  "
            f"{pub.shard}  {len(first)} events"
            + (f", {dups} duplicate cop{'y' if dups == 1 else 'ies'}" if dups else "")
            + ("" if pk_ok else f"  PARTITION KEYS {sorted(pub.partition_keys)}")
            + "\n"
        )
        for r in first:
            w(f"  {r.get('sequence'):>2}  {describe_event(r)}\n")
        if not pk_ok:
            problems.append(f"{sub['submission_id']}: partition keys {sorted(pub.partition_keys)}, expected {key}")
    for m in sent_valid:
        problems += check_submission(m["submission"], by_sid.get(m["submission"]["submission_id"]), body=m["body"])
    broken_ids = {m["submission"]["submission_id"] for m in sent_broken}
    valid_ids = {m["submission"]["submission_id"] for m in sent_valid}
    for sid in by_sid:
        if sid not in valid_ids:
            problems.append(
                f"published a submission that was not sent valid: {sid}"
                + (" (it was broken)" if sid in broken_ids else "")
            )
    rejected = 0
    if rejects is not None:
        by_body = {m["body"]: m for m in sent_broken}
        w("\nRejects queue:\n")
        for msg in rejects:
            attrs = msg.get("MessageAttributes", {})
            reason = attrs.get("reason", {}).get("StringValue")
            source = attrs.get("source_message_id", {}).get("StringValue")
            m = by_body.get(msg["Body"])
            if m is None:
                problems.append(f"rejects queue holds a body that was not sent broken: {msg['Body'][:60]}…")
                continue
            rejected += 1
            sub = m["submission"]
            w(f"  {sub['submission_id']:<36}  {m['device']:<10} {reason}  (source message {source})\n")
            if reason != BROKEN_KINDS[m["broken"]]:
                problems.append(f"{sub['submission_id']}: reason {reason}, expected {BROKEN_KINDS[m['broken']]}")
            if m.get("message_id") and source != m["message_id"]:
                problems.append(f"{sub['submission_id']}: source_message_id {source}, expected {m['message_id']}")
        if rejected != len(sent_broken):
            problems.append(f"{len(sent_broken)} broken submissions sent, {rejected} in the rejects queue")
    published = sum(1 for m in sent_valid if m["submission"]["submission_id"] in by_sid)
    events = sum(len(p.first_copies()) for p in by_sid.values())
    dups = sum(len(p.records) - len(p.first_copies()) for p in by_sid.values())
    w(
        f"\nSent {len(manifest)} submissions ({len(sent_broken)} broken) from "
        f"{len({m['device'] for m in manifest})} devices | published {published} "
        f"({events} events, {dups} duplicates) | rejected "
        + (f"{rejected}" if rejects is not None else "? (no rejects queue)")
        + "\n"
    )
    if problems:
        w(f"\n{len(problems)} problem(s):\n" + "".join(f"  - {p}\n" for p in problems))
    else:
        w("Every valid submission arrived complete and in order; no broken one was published.\n")
    return len(problems)


def show(records: list[dict], rejects: list[dict] | None, out=sys.stdout) -> int:
    """Prints what arrived without knowing what was sent; returns the number of
    submissions whose first copies are not 0..event_count-1."""
    by_sid = group_by_submission(records)
    w = out.write
    w(f"\nStream: {len(records)} records on {len({r['shard'] for r in records})} shard(s), {len(by_sid)} submissions\n")
    incomplete = 0
    for sid, pub in by_sid.items():
        first = pub.first_copies()
        count = first[0].get("event_count") if first else 0
        seqs = [r.get("sequence") for r in first]
        whole = isinstance(count, int) and seqs == list(range(count))
        incomplete += not whole
        w(
            f"\nsubmission {sid}  device {first[0].get('device_id')}  {pub.shard}  {len(first)} of {count} events"
            + ("" if whole else f"  INCOMPLETE OR OUT OF ORDER: {seqs}")
            + "\n"
        )
        for r in first:
            w(f"  {r.get('sequence'):>2}  {describe_event(r)}\n")
    if rejects is not None:
        w(f"\nRejects queue: {len(rejects)}\n")
        for msg in rejects:
            attrs = msg.get("MessageAttributes", {})
            reason, detail, source = (
                attrs.get(k, {}).get("StringValue") for k in ("reason", "detail", "source_message_id")
            )
            w(f"  {reason}  {detail or ''}  (source message {source})\n")
    w(
        f"\n{len(by_sid) - incomplete} submissions complete and in order"
        + (f", {incomplete} not" if incomplete else "")
        + (f"; {len(rejects)} rejected" if rejects is not None else "")
        + "\n"
    )
    return incomplete


# --- CLI ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("send")
    s.add_argument("--queue-url", required=True)
    s.add_argument("--devices", type=int, default=4)
    s.add_argument("--submissions", type=int, default=12)
    s.add_argument("--broken", type=int, default=3)
    s.add_argument("--seed", type=int, default=int(os.environ.get("FLEET_SEED", "20210329")))
    s.add_argument("--manifest", required=True)
    d = sub.add_parser("wait-drained")
    d.add_argument("--queue-url", required=True)
    d.add_argument("--timeout", type=float, default=120)
    r = sub.add_parser("report")
    r.add_argument("--stream", required=True)
    r.add_argument("--manifest", required=True)
    r.add_argument("--rejects-queue-url", default="")
    r.add_argument("--partition-key", default="submission_id", choices=["submission_id", "device_id"])
    v = sub.add_parser("show")
    v.add_argument("--stream", required=True)
    v.add_argument("--rejects-queue-url", default="", help="read (and delete) what the rejects queue holds")
    args = p.parse_args(argv)

    if args.command == "send":
        entries = make_batch(args.seed, args.devices, args.submissions, args.broken)
        send(client("sqs"), args.queue_url, entries)
        with open(args.manifest, "w") as f:
            json.dump(entries, f, indent=1)
        by_device = defaultdict(int)
        for e in entries:
            by_device[e["device"]] += 1
        print(
            f"sent {len(entries)} submissions ({sum(1 for e in entries if e['broken'])} broken: "
            + ", ".join(f"{e['submission']['submission_id'][:13]}… bad {e['broken']}" for e in entries if e["broken"])
            + f") from {len(by_device)} devices, "
            + f"{sum(len(expected_events(e['submission'])) for e in entries)} events"
        )
        return 0
    if args.command == "wait-drained":
        took = wait_drained(client("sqs"), args.queue_url, args.timeout)
        print(f"queue drained in {took:.1f}s")
        return 0
    if args.command == "report":
        with open(args.manifest) as f:
            manifest = json.load(f)
        records = read_stream(client("kinesis"), args.stream)
        rejects = drain_queue(client("sqs"), args.rejects_queue_url) if args.rejects_queue_url else None
        return 1 if report(manifest, records, rejects, partition_key=args.partition_key) else 0
    if args.command == "show":
        records = read_stream(client("kinesis"), args.stream)
        rejects = drain_queue(client("sqs"), args.rejects_queue_url) if args.rejects_queue_url else None
        return 1 if show(records, rejects) else 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
