#!/usr/bin/env python3
"""Writes the sample SQS events in this folder (deterministic: same output every run).

Each file is an SQS event as Lambda delivers it, accepted by
`cargo lambda invoke --data-file events/<file>.json`. Bodies are what sensors
send: base64 of a UTF-8 JSON submission.

    python3 events/generate.py        # rewrite the files
"""
import base64
import json
import random
import uuid
from pathlib import Path

HERE = Path(__file__).parent
NS = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")  # RFC 4122 URL namespace: ids are stable
REGION = "eu-west-1"
ACCOUNT = "123456789012"
USERS = ["SYSTEM", "alice", "bob", "svc-backup"]
COMMANDS = [
    "C:\\Windows\\System32\\svchost.exe -k netsvcs",
    "C:\\Program Files\\Mozilla Firefox\\firefox.exe",
    "powershell.exe -NoProfile -Command Get-Process",
    "/usr/bin/ssh deploy@10.0.3.7",
    "/usr/sbin/cron -f",
    "notepad.exe C:\\Users\\alice\\notes.txt",
]
DESTINATIONS = ["142.250.74.110", "151.101.1.69", "2606:4700::6810:84e5", "192.0.2.10"]
PORTS = [22, 53, 80, 443, 8443]


def uid(name):
    return str(uuid.uuid5(NS, name))


def sensor_events(rng, events):
    """`events` random sensor events, about half of each kind (benches/coldstart.py uses it too)."""
    new_process, network_connection = [], []
    for _ in range(events):
        if rng.random() < 0.5:
            new_process.append({"cmdl": rng.choice(COMMANDS), "user": rng.choice(USERS)})
        else:
            network_connection.append(
                {
                    "source_ip": f"10.0.{rng.randrange(8)}.{rng.randrange(1, 255)}",
                    "destination_ip": rng.choice(DESTINATIONS),
                    "destination_port": rng.choice(PORTS),
                }
            )
    return {"new_process": new_process, "network_connection": network_connection}


def submission(rng, name, events):
    device = uid(f"device-{rng.randrange(4)}")
    body_events = sensor_events(rng, events)
    return {
        "submission_id": uid(f"submission-{name}"),
        "device_id": device,
        "time_created": f"2021-03-29T12:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(10**6):06d}",
        "events": body_events,
    }


def b64(doc):
    return base64.b64encode(json.dumps(doc).encode()).decode()


def record(name, body, queue="submissions", group=None):
    attributes = {
        "ApproximateReceiveCount": "1",
        "SentTimestamp": "1617019569576",
        "SenderId": "AIDAIENQZJOLO23YVJ4VO",
        "ApproximateFirstReceiveTimestamp": "1617019569580",
    }
    if group is not None:
        attributes.update({"MessageGroupId": group, "SequenceNumber": str(18860000000000000000 + len(name)), "MessageDeduplicationId": uid(name)})
    return {
        "messageId": uid(f"message-{name}"),
        "receiptHandle": f"AQEB{uid('receipt-' + name).replace('-', '')}",
        "body": body,
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}",
        "awsRegion": REGION,
    }


def write(name, records):
    path = HERE / name
    path.write_text(json.dumps({"Records": records}, indent=1) + "\n")
    print(f"{path}: {len(records)} messages")


def main():
    rng = random.Random(7)
    write("sensor-batch.json", [record(f"sensor-{i}", b64(submission(rng, f"sensor-{i}", rng.randint(6, 10)))) for i in range(5)])

    def broken(name, mutate):
        doc = submission(rng, name, 8)
        doc["events"]["new_process"].insert(0, {"cmdl": "cmd.exe", "user": "alice"})
        doc["events"]["network_connection"].insert(0, {"source_ip": "10.0.0.1", "destination_ip": "192.0.2.1", "destination_port": 443})
        mutate(doc)
        return b64(doc)

    def set_(path, value):
        def mutate(doc):
            node = doc
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        return mutate

    def delete(path):
        def mutate(doc):
            node = doc
            for key in path[:-1]:
                node = node[key]
            del node[path[-1]]
        return mutate

    invalid = [
        ("invalid_submission_id", broken("bad-sub", set_(["submission_id"], "not-an-uuid"))),
        ("invalid_device_id", broken("bad-dev", set_(["device_id"], "not-an-uuid"))),
        ("invalid_destination_ip", broken("bad-ip", set_(["events", "network_connection", 0, "destination_ip"], "not-an-ip"))),
        ("null_value", broken("null-cmdl", set_(["events", "new_process", 0, "cmdl"], None))),
        ("invalid_destination_port", broken("bad-port", set_(["events", "network_connection", 0, "destination_port"], 70000))),
        ("invalid_time_created", broken("bad-time", set_(["time_created"], "yesterday"))),
        ("unknown_event_type", broken("bad-type", set_(["events", "file_write"], [{"path": "/tmp/x"}]))),
        ("unknown_field", broken("bad-field", set_(["priority"], "high"))),
        ("missing_field", broken("no-device", delete(["device_id"]))),
        ("wrong_type", broken("bad-type-2", set_(["events", "new_process", 0, "user"], 1000))),
        ("invalid_base64", "this is %% not base64"),
        ("malformed_json", base64.b64encode(b'{"submission_id": "truncated').decode()),
        ("not_an_object", base64.b64encode(b"[1, 2, 3]").decode()),
        ("invalid_utf8", base64.b64encode(b'{"submission_id": "\xff\xfe"}').decode()),
    ]
    records = []
    for i, (reason, body) in enumerate(invalid):
        records.append(record(f"valid-{i}", b64(submission(rng, f"valid-{i}", rng.randint(6, 10)))))
        records.append(record(f"invalid-{reason}", body))
    # A plain JSON body (not base64) is accepted too.
    records.append(record("plain-json", json.dumps(submission(rng, "plain-json", 6))))
    write("invalid-mix.json", records)

    fifo = []
    for i in range(6):
        group = uid(f"device-{i % 2}")
        body = b64(submission(rng, f"fifo-{i}", rng.randint(6, 10)))
        fifo.append(record(f"fifo-{i}", body, queue="submissions.fifo", group=group))
    write("fifo-batch.json", fifo)

    write("large-batch.json", [record(f"large-{i}", b64(submission(rng, f"large-{i}", 8))) for i in range(1000)])


if __name__ == "__main__":
    main()
