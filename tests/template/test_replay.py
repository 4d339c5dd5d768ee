"""edr_tools.replay (docs/operations.md, "The day after") against an SQS fake
that keeps what the tool relies on: a received message is hidden until it is
deleted or made visible again, each receive hands out a new receipt handle,
and a send can be refused. The end-to-end case, through the real function on
MiniStack, is tests/e2e/test_replay.py."""

from __future__ import annotations

import hashlib
import itertools

import pytest

from edr_tools import replay

REJECTS = "https://sqs.eu-west-1.amazonaws.com/123456789012/rejects"
SUBMISSIONS = "https://sqs.eu-west-1.amazonaws.com/123456789012/submissions"


class FakeSqs:
    def __init__(self):
        self.queues: dict[str, list[dict]] = {REJECTS: [], SUBMISSIONS: [], SUBMISSIONS + ".fifo": []}
        self.ids = itertools.count()
        self.refuse: set[str] = set()  # bodies the target refuses
        self.sends = 0
        self.on_send = lambda url, body: None  # what "the function" does with a sent body

    def put(self, url: str, body: str, **attributes: str) -> str:
        message_id = f"m{next(self.ids)}"
        attrs = {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}
        self.queues[url].append(
            {"MessageId": message_id, "Body": body, "MessageAttributes": attrs, "visible": True, "handle": None}
        )
        return message_id

    def receive_message(self, *, QueueUrl, MaxNumberOfMessages, MessageAttributeNames, **_):
        assert MessageAttributeNames == ["All"], "the reason attribute must be read"
        out = []
        for m in [m for m in self.queues[QueueUrl] if m["visible"]][:MaxNumberOfMessages]:
            m["visible"], m["handle"] = False, f"h{next(self.ids)}"
            out.append({k: m[k] for k in ("MessageId", "Body", "MessageAttributes")} | {"ReceiptHandle": m["handle"]})
        return {"Messages": out} if out else {}

    def send_message(self, *, QueueUrl, MessageBody, **extra):
        self.sends += 1
        assert self.sends < 100, "the run does not end"
        if MessageBody in self.refuse:
            raise RuntimeError("AccessDenied")
        self.queues[QueueUrl].append(
            {"MessageId": f"m{next(self.ids)}", "Body": MessageBody, "visible": True, "handle": None, **extra}
        )
        self.on_send(QueueUrl, MessageBody)

    def _by_handle(self, url, handle):
        return next((m for m in self.queues[url] if m["handle"] == handle), None)

    def delete_message_batch(self, *, QueueUrl, Entries):
        for e in Entries:
            self.queues[QueueUrl].remove(self._by_handle(QueueUrl, e["ReceiptHandle"]))
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}

    def change_message_visibility_batch(self, *, QueueUrl, Entries):
        for e in Entries:
            assert e["VisibilityTimeout"] == 0
            self._by_handle(QueueUrl, e["ReceiptHandle"])["visible"] = True

    def bodies(self, url: str) -> list[str]:
        return [m["Body"] for m in self.queues[url]]


@pytest.fixture
def sqs() -> FakeSqs:
    return FakeSqs()


def test_replays_the_matching_bodies_unchanged_and_leaves_the_others_visible(sqs):
    sqs.put(REJECTS, "big-1", reason="too_many_events", detail="600 events", source_message_id="a")
    sqs.put(REJECTS, "bad-id", reason="invalid_device_id", detail="-", source_message_id="b")
    sqs.put(REJECTS, "big-2", reason="too_many_events", detail="700 events", source_message_id="c")
    sqs.put(REJECTS, "dropped", reason="null_value", dropped_events="1:null_value", source_message_id="d")
    out = replay.replay(sqs, REJECTS, SUBMISSIONS, reasons={"too_many_events", "null_value"}, wait_seconds=0)
    assert sqs.bodies(SUBMISSIONS) == ["big-1", "big-2", "dropped"]
    assert all(set(m) == {"MessageId", "Body", "visible", "handle"} for m in sqs.queues[SUBMISSIONS]), (
        "the rejects attributes are not forwarded"
    )
    assert sqs.bodies(REJECTS) == ["bad-id"]
    assert all(m["visible"] for m in sqs.queues[REJECTS]), "what the run leaves is visible again"
    assert out.replayed == {"too_many_events": 2, "null_value": 1}
    assert (out.partly_published, out.not_matching) == (1, 1)
    assert "1 of them were published before without some events" in out.summary()


def test_a_body_refused_again_is_not_replayed_twice_in_one_run(sqs):
    sqs.put(REJECTS, "still-bad", reason="invalid_destination_ip")
    # The function refuses it again: a new message with the same body.
    sqs.on_send = lambda url, body: sqs.put(REJECTS, body, reason="invalid_destination_ip")
    out = replay.replay(sqs, REJECTS, SUBMISSIONS, wait_seconds=0)
    assert sqs.bodies(SUBMISSIONS) == ["still-bad"]
    assert sqs.bodies(REJECTS) == ["still-bad"], "the new rejection stays"
    assert (sum(out.replayed.values()), out.already_replayed) == (1, 1)


def test_a_refused_send_keeps_the_message_in_the_source_queue(sqs):
    sqs.put(REJECTS, "ok")
    refused = sqs.put(REJECTS, "refused")
    sqs.refuse.add("refused")
    out = replay.replay(sqs, REJECTS, SUBMISSIONS, wait_seconds=0)
    assert sqs.bodies(SUBMISSIONS) == ["ok"]
    assert sqs.bodies(REJECTS) == ["refused"] and sqs.queues[REJECTS][0]["visible"]
    assert out.send_failed == [refused]
    assert "NOT replayed" in out.summary()


def test_a_dry_run_sends_and_deletes_nothing(sqs):
    for n in range(12):
        sqs.put(REJECTS, f"body-{n}", reason="too_many_events")
    out = replay.replay(sqs, REJECTS, SUBMISSIONS, dry_run=True, wait_seconds=0)
    assert sqs.bodies(SUBMISSIONS) == []
    assert len(sqs.queues[REJECTS]) == 12 and all(m["visible"] for m in sqs.queues[REJECTS])
    assert len(out.dry_run) == 12


def test_max_bounds_the_run(sqs):
    for n in range(25):
        sqs.put(REJECTS, f"body-{n}")
    out = replay.replay(sqs, REJECTS, SUBMISSIONS, limit=12, wait_seconds=0)
    assert sqs.bodies(SUBMISSIONS) == [f"body-{n}" for n in range(12)]
    assert len(sqs.queues[REJECTS]) == 13 and all(m["visible"] for m in sqs.queues[REJECTS])
    assert sum(out.replayed.values()) == 12


def test_a_fifo_target_gets_one_group_and_content_deduplication(sqs):
    sqs.put(REJECTS, "a")
    with pytest.raises(ValueError, match="group-id"):
        replay.replay(sqs, REJECTS, SUBMISSIONS + ".fifo", wait_seconds=0)
    replay.replay(sqs, REJECTS, SUBMISSIONS + ".fifo", group_id="replay", wait_seconds=0)
    (sent,) = sqs.queues[SUBMISSIONS + ".fifo"]
    assert sent["MessageGroupId"] == "replay"
    assert sent["MessageDeduplicationId"] == hashlib.sha256(b"a").hexdigest()


def test_a_dead_letter_queue_replays_without_its_resume_marker(sqs):
    """From the dead-letter queue (no `reason`), every message, and the
    marker left behind: the copy starts at the submission's first event."""
    sqs.put(REJECTS, "copy", edr_resume_from="v2/4/1/1048576/00")
    out = replay.replay(sqs, REJECTS, SUBMISSIONS, wait_seconds=0)
    (sent,) = sqs.queues[SUBMISSIONS]
    assert sent["Body"] == "copy" and "MessageAttributes" not in sent
    assert out.replayed == {"-": 1}


def test_the_region_comes_from_the_queue_url():
    assert replay.region_of(REJECTS) == "eu-west-1"
    assert replay.region_of("http://localhost:4566/000000000000/q") is None


def test_the_command_line_of_the_runbook(sqs, monkeypatch, capsys):
    """docs/operations.md's commands: `--reason`, `--dry-run`, `--max`; the
    client is boto3's, in the queue URL's region; exit 1 when a send failed."""
    import sys
    import types

    regions = []
    boto3 = types.SimpleNamespace(client=lambda service, region_name: regions.append(region_name) or sqs)
    monkeypatch.setitem(sys.modules, "boto3", boto3)
    for n in range(3):
        sqs.put(REJECTS, f"big-{n}", reason="too_many_events")
    sqs.put(REJECTS, "bad", reason="invalid_device_id")
    base = ["--from-queue", REJECTS, "--to-queue", SUBMISSIONS, "--reason", "too_many_events"]
    assert replay.main([*base, "--dry-run"]) == 0
    assert "3 message(s) would be replayed" in capsys.readouterr().out
    assert replay.main([*base, "--max", "1"]) == 0
    assert sqs.bodies(SUBMISSIONS) == ["big-0"]
    sqs.refuse.add("big-2")
    assert replay.main(base) == 1
    assert sqs.bodies(SUBMISSIONS) == ["big-0", "big-1"]
    assert sorted(sqs.bodies(REJECTS)) == ["bad", "big-2"]
    assert regions == ["eu-west-1"] * 3
