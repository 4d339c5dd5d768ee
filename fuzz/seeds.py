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
print(f"{out}: {seen} seeds")
