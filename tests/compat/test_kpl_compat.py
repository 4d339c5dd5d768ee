"""The aggregated record format against code we did not write: awslabs'
kinesis-aggregation libraries for Python (aws-kinesis-agg on PyPI) and Node.js
(aws-kinesis-agg on npm) read the records this project's aggregator makes and
get exactly the user records (the per-event records of real submissions among
them), and this project's deaggregator reads the records their aggregators make.
Where the libraries differ on a record that is not aggregated (Node.js reports
an error, Python and the KCL return it whole; a message without a required
field is read by Python with defaults and refused by Java's protobuf), the
KCL's behaviour is the one this project matches (docs/contract.md)."""

import base64
import hashlib
import json
from pathlib import Path

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import deaggregate_records

from edr_tools import kpl

ROOT = Path(__file__).resolve().parents[2]
MAGIC = b"\xf3\x89\x9a\xc2"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def python_deaggregate(record):
    """A record as the Lambda Kinesis event carries it, through awslabs' Python library."""
    event_record = {
        "eventSource": "aws:kinesis",
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record["partition_key"],
            "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
            "data": record["data"],
            "approximateArrivalTimestamp": 1545084650.987,
        },
    }
    return [
        {
            "partition_key": u["kinesis"]["partitionKey"],
            "explicit_hash_key": u["kinesis"].get("explicitHashKey"),
            "data": u["kinesis"]["data"] if isinstance(u["kinesis"]["data"], str) else u["kinesis"]["data"].decode(),
            "aggregated": u["kinesis"].get("aggregated", False),
        }
        for u in deaggregate_records([event_record])
    ]


def submissions():
    """Valid bodies of the sample events: the sensor batch, and the large batch's."""
    for name in ("sensor-batch.json", "large-batch.json"):
        records = json.loads((ROOT / "events" / name).read_text())["Records"]
        yield from (r["body"] for r in records[:4])


def user_records_of_every_kind():
    """Binary and empty data, keys of several bytes per character, explicit hash keys."""
    return [
        {
            "partition_key": "4a1b3c5d-0000-4000-8000-000000000001",
            "explicit_hash_key": None,
            "data": b64(bytes(range(256))),
        },
        {"partition_key": "4a1b3c5d-0000-4000-8000-000000000001", "explicit_hash_key": None, "data": ""},
        {"partition_key": "gerät-🛰", "explicit_hash_key": None, "data": b64(MAGIC + b"not a record")},
        {"partition_key": "gerät-🛰", "explicit_hash_key": "0", "data": b64(b"x" * 300)},
        {"partition_key": "p", "explicit_hash_key": "340282366920938463463374607431768211455", "data": b64(b"{}")},
    ] + [
        {"partition_key": "many", "explicit_hash_key": None, "data": b64(f"record {i}".encode() * i)} for i in range(40)
    ]


def without_flags(users):
    return [{k: u[k] for k in ("partition_key", "explicit_hash_key", "data")} for u in users]


@pytest.mark.parametrize("max_record_bytes", [1024 * 1024, 1200])
def test_python_and_node_read_the_per_event_records_of_our_aggregated_records(rust, node, max_record_bytes):
    for body in submissions():
        answer = rust({"command": "submission", "body": body, "max_record_bytes": max_record_bytes})
        per_event = [{**r, "explicit_hash_key": None} for r in answer["per_event"]]
        records = answer["aggregated"]
        assert len(per_event) > 1
        assert all(
            len(base64.b64decode(r["data"])) + len(r["partition_key"].encode()) <= max_record_bytes for r in records
        )
        if max_record_bytes == 1200:
            assert len(records) > 1, "a small limit splits a submission into several records"
        python = [u for r in records for u in python_deaggregate(r)]
        assert all(u["aggregated"] for u in python)
        assert without_flags(python) == per_event
        node_out = node({"command": "deaggregate", "records": records})
        assert [without_flags(r["user_records"]) for r in node_out] == [
            without_flags(python_deaggregate(r)) for r in records
        ]


def test_python_and_node_read_user_records_of_every_kind_from_our_records(rust, node):
    users = user_records_of_every_kind()
    records = rust({"command": "aggregate", "max_record_bytes": 2000, "user_records": users})
    assert len(records) > 3
    assert sum(r["user_records"] for r in records) == len(users)
    python = [u for r in records for u in python_deaggregate(r)]
    assert without_flags(python) == users
    node_out = [u for r in node({"command": "deaggregate", "records": records}) for u in r["user_records"]]
    assert without_flags(node_out) == users
    assert [u["sub_sequence_number"] for u in node_out[:2]] == [0, 1]


def test_we_read_the_records_of_the_python_aggregator(rust):
    users = user_records_of_every_kind()
    aggregator = RecordAggregator(max_size=1500)
    records = []
    for u in users:
        full = aggregator.add_user_record(u["partition_key"], base64.b64decode(u["data"]), u["explicit_hash_key"])
        if full is not None:
            records.append(full)
    records.append(aggregator.clear_and_get())
    assert len(records) > 3
    kinesis_records = []
    for r in records:
        partition_key, _, data = r.get_contents()
        kinesis_records.append({"partition_key": partition_key, "data": b64(data)})
    out = rust({"command": "deaggregate", "records": kinesis_records})
    ours = [u for r in out for u in r["user_records"]]
    assert all(u["aggregated"] for u in ours)
    assert without_flags(ours) == users
    assert [u["sub_sequence_number"] for u in out[0]["user_records"]] == list(range(len(out[0]["user_records"])))


def test_we_read_the_records_of_the_node_aggregator(rust, node):
    users = user_records_of_every_kind()
    records = node({"command": "aggregate", "user_records": users})
    out = rust({"command": "deaggregate", "records": records})
    ours = [u for r in out for u in r["user_records"]]
    assert all(u["aggregated"] for u in ours)
    assert without_flags(ours) == users


def _framed(body: bytes) -> bytes:
    return MAGIC + body + hashlib.md5(body).digest()


NOT_AGGREGATED = {
    "plain JSON": b'{"event_id": "x"}',
    "empty": b"",
    "the magic alone": MAGIC,
    "the magic and 16 bytes": MAGIC + bytes(16),
    "a wrong MD5": MAGIC + b"\x0a\x01a\x1a\x05\x08\x00\x1a\x01x" + bytes(16),
    "a message protobuf refuses": _framed(b"\x1a\x05\x08"),
}

# A required field absent: Java's protobuf refuses the message, so the KCL
# returns the record whole, and so does this project; awslabs' Python library
# on protobuf 7 (upb does not check required fields) reads it with the field's
# default value (index 0, empty data) instead.
MISSING_REQUIRED = {
    "a record without its data": _framed(b"\x0a\x01a\x1a\x02\x08\x00"),
    "a record without its partition key index": _framed(b"\x0a\x01a\x1a\x03\x1a\x01x"),
}


@pytest.mark.parametrize("name", NOT_AGGREGATED)
def test_a_record_that_is_not_aggregated_comes_back_whole_as_python_returns_it(rust, name):
    record = {"partition_key": "outer", "data": b64(NOT_AGGREGATED[name])}
    (ours,) = rust({"command": "deaggregate", "records": [record]})
    python = python_deaggregate(record)
    assert len(python) == 1 and not python[0]["aggregated"]
    assert without_flags(ours["user_records"]) == without_flags(python) == [{**record, "explicit_hash_key": None}]
    assert ours["user_records"][0]["aggregated"] is False


@pytest.mark.parametrize("name", MISSING_REQUIRED)
def test_a_message_without_a_required_field_comes_back_whole_as_the_kcl_returns_it(rust, name):
    record = {"partition_key": "outer", "data": b64(MISSING_REQUIRED[name])}
    (ours,) = rust({"command": "deaggregate", "records": [record]})
    assert ours["user_records"] == [
        {**record, "explicit_hash_key": None, "sub_sequence_number": 0, "aggregated": False}
    ]
    (python,) = python_deaggregate(record)
    assert python["aggregated"] and python["partition_key"] == "a", "awslabs' Python reads it with defaults"


def test_the_toolbox_deaggregator_reads_as_ours_does(rust):
    """edr_tools.kpl (what make demo and the end-to-end tests read the stream
    with) gets the user records of our records, and decides what is not
    aggregated as the Rust deaggregator does."""
    users = user_records_of_every_kind()
    records = rust({"command": "aggregate", "max_record_bytes": 2000, "user_records": users})
    toolbox = [{**u, "data": b64(u["data"])} for r in records for u in kpl.user_records(base64.b64decode(r["data"]))]
    assert toolbox == users
    for data in [*NOT_AGGREGATED.values(), *MISSING_REQUIRED.values()]:
        assert kpl.user_records(data) is None
        assert kpl.events(data) == [data]
