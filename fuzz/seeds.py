#!/usr/bin/env python3
"""Writes the fuzz seed corpora: fuzz/corpus/body/ from the bodies in events/*.json,
plus each body decoded from base64: the valid submissions and every invalid kind;
fuzz/corpus/deaggregate/ from aggregated records written here by hand (protobuf
and MD5 of the KPL format, docs/contract.md), and records that are not aggregated."""

import base64
import binascii
import hashlib
import json
from pathlib import Path

root = Path(__file__).resolve().parent.parent
out = root / "fuzz" / "corpus" / "body"
out.mkdir(parents=True, exist_ok=True)
seen = 0
for path in sorted((root / "events").glob("*.json")):
    records = json.loads(path.read_text())["Records"]
    for record in records[:50]:
        body = record["body"].encode()
        variants = [body]
        try:
            variants.append(base64.b64decode(body, validate=True))
        except (binascii.Error, ValueError):
            pass
        for data in variants:
            (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
            seen += 1
# What sensors send that the sample events do not hold: lone and paired
# surrogate escapes, NUL, zone ids, and the event-level defects that
# INVALID_EVENTS=drop-event salvages.
HOSTILE = (
    r'{"submission_id":"4a1b3c5d-0000-4000-8000-000000000001","device_id":"9f8e7d6c-0000-4000-8000-000000000002",'
    r'"time_created":"2021-03-29T12:06:09\u002e5","events":{"new_process":[{"cmdl":"C:\\x\udc00\ud83d\ude00\u0000",'
    r'"user":"\ud800"},{"cmdl":null,"user":"u"},7],"network_connection":[{"source_ip":"fe80::1%12",'
    r'"destination_ip":"fe80::1%eth0","destination_port":443},{"source_ip":"::1","destination_ip":"not-an-ip",'
    r'"destination_port":1},{"source_ip":"::1","destination_ip":"::1","destination_port":70000}]}}'
)
# Zone ids (docs/contract.md): what Windows and Linux write is valid, any other
# text (what a hostile sensor writes for a consumer that builds a query or a
# command from it) is invalid_source_ip / invalid_destination_ip.
ZONES = (
    ["12", "0", "4294967295", "eth0", "enp0s31f6.100", "br-1a2b3c4d5e6f", "veth_A-1.2", "abcdefghijklmno"]
    + ["';DROP--", "$(id)", "`id`", "a;b", "a/b", "a b", "eth0\n", '"x', "4294967296", "00000000001"]
    + ["abcdefghijklmnop", ".", "..", ""]
)
SEEDS = [HOSTILE]
for zone in ZONES:
    connection = {"source_ip": f"fe80::1%{zone}", "destination_ip": f"fe80::2%{zone}", "destination_port": 443}
    doc = json.loads(HOSTILE)
    doc["events"]["network_connection"] = [
        connection,
        {"source_ip": "::1", "destination_ip": "::1", "destination_port": 1},
    ]
    SEEDS.append(json.dumps(doc))
for seed in SEEDS:
    for data in (seed.encode(), base64.b64encode(seed.encode())):
        (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
        seen += 1
print(f"{out}: {seen} seeds")


def varint(n):
    out = bytearray()
    while True:
        out.append(n & 0x7F | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def field(tag, payload):
    """A length-delimited field (every field of the format but the indices)."""
    return varint(tag << 3 | 2) + varint(len(payload)) + payload


def aggregated(pks, ehks, records):
    """records: (pk index, ehk index or None, data); the KPL format's bytes."""
    body = b"".join(field(1, k.encode()) for k in pks) + b"".join(field(2, k.encode()) for k in ehks)
    for pk, ehk, data in records:
        entry = varint(1 << 3) + varint(pk) + (varint(2 << 3) + varint(ehk) if ehk is not None else b"")
        body += field(3, entry + field(3, data))
    return b"\xf3\x89\x9a\xc2" + body + hashlib.md5(body).digest()


out = root / "fuzz" / "corpus" / "deaggregate"
out.mkdir(parents=True, exist_ok=True)
record = json.dumps({"event_id": "x", "sequence": 0}).encode()
seeds = [
    aggregated(["pk"], [], [(0, None, record), (0, None, b"")]),
    aggregated(
        ["a", "b"], ["0", "340282366920938463463374607431768211455"], [(1, 0, b"x"), (0, 1, record), (0, None, b"y")]
    ),
    aggregated(["a"], [], [(3, None, b"index past the table")]),
    aggregated(["a"], [], []),
    aggregated([], [], [(0, None, b"")])[:-1] + b"\x00",
    record,
    b"\xf3\x89\x9a\xc2",
]
for data in seeds:
    (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
print(f"{out}: {len(seeds)} seeds")
