"""The obvious Python alternative to edr-preprocessor, as a reference for `make bench`.

What most Python SQS -> Kinesis Lambda functions look like: a boto3 client
made at import, then per batch decode (base64 + json), validate with the
standard library, build one JSON record per event, PutRecords in chunks of
500, and report every message with a failed entry in `batchItemFailures`.

It does the same work per event as the Rust function (closed schema, UUIDs,
ISO 8601 date-time, IP addresses, ports, `event_id` as uuid5, the same record
fields), but with the usual shortcuts: no retry inside the invocation, no
ordering guarantee (a failed entry's successors may already be written), no
duplicate-key detection, no deadline handling. It is a speed and memory
reference only, not a second implementation to deploy.

Run by awslambdaric (`python -m awslambdaric handler.handler`), as in AWS's
Python base images; configured like the Rust function: STREAM_NAME,
AWS_REGION, AWS_ENDPOINT_URL, credentials.
"""

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import uuid

import boto3

kinesis = boto3.client("kinesis")
STREAM_NAME = os.environ["STREAM_NAME"]
# event_id = uuid5(EVENT_ID_NAMESPACE, f"{device_id}/{submission_id}/{sha256}/{sequence}"),
# sha256 the hex SHA-256 of the document the body carries, as the Rust function.
EVENT_ID_NAMESPACE = uuid.UUID("112ae2df-81a4-48c5-9844-96005350b137")
# The blanks around a body that the Rust function ignores: ASCII whitespace
# (str.strip() alone would also strip Unicode spaces and \x0b).
ASCII_BLANKS = " \t\n\r\x0c"
TOP_FIELDS = {"submission_id", "device_id", "time_created", "events"}
PROCESS_FIELDS = {"cmdl", "user"}
CONNECTION_FIELDS = {"source_ip", "destination_ip", "destination_port"}


class Invalid(ValueError):
    pass


def hyphenated_uuid(value):
    if not isinstance(value, str) or len(value) != 36:
        raise Invalid("not a hyphenated UUID")
    return str(uuid.UUID(value))


def validate(doc):
    """Returns the list of (event_type, event_data) in document order."""
    if not isinstance(doc, dict) or set(doc) != TOP_FIELDS:
        raise Invalid("wrong fields")
    hyphenated_uuid(doc["submission_id"])
    hyphenated_uuid(doc["device_id"])
    created = doc["time_created"]
    if not isinstance(created, str) or "T" not in created:
        raise Invalid("time_created is not a date-time")
    datetime.datetime.fromisoformat(created)
    events = doc["events"]
    if not isinstance(events, dict):
        raise Invalid("events is not an object")
    out = []
    for event_type, items in events.items():
        if not isinstance(items, list):
            raise Invalid("event list is not a list")
        for item in items:
            if event_type == "new_process":
                if not isinstance(item, dict) or set(item) != PROCESS_FIELDS:
                    raise Invalid("wrong new_process fields")
                if not all(isinstance(item[k], str) for k in PROCESS_FIELDS):
                    raise Invalid("wrong new_process types")
            elif event_type == "network_connection":
                if not isinstance(item, dict) or set(item) != CONNECTION_FIELDS:
                    raise Invalid("wrong network_connection fields")
                ipaddress.ip_address(item["source_ip"])
                ipaddress.ip_address(item["destination_ip"])
                port = item["destination_port"]
                if type(port) is not int or not 0 <= port <= 65535:
                    raise Invalid("invalid destination_port")
            else:
                raise Invalid("unknown event type")
            out.append((event_type, item))
    return out


def handler(event, context):
    time_processed = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    entries = []  # (messageId, PutRecords entry)
    rejected = 0
    for record in event["Records"]:
        try:
            body = record["body"].strip(ASCII_BLANKS)
            # The document: the JSON body as is, or what its base64 decodes to.
            document = body.encode() if body.startswith("{") else base64.b64decode(body, validate=True)
            doc = json.loads(document)
            events = validate(doc)
        except (ValueError, TypeError, KeyError) as e:
            rejected += 1
            print(
                json.dumps(
                    {
                        "level": "WARN",
                        "message": "submission rejected",
                        "message_id": record.get("messageId"),
                        "error": type(e).__name__,
                    }
                )
            )
            continue
        submission_id = doc["submission_id"].lower()
        device_id = doc["device_id"].lower()
        id_prefix = f"{device_id}/{submission_id}/{hashlib.sha256(document).hexdigest()}/"
        for sequence, (event_type, data) in enumerate(events):
            payload = {
                "event_id": str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{id_prefix}{sequence}")),
                "event_type": event_type,
                "submission_id": submission_id,
                "device_id": device_id,
                "sequence": sequence,
                "event_count": len(events),
                "time_created": doc["time_created"],
                "time_processed": time_processed,
                "event_data": data,
            }
            entries.append(
                (
                    record["messageId"],
                    {
                        "Data": json.dumps(payload, separators=(",", ":")).encode(),
                        "PartitionKey": submission_id,
                    },
                )
            )

    failed = set()
    for start in range(0, len(entries), 500):
        chunk = entries[start : start + 500]
        try:
            response = kinesis.put_records(StreamName=STREAM_NAME, Records=[e for _, e in chunk])
        except Exception:  # noqa: BLE001 - the whole chunk is retried by SQS
            failed.update(message_id for message_id, _ in chunk)
            continue
        for (message_id, _), result in zip(chunk, response["Records"]):
            if "ErrorCode" in result:
                failed.add(message_id)

    print(
        json.dumps(
            {
                "level": "INFO",
                "message": "batch processed",
                "received": len(event["Records"]),
                "rejected": rejected,
                "records": len(entries),
                "failed": len(failed),
            }
        )
    )
    return {"batchItemFailures": [{"itemIdentifier": m} for m in dict.fromkeys(m for m, _ in entries if m in failed)]}
