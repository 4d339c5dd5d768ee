"""The one generator of sample submissions, and its vocabulary.

What sensors send: a submission (submission id, device id, the time it was
created, events of two types) as base64 of UTF-8 JSON in an SQS message. The
sample events in events/ (`edr_tools.sample_events`), the sensor fleet of the
demo, the soak and the end-to-end tests (`edr_tools.fleet`) and the
benchmarks' batches (`edr_tools.bench.coldstart`) all draw from here, so the
command lines, users and addresses are the same everywhere. The Rust
generator (tests/support/samples.rs, shared by the tests and the benchmarks)
reads the same vocabulary file.

Deterministic: every function takes the `random.Random` it draws from.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import uuid
from pathlib import Path

# --- the vocabulary -----------------------------------------------------------------
# In vocabulary.json, which the Rust generator (tests/support/samples.rs) reads too.

_VOCABULARY = json.loads((Path(__file__).parent / "vocabulary.json").read_text())
USERS: list[str] = _VOCABULARY["users"]
COMMANDS: list[str] = _VOCABULARY["commands"]
DESTINATIONS: list[str] = _VOCABULARY["destinations"]
PORTS: list[int] = _VOCABULARY["ports"]
# The day the sample submissions were created (the homework's sample data).
SAMPLE_DAY: str = _VOCABULARY["sample_day"]

# The attributes of an SQS message as Lambda delivers it, but for its ids.
SQS_ATTRIBUTES = {
    "ApproximateReceiveCount": "1",
    "SentTimestamp": "1617019569576",
    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
    "ApproximateFirstReceiveTimestamp": "1617019569580",
}


# --- events and submissions ---------------------------------------------------------


def random_uuid(rng: random.Random) -> str:
    """A version 4 UUID drawn from `rng`."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def new_process(rng: random.Random) -> dict:
    return {"cmdl": rng.choice(COMMANDS), "user": rng.choice(USERS)}


def network_connection(rng: random.Random, source_ip: str | None = None) -> dict:
    """A connection from `source_ip` (else a random 10.0.x.y) to one of the destinations."""
    return {
        "source_ip": source_ip or f"10.0.{rng.randrange(8)}.{rng.randrange(1, 255)}",
        "destination_ip": rng.choice(DESTINATIONS),
        "destination_port": rng.choice(PORTS),
    }


def sensor_events(rng: random.Random, events: int) -> dict:
    """`events` random sensor events, about half of each kind."""
    processes, connections = [], []
    for _ in range(events):
        if rng.random() < 0.5:
            processes.append(new_process(rng))
        else:
            connections.append(network_connection(rng))
    return {"new_process": processes, "network_connection": connections}


def sample_time(rng: random.Random) -> str:
    """A time_created on the sample day, with microseconds and no offset."""
    return f"{SAMPLE_DAY}T12:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(10**6):06d}"


def submission(submission_id: str, device_id: str, time_created: str, events: dict) -> dict:
    """One sensor upload as a JSON-ready dict (keys in the order sensors write them)."""
    return {"submission_id": submission_id, "device_id": device_id, "time_created": time_created, "events": events}


def event_count(doc: dict) -> int:
    return sum(len(items) for items in doc["events"].values())


def encode(doc: dict, plain: bool = False) -> str:
    """The SQS message body: base64 of the UTF-8 JSON (or the JSON itself)."""
    text = json.dumps(doc, ensure_ascii=False)
    return text if plain else base64.b64encode(text.encode("utf-8")).decode("ascii")


# --- what the function makes of them ------------------------------------------------

# The namespace of the function's event ids (src/encode.rs, EVENT_ID_NAMESPACE).
EVENT_ID_NAMESPACE = uuid.UUID("112ae2df-81a4-48c5-9844-96005350b137")
# The blanks the function ignores around a body: ASCII whitespace as Rust's
# `is_ascii_whitespace` has it (str.strip() alone would strip \x0b and
# Unicode spaces too).
ASCII_BLANKS = " \t\n\r\x0c"


def document(body: str) -> bytes:
    """The document an SQS body carries, as the function reads it: a body whose
    first non-blank character is `{` is the JSON itself (without the blanks
    around it), any other is standard base64 (padding optional)."""
    text = body.strip(ASCII_BLANKS)
    if text.startswith("{"):
        return text.encode("utf-8")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def event_id(body: str, device_id: str, submission_id: str, sequence: int) -> str:
    """The `event_id` the function gives the event at `sequence` of the
    submission in `body`: uuid5 of "{device_id}/{submission_id}/{sha256}/{sequence}",
    both ids lowercase hyphenated, sha256 the hex SHA-256 of the document."""
    digest = hashlib.sha256(document(body)).hexdigest()
    name = f"{uuid.UUID(device_id)}/{uuid.UUID(submission_id)}/{digest}/{sequence}"
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, name))


def sqs_message(
    message_id: str, receipt_handle: str, body: str, queue_arn: str, attributes: dict | None = None
) -> dict:
    """One message of an SQS event as Lambda delivers it."""
    return {
        "messageId": message_id,
        "receiptHandle": receipt_handle,
        "body": body,
        "attributes": {**SQS_ATTRIBUTES, **(attributes or {})},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3],
    }
