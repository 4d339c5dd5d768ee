"""INVALID_EVENTS=drop-event under the real function, through SQS and the event
source mapping.

An event-level defect (a null cmdl, a "not-an-ip" destination, a port out of
range) drops only that event: the other events of its submission are
published with their own `sequence` (gaps where the dropped ones were) and
`event_id`, `event_count` is the number published, and the original body goes
to the rejects queue once, with `dropped_events`. A submission-level defect
(here a bad device_id) still rejects the whole submission. Clean submissions
are not touched. The function counts the dropped events (`events_dropped` in
its summary line, the EMF metric `EventsDropped`, also by `Reason`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import uuid
from datetime import UTC, datetime, timedelta

from edr_tools import fleet as sensor_fleet
from helpers import answered_invocations, function_invocations

# The function's event_id, spelled out as the contract gives it.
EVENT_ID_NAMESPACE = uuid.UUID("112ae2df-81a4-48c5-9844-96005350b137")

# Sending order: clean submissions around the defective ones, one of them
# with two defects, and one whose device_id is not a UUID.
KINDS = [None, "cmdl", None, "destination_ip", "destination_port", None, "cmdl+port", "device_id", None]


def entry(rng: random.Random, device: sensor_fleet.Device, created: datetime, kind: str | None) -> dict:
    broken = "cmdl" if kind == "cmdl+port" else kind
    sub = sensor_fleet.make_submission(rng, device, created, broken=broken)
    if kind == "cmdl+port":
        connections = sub["events"]["network_connection"]  # make_submission writes at least one
        connections[-1]["destination_port"] = sensor_fleet.PORT_OUT_OF_RANGE
    return {"submission": sub, "body": sensor_fleet.encode(sub), "broken": kind, "device": device.name}


def make_entries(seed: int) -> list[dict]:
    rng = random.Random(seed)
    devices = sensor_fleet.make_fleet(rng, 3)
    start = datetime.now(UTC) - timedelta(minutes=5)
    return [
        entry(rng, devices[i % len(devices)], start + timedelta(seconds=7 * i), kind) for i, kind in enumerate(KINDS)
    ]


def python_event_id(body: str, device_id: str, submission_id: str, sequence: int) -> str:
    """uuid5(NS, f"{device_id}/{submission_id}/{sha256(document)}/{sequence}"), the
    document being the bytes the body carries: base64-decoded, or a JSON body
    without the ASCII blanks around it."""
    text = body.strip(" \t\n\r\x0c")
    document = text.encode() if text.startswith("{") else base64.b64decode(text)
    name = f"{device_id}/{submission_id}/{hashlib.sha256(document).hexdigest()}/{sequence}"
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, name))


def dropped_events(defects: dict[int, str]) -> str:
    return ",".join(f"{sequence}:{reason}" for sequence, reason in sorted(defects.items()))


def test_drop_event_publishes_the_valid_events_and_rejects_the_body_once(deploy):
    stack = deploy(env={"INVALID_EVENTS": "drop-event"})
    entries = stack.send(make_entries(seed=1300))
    # A plain-JSON body with blanks around it: its event ids hash the JSON without them.
    plain = entry(random.Random(1301), sensor_fleet.make_fleet(random.Random(1302), 1)[0], datetime.now(UTC), "cmdl")
    plain["body"] = " \n" + sensor_fleet.encode(plain["submission"], plain=True) + "\n\t "
    (plain["message_id"],) = stack.send_bodies([plain["body"]])
    entries.append(plain)
    stack.wait_drained()

    by_sid = sensor_fleet.group_by_submission(stack.records())
    rejects = stack.rejects()
    rejects_by_body: dict[str, list[dict]] = {}
    for message in rejects:
        rejects_by_body.setdefault(message["Body"], []).append(message)

    defective = [e for e in entries if e["broken"] in sensor_fleet.EVENT_LEVEL_KINDS | {"cmdl+port"}]
    assert len(defective) == 5
    total_dropped: dict[str, int] = {}
    for e in entries:
        sub, body = e["submission"], e["body"]
        pub = by_sid.get(sub["submission_id"])
        if e["broken"] is None:
            assert sensor_fleet.check_submission(sub, pub, body=body) == [], "a clean submission arrives whole"
            assert body not in rejects_by_body
            continue
        if e["broken"] == "device_id":
            continue  # below
        defects = sensor_fleet.event_defects(sub)
        expected_count = {"cmdl+port": 2}.get(e["broken"], 1)
        assert len(defects) == expected_count, (e["broken"], defects)
        n = len(sensor_fleet.expected_events(sub))
        kept = [i for i in range(n) if i not in defects]
        assert sensor_fleet.check_submission(sub, pub, body=body, dropped=defects) == [], e["broken"]
        # Spelled out: the original sequences, gaps where the bad events were,
        # event_count the number published, each record once.
        assert [r["sequence"] for r in pub.records] == kept
        assert {r["event_count"] for r in pub.records} == {len(kept)}
        # The body, unchanged, once in the rejects queue, naming what was dropped.
        (message,) = rejects_by_body.get(body, [])
        attrs = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
        assert attrs["reason"] == defects[min(defects)], e["broken"]
        assert attrs["dropped_events"] == dropped_events(defects)
        assert attrs["source_message_id"] == e["message_id"]
        assert attrs["detail"]
        for reason in defects.values():
            total_dropped[reason] = total_dropped.get(reason, 0) + 1

    assert total_dropped == {"null_value": 3, "invalid_destination_ip": 1, "invalid_destination_port": 2}

    # event_id as Python computes it, for a record of a clean submission, of a
    # defective one after its gap, and of the plain-JSON body.
    clean = next(e for e in entries if e["broken"] is None)
    port = next(e for e in entries if e["broken"] == "destination_port")
    for e, position in ((clean, 0), (port, -1), (plain, -1)):
        sub = e["submission"]
        record = by_sid[sub["submission_id"]].records[position]
        assert record["event_id"] == python_event_id(
            e["body"], sub["device_id"], sub["submission_id"], record["sequence"]
        )

    # The submission-level defect rejects the whole submission.
    bad_device = next(e for e in entries if e["broken"] == "device_id")
    assert bad_device["submission"]["submission_id"] not in by_sid, "nothing of it published"
    (message,) = rejects_by_body[bad_device["body"]]
    attrs = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attrs["reason"] == "invalid_device_id"
    assert "dropped_events" not in attrs
    assert len(rejects) == len(defective) + 1, "nothing else in the rejects queue"
    assert set(by_sid) == {e["submission"]["submission_id"] for e in entries if e["broken"] != "device_id"}

    # The function counted what it dropped: the summary lines and the EMF
    # documents of its invocations (CloudWatch Logs may lag a little).
    want_total = sum(total_dropped.values())
    _, summaries = answered_invocations(stack)
    invocations = function_invocations(stack.aws.logs, stack.function)
    emf = [line for inv in invocations for line in inv.lines if "_aws" in line]
    logged = sum(s.get("events_dropped", 0) for s in summaries)
    assert logged == want_total, [json.dumps(s) for s in summaries]
    assert sum(d.get("EventsDropped", 0) for d in emf if "Reason" not in d) == want_total
    by_reason: dict[str, int] = {}
    for d in emf:
        if "Reason" in d and "EventsDropped" in d:
            by_reason[d["Reason"]] = by_reason.get(d["Reason"], 0) + d["EventsDropped"]
    assert by_reason == total_dropped
    assert sum(d.get("SubmissionsRejected", 0) for d in emf if "Reason" not in d) == 1
