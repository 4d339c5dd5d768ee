#!/usr/bin/env python3
"""Writes the fuzz seed corpus (fuzz/corpus/body/) from the bodies in events/*.json,
plus each body decoded from base64: the valid submissions and every invalid kind."""

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
for data in (HOSTILE.encode(), base64.b64encode(HOSTILE.encode())):
    (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
    seen += 1
print(f"{out}: {seen} seeds")
