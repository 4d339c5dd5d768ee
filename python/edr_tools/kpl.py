"""The user records of a Kinesis record in the KPL aggregated format
(RECORD_FORMAT=aggregated, docs/contract.md), standard library only: what
`make demo`, the end-to-end tests and their fault proxy read the stream with.
It decides as src/aggregate/deaggregate.rs does (and the KCL): a record
without the magic, with a wrong MD5 or a message that does not parse is not
aggregated. tests/compat proves the Rust deaggregator against awslabs'
libraries; tests/compat/test_kpl_compat.py this one against the Rust aggregator's
bytes."""

from __future__ import annotations

import hashlib

MAGIC = b"\xf3\x89\x9a\xc2"
DIGEST = 16


class NotAggregated(ValueError):
    pass


def _varint(buf: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(buf) or shift > 63:
            raise NotAggregated("truncated varint")
        byte = buf[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _fields(buf: bytes):
    """(field number, wire type, value) of a protobuf message: an int, or bytes."""
    at = 0
    while at < len(buf):
        key, at = _varint(buf, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(buf, at)
        elif wire == 2:
            length, at = _varint(buf, at)
            if at + length > len(buf):
                raise NotAggregated("truncated field")
            value, at = buf[at : at + length], at + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, at = buf[at : at + size], at + size
        else:
            raise NotAggregated(f"wire type {wire}")
        yield number, wire, value


def user_records(data: bytes) -> list[dict] | None:
    """[{"partition_key", "explicit_hash_key", "data"}] of an aggregated record,
    in order; None if `data` is not one."""
    body = data[len(MAGIC) : len(data) - DIGEST]
    if not data.startswith(MAGIC) or len(data) - len(MAGIC) <= DIGEST:
        return None
    if hashlib.md5(body).digest() != data[-DIGEST:]:
        return None
    try:
        keys, hash_keys, records = [], [], []
        for number, wire, value in _fields(body):
            if wire == 2 and number == 1:
                keys.append(value.decode("utf-8", "replace"))
            elif wire == 2 and number == 2:
                hash_keys.append(value.decode("utf-8", "replace"))
            elif wire == 2 and number == 3:
                record = {n: v for n, w, v in _fields(value) if (n, w) in ((1, 0), (2, 0), (3, 2))}
                if 1 not in record or 3 not in record:
                    return None  # a required field absent
                records.append(record)
            elif number in (1, 2, 3):
                return None  # a wrong wire type
    except NotAggregated:
        return None
    out = []
    for r in records:
        if r[1] >= len(keys) or (2 in r and r[2] >= len(hash_keys)):
            raise ValueError("an aggregated record names a key past its table")
        out.append(
            {"partition_key": keys[r[1]], "explicit_hash_key": hash_keys[r[2]] if 2 in r else None, "data": r[3]}
        )
    return out


def events(data: bytes) -> list[bytes]:
    """The event records a Kinesis record carries: its user records, or itself."""
    users = user_records(data)
    return [u["data"] for u in users] if users is not None else [data]
