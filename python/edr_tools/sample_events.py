"""Writes the sample SQS events in events/ (deterministic: same output every run).

Each file is an SQS event as Lambda delivers it, accepted by
`cargo lambda invoke --data-file events/<file>.json`. Bodies are what sensors
send: base64 of a UTF-8 JSON submission, drawn from edr_tools.samples.

    make events                                   # rewrite the files
    PYTHONPATH=python python3 -m edr_tools.sample_events
"""

import base64
import json
import random
import uuid

from edr_tools import ROOT
from edr_tools.samples import encode, sample_time, sensor_events, sqs_message, submission

HERE = ROOT / "events"
NS = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")  # RFC 4122 URL namespace: ids are stable
REGION = "eu-west-1"
ACCOUNT = "123456789012"


def uid(name):
    return str(uuid.uuid5(NS, name))


def sample_submission(rng, name, events):
    device = uid(f"device-{rng.randrange(4)}")
    body_events = sensor_events(rng, events)
    return submission(uid(f"submission-{name}"), device, sample_time(rng), body_events)


def record(name, body, queue="submissions", group=None):
    attributes = {}
    if group is not None:
        attributes = {
            "MessageGroupId": group,
            "SequenceNumber": str(18860000000000000000 + len(name)),
            "MessageDeduplicationId": uid(name),
        }
    receipt = f"AQEB{uid('receipt-' + name).replace('-', '')}"
    return sqs_message(uid(f"message-{name}"), receipt, body, f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}", attributes)


def write(name, records):
    path = HERE / name
    path.write_text(json.dumps({"Records": records}, indent=1) + "\n")
    print(f"{path}: {len(records)} messages")


def main():
    rng = random.Random(7)
    write(
        "sensor-batch.json",
        [record(f"sensor-{i}", encode(sample_submission(rng, f"sensor-{i}", rng.randint(6, 10)))) for i in range(5)],
    )

    def broken(name, mutate):
        doc = sample_submission(rng, name, 8)
        doc["events"]["new_process"].insert(0, {"cmdl": "cmd.exe", "user": "alice"})
        doc["events"]["network_connection"].insert(
            0, {"source_ip": "10.0.0.1", "destination_ip": "192.0.2.1", "destination_port": 443}
        )
        mutate(doc)
        return encode(doc)

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
        (
            "invalid_destination_ip",
            broken("bad-ip", set_(["events", "network_connection", 0, "destination_ip"], "not-an-ip")),
        ),
        ("null_value", broken("null-cmdl", set_(["events", "new_process", 0, "cmdl"], None))),
        (
            "invalid_destination_port",
            broken("bad-port", set_(["events", "network_connection", 0, "destination_port"], 70000)),
        ),
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
        records.append(record(f"valid-{i}", encode(sample_submission(rng, f"valid-{i}", rng.randint(6, 10)))))
        records.append(record(f"invalid-{reason}", body))
    # A plain JSON body (not base64) is accepted too.
    records.append(record("plain-json", encode(sample_submission(rng, "plain-json", 6), plain=True)))
    write("invalid-mix.json", records)

    fifo = []
    for i in range(6):
        group = uid(f"device-{i % 2}")
        body = encode(sample_submission(rng, f"fifo-{i}", rng.randint(6, 10)))
        fifo.append(record(f"fifo-{i}", body, queue="submissions.fifo", group=group))
    write("fifo-batch.json", fifo)

    write(
        "large-batch.json", [record(f"large-{i}", encode(sample_submission(rng, f"large-{i}", 8))) for i in range(1000)]
    )


if __name__ == "__main__":
    main()
