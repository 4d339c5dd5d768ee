"""Replaying the rejects queue after a settings fix (docs/operations.md, "The
day after"), with edr_tools.replay, through the real function on MiniStack.

A function with MAX_EVENTS_PER_SUBMISSION=3 rejects the sensors' 6-10-event
submissions (`too_many_events`) and one with a bad device id
(`invalid_device_id`). The fix is a function that accepts them (here a second
deployment with the default limit): replaying only `too_many_events` into
its queue publishes those submissions whole and in order, with the
`event_id`s their bodies always had; the other reject stays where it was,
visible, and nothing is refused again.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from edr_tools import fleet as sensor_fleet
from edr_tools import replay


def test_replaying_the_rejects_queue_after_a_fix_publishes_the_submissions_with_their_ids(deploy):
    strict = deploy(env={"MAX_EVENTS_PER_SUBMISSION": "3"})
    fixed = deploy()
    rng = random.Random(2200)
    devices = sensor_fleet.make_fleet(rng, 2)
    start = datetime.now(UTC) - timedelta(minutes=1)
    entries = []
    for i, broken in enumerate([None, None, "device_id"]):
        sub = sensor_fleet.make_submission(rng, devices[i % 2], start + timedelta(seconds=i), broken=broken)
        entries.append({"submission": sub, "body": sensor_fleet.encode(sub), "broken": broken})
    strict.send(entries)
    strict.wait_drained()
    assert strict.records() == [], "the strict function publishes none of them"

    outcome = replay.replay(strict.aws.sqs, strict.rejects_url, fixed.queue_url, reasons={"too_many_events"})
    assert outcome.replayed == {"too_many_events": 2}, outcome.summary()
    assert (outcome.not_matching, outcome.send_failed, outcome.delete_failed) == (1, [], [])
    fixed.wait_drained()

    by_sid = sensor_fleet.group_by_submission(fixed.records())
    for e in entries[:2]:
        sub = e["submission"]
        problems = sensor_fleet.check_submission(sub, by_sid.get(sub["submission_id"]), body=e["body"])
        assert problems == [], "published whole, in order, with the ids of its body"
    assert len(by_sid) == 2
    assert fixed.rejects() == [], "nothing replayed is refused again"
    (left,) = strict.rejects()
    assert left["Body"] == entries[2]["body"]
    assert left["MessageAttributes"]["reason"]["StringValue"] == "invalid_device_id"
