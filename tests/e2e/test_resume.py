"""Resume on redelivery (RESUME=resend, the default; docs/guarantees.md, 9)
under the real function, through SQS and the event source mapping.

A valid submission from a standard queue that was published only part-way in
an invocation, at least one of its records acknowledged there, goes back to
its own queue with the message attribute `edr_resume_from` =
"v3/{next}/{hop}/{accounted_limit}/{hash_key}/{mac}" (docs/contract.md) and is
acknowledged; the copy is published from its first event whose sequence is at
least `next`. A marker the function did not sign is ignored. Kinesis sits
behind the tests' fault proxy (edr_tools.fault_proxy), which makes it stop a
submission part-way in two ways:

- slow answers: the records are written at once, the answer comes late, so an
  invocation publishes a few events of each submission (strict ordering: one
  round trip per event) and the deadline abandons the call in flight. A
  submission of 30 events then needs more deliveries than the dead-letter
  queue's maxReceiveCount allows one message, and finishes all the same;
- individually failed entries: sequence 3 of every submission fails
  MAX_ATTEMPTS times (InternalFailure), besides some records throttled once.

Every event reaches the stream; the only duplicates are the in-doubt records
of calls abandoned at the deadline (strict), or the records acknowledged after
the first failed one (relaxed); the function's logs show the copies resuming;
nothing is redelivered through batchItemFailures and the dead-letter queue
stays empty. A FIFO queue is never resumed this way: the same fault sends its
submissions back through batchItemFailures, and they are published again from
event 0.

With RECORD_FORMAT=aggregated (the stream read deaggregated, edr_tools.kpl)
a fleet submission, even of 30 events, is one Kinesis record, written or
refused whole, so it is never published part-way and nothing resumes: the
slow-Kinesis case publishes each submission in its first delivery, in one
round trip, with nothing abandoned or repeated; the FIFO case redelivers the
failed record's submission whole and publishes every event once. The
part-way case has no aggregated twin here: a record of a fleet submission
fails whole, and a submission over one record (KINESIS_MAX_RECORD_SIZE_KIB,
at least 1 MiB) does not fit an SQS message; resuming at the first event of
the first unacknowledged aggregated record is proven in tests/resume.rs.

The outcomes are bounded by the proxy, not by the machine: a slower machine
only needs more deliveries.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from edr_tools import fleet as sensor_fleet
from edr_tools import kpl
from edr_tools.fault_proxy import THROUGHPUT
from helpers import answered_invocations, assert_record_format, esm_log_lines, fleet, function_invocations

RESUMING = "resuming a partly published submission"
IGNORED = "ignoring a resume marker this function did not write"
NOT_SENT_BACK = "could not send a partly published submission back"

# The slow-Kinesis case: every answer comes SLOW_ANSWER_S after the records
# were written, the function may run FUNCTION_TIMEOUT seconds and stops
# publishing DEADLINE_MARGIN_MS before. Strict ordering makes one round trip
# per event, so one invocation acknowledges fewer than
# FUNCTION_TIMEOUT / SLOW_ANSWER_S = 7.5 events of a submission, and one of
# LARGE_EVENTS needs at least 5 deliveries, more than MaxReceiveCount.
FUNCTION_TIMEOUT = 3
VISIBILITY_TIMEOUT = 4
SLOW_ANSWER_S = 0.4
LARGE_EVENTS = 30
MAX_RECEIVE_COUNT = 2

FORMATS = ["per-event", "aggregated"]

FAST_GIVE_UP = {"MAX_ATTEMPTS": "2", "RETRY_BASE_DELAY_MS": "10", "RETRY_MAX_DELAY_MS": "20"}


@pytest.fixture
def dead_letter_queue(aws):
    """Gives a stack's source queue a dead-letter queue (FIFO for a FIFO
    source) after `max_receive_count` receives; returns its URL."""
    created = []

    def attach(stack, max_receive_count: int) -> str:
        fifo = stack.queue_url.endswith(".fifo")
        attributes = {"FifoQueue": "true"} if fifo else {}
        url = aws.sqs.create_queue(QueueName=f"{stack.name}-dlq" + (".fifo" if fifo else ""), Attributes=attributes)[
            "QueueUrl"
        ]
        created.append(url)
        arn = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": str(max_receive_count)})
        aws.sqs.set_queue_attributes(QueueUrl=stack.queue_url, Attributes={"RedrivePolicy": policy})
        return url

    yield attach
    for url in created:
        try:
            aws.sqs.delete_queue(QueueUrl=url)
        except Exception as e:  # noqa: BLE001 - best effort; the emulator goes at session end
            print(f"teardown of {url}: {e}")


class StubbornSequence:
    """Which entries of a PutRecords call fail: sequence `sequence` of every
    submission with InternalFailure its first `times` sends (MAX_ATTEMPTS, so
    the invocation gives up on it after the records before it were
    acknowledged), and besides that a share of the records after it throttled
    the first time they are sent (retried within the invocation). Not those
    before it: in relaxed mode a throttled record before it would become the
    lane's first failed record, its retry would carry the stubborn one along,
    and that one would run out of injected failures before it ran out of
    attempts (published in one invocation, nothing to resume)."""

    def __init__(self, seed: int, sequence: int = 3, times: int = 2, share: float = 0.2):
        self.rng, self.sequence, self.times, self.share = random.Random(seed), sequence, times, share
        self.sends = Counter()

    def __call__(self, _index: int, record: dict) -> str | None:
        # An aggregated record carries a whole submission: it counts as its
        # events' sends, fails as `sequence`, and is throttled as its first event.
        keys = [
            (d["submission_id"], d["sequence"]) for d in map(json.loads, kpl.events(base64.b64decode(record["Data"])))
        ]
        sends = {key: self.sends[key] for key in keys}
        self.sends.update(keys)
        for key in keys:
            if key[1] == self.sequence:
                return "InternalFailure" if sends[key] < self.times else None
        late = keys[0][1] > self.sequence
        return THROUGHPUT if late and sends[keys[0]] == 0 and self.rng.random() < self.share else None


def log_lines(stack) -> list[dict]:
    """The function's JSON log lines, every invocation's, in time order, once
    every invocation's summary is out (MiniStack may hold lines back:
    helpers.answered_invocations)."""
    answered_invocations(stack)
    lines = [line for inv in function_invocations(stack.aws.logs, stack.function) for line in inv.lines]
    return sorted(lines, key=lambda line: line.get("timestamp", ""))


def summaries(stack) -> list[dict]:
    return [line for line in log_lines(stack) if line.get("message") == "batch processed"]


def resume_points(lines: list[dict]) -> dict[str, list[int]]:
    """Per submission id, where each of its copies resumed, in time order."""
    points: dict[str, list[int]] = {}
    for line in lines:
        if line.get("message") == RESUMING:
            points.setdefault(line["submission_id"], []).append(line["resume_from"])
    return points


def duplicates(stack) -> Counter:
    """(submission id, sequence) of every record on the stream that repeats an
    event_id already there, with how many times it repeats."""
    seen = Counter(
        (r["data"]["event_id"], r["data"]["submission_id"], r["data"]["sequence"])
        for r in stack.records()
        if isinstance(r["data"], dict)
    )
    return Counter({(sid, seq): n - 1 for (_, sid, seq), n in seen.items() if n > 1})


def retried_batches(emulator, stack) -> int:
    """Batches in which the function reported messages in batchItemFailures."""
    return sum(1 for line in esm_log_lines(emulator, stack.function) if "partial failures" in line)


def assert_every_event_published(stack, entries, copies="first"):
    by_sid = sensor_fleet.group_by_submission(stack.records())
    problems = []
    for e in entries:
        sid = e["submission"]["submission_id"]
        problems += sensor_fleet.check_submission(e["submission"], by_sid.get(sid), copies=copies, body=e["body"])
    assert problems == []


def large_submissions(seed: int, count: int, events: int) -> list[dict]:
    rng = random.Random(seed)
    devices = sensor_fleet.make_fleet(rng, count)
    start = datetime.now(UTC) - timedelta(minutes=5)
    out = []
    for i, device in enumerate(devices):
        sub = sensor_fleet.make_submission(rng, device, start + timedelta(seconds=7 * i), n_events=events)
        out.append({"submission": sub, "body": sensor_fleet.encode(sub), "broken": None, "device": device.name})
    return out


@pytest.mark.parametrize("record_format", FORMATS)
def test_submissions_larger_than_an_invocation_resume_until_published(
    record_format, deploy, kinesis_proxy, emulator, dead_letter_queue
):
    """Slow Kinesis: each invocation publishes a few events of each submission
    before the deadline abandons the call in flight. Each copy resumes at its
    first unacknowledged event, so a submission that needs more deliveries
    than MaxReceiveCount finishes without reaching the dead-letter queue, and
    the only duplicates are the in-doubt records of the abandoned calls.
    Aggregated, the same submissions are one record each, one round trip: all
    published in their first delivery, nothing resumed, abandoned or repeated."""
    stack = deploy(
        env={
            "AWS_ENDPOINT_URL_KINESIS": kinesis_proxy.endpoint,
            "KINESIS_CALL_TIMEOUT_MS": "2000",
            "DEADLINE_MARGIN_MS": "500",
            "RECORD_FORMAT": record_format,
        },
        timeout=FUNCTION_TIMEOUT,
        visibility_timeout=VISIBILITY_TIMEOUT,
    )
    dlq = dead_letter_queue(stack, MAX_RECEIVE_COUNT)
    kinesis_proxy.slow_responses(SLOW_ANSWER_S)
    entries = stack.send(large_submissions(seed=1400, count=3, events=LARGE_EVENTS))
    stack.wait_drained(timeout=90)

    assert_every_event_published(stack, entries)
    lines = log_lines(stack)
    points = resume_points(lines)
    aggregated = record_format == "aggregated"
    for e in entries:
        sid = e["submission"]["submission_id"]
        resumes = points.get(sid, [])
        if aggregated:
            assert resumes == [], f"{sid}: one record, yet resumed at {resumes}"
            continue
        # Bounded by the proxy: at most FUNCTION_TIMEOUT / SLOW_ANSWER_S events a delivery.
        assert 1 + len(resumes) > MAX_RECEIVE_COUNT, f"{sid}: {1 + len(resumes)} deliveries"
        assert resumes == sorted(resumes) and 0 < resumes[0] and resumes[-1] < LARGE_EVENTS, resumes
    # In doubt: a call abandoned at the deadline may have written its record
    # (the proxy writes it at once), and the copy sends it again. Strict
    # ordering keeps one record of a submission in flight, so each abandoned
    # call repeats at most one record per submission, the copy's first.
    abandoned = [
        line
        for line in lines
        if line.get("message", "").startswith("submission not fully published")
        and line.get("error_code") == "DeadlineReached"
    ]
    repeated = duplicates(stack)
    assert sum(repeated.values()) <= len(abandoned), (repeated, len(abandoned))
    at_resume_points = {(sid, p) for sid, ps in points.items() for p in ps}
    assert set(repeated) <= at_resume_points, "a duplicate that is not the in-doubt record of a copy"
    assert not [line for line in lines if NOT_SENT_BACK in line.get("message", "")]
    if aggregated:
        assert not abandoned and not repeated, (len(abandoned), repeated)
        assert sum(s["resent"] for s in summaries(stack)) == 0
        assert_record_format(record_format, kinesis_proxy, stack.records())
    else:
        assert sum(s["resent"] for s in summaries(stack)) >= len(entries)
    assert sensor_fleet.queue_depth(stack.aws.sqs, dlq) == 0, "a submission reached the dead-letter queue"
    assert stack.rejects() == []
    print(
        f"\n{len(entries)} submissions of {LARGE_EVENTS} events: deliveries "
        f"{sorted(1 + len(p) for p in points.values())}, {len(abandoned)} calls abandoned, "
        f"{sum(repeated.values())} duplicate records"
    )


@pytest.mark.parametrize("ordering", ["strict", "relaxed"])
def test_a_submission_failed_part_way_resumes_at_its_first_unacknowledged_record(
    ordering, deploy, kinesis_proxy, emulator, dead_letter_queue
):
    """Sequence 3 of every submission fails MAX_ATTEMPTS times: the submission
    goes back to its queue with its progress, resumes at 3, and nothing is
    redelivered through batchItemFailures: with MaxReceiveCount 1, a single
    redelivery would have sent it to the dead-letter queue. In strict mode
    every event is on the stream exactly once; in relaxed mode only records
    acknowledged after the failed one are sent again."""
    stack = deploy(
        env={"AWS_ENDPOINT_URL_KINESIS": kinesis_proxy.endpoint, "ORDERING": ordering, **FAST_GIVE_UP},
        visibility_timeout=VISIBILITY_TIMEOUT,
    )
    dlq = dead_letter_queue(stack, 1)
    kinesis_proxy.entry_failures(10**6, StubbornSequence(seed=1410))
    entries = stack.send(fleet(seed=1411, devices=4, submissions=8))
    stack.wait_drained(timeout=60)

    assert_every_event_published(stack, entries, copies="first" if ordering == "strict" else "last")
    lines = log_lines(stack)
    points = resume_points(lines)
    sids = {e["submission"]["submission_id"] for e in entries}
    assert set(points) == sids, "every submission resumed"
    assert {p for ps in points.values() for p in ps} == {3}, points
    repeated = duplicates(stack)
    if ordering == "strict":
        assert not repeated, f"records sent again although acknowledged: {repeated}"
    else:
        assert all(seq > 3 for _, seq in repeated), repeated
    assert retried_batches(emulator, stack) == 0, "a submission went back through batchItemFailures"
    assert all(s["failed"] == 0 for s in summaries(stack))
    assert sum(s["resent"] for s in summaries(stack)) == len(entries)
    assert not [line for line in lines if NOT_SENT_BACK in line.get("message", "")]
    assert sensor_fleet.queue_depth(stack.aws.sqs, dlq) == 0, "a submission reached the dead-letter queue"


@pytest.mark.parametrize("record_format", FORMATS)
def test_a_fifo_submission_is_never_sent_back(record_format, deploy, kinesis_proxy, emulator, dead_letter_queue):
    """The same fault from a FIFO queue (one group per device): a copy would
    join the end of its group, so the submission is reported in
    batchItemFailures and redelivered whole, its first events published again.
    Aggregated, the record carrying sequence 3 carries them all and fails
    whole: redelivered whole, every event is published once."""
    stack = deploy(
        env={"AWS_ENDPOINT_URL_KINESIS": kinesis_proxy.endpoint, "RECORD_FORMAT": record_format, **FAST_GIVE_UP},
        visibility_timeout=VISIBILITY_TIMEOUT,
        fifo=True,
    )
    # A group's later message fails behind the earlier one: up to 3 receives here.
    dlq = dead_letter_queue(stack, 5)
    kinesis_proxy.entry_failures(10**6, StubbornSequence(seed=1420))
    entries = fleet(seed=1421, devices=4, submissions=8)
    resp = stack.aws.sqs.send_message_batch(
        QueueUrl=stack.queue_url,
        Entries=[
            {"Id": str(i), "MessageBody": e["body"], "MessageGroupId": e["device"]} for i, e in enumerate(entries)
        ],
    )
    assert not resp.get("Failed"), resp
    stack.wait_drained(timeout=60)

    assert_every_event_published(stack, entries)
    lines = log_lines(stack)
    assert resume_points(lines) == {}, "a FIFO submission resumed"
    assert sum(s["resent"] for s in summaries(stack)) == 0
    assert retried_batches(emulator, stack) >= 1, "sequence 3 fails MAX_ATTEMPTS times: SQS must redeliver"
    repeated = duplicates(stack)
    if record_format == "aggregated":
        assert not repeated, f"nothing of a failed aggregated record was acknowledged: {repeated}"
        assert_record_format(record_format, kinesis_proxy, stack.records())
    for e in entries if record_format == "per-event" else []:
        sid = e["submission"]["submission_id"]
        assert {0, 1, 2} <= {seq for s, seq in repeated if s == sid}, f"{sid} was not published again from event 0"
    assert sensor_fleet.queue_depth(stack.aws.sqs, dlq) == 0


def test_a_marker_a_sensor_wrote_is_ignored_and_every_event_published(deploy, emulator):
    """Issue 18, item 1: a sensor writes its message attributes as freely as
    its body. A marker it writes, of the first format naming its own
    document's digest (which the function used to honour, skipping the
    events before it) or of the current one with a MAC it made up, is
    ignored: every event reaches the stream once, each message is named in a
    warning with its reason, and the summaries count them."""
    stack = deploy()
    entries = fleet(seed=1430, devices=2, submissions=6)
    expected = {}
    for i, e in enumerate(entries):
        digest = hashlib.sha256(base64.b64decode(e["body"])).hexdigest()
        marker, reason = (f"3/{digest}", "malformed") if i % 2 == 0 else (f"v3/3/1/1048576/-/{'ab' * 32}", "bad_mac")
        sent = stack.aws.sqs.send_message(
            QueueUrl=stack.queue_url,
            MessageBody=e["body"],
            MessageAttributes={"edr_resume_from": {"DataType": "String", "StringValue": marker}},
        )
        e["message_id"] = sent["MessageId"]
        expected[sent["MessageId"]] = reason
    stack.sent.extend(entries)
    stack.wait_drained(timeout=60)

    assert_every_event_published(stack, entries)
    assert not duplicates(stack), "an event published twice"
    lines = log_lines(stack)
    ignored = {line["message_id"]: line["reason"] for line in lines if line.get("message", "").startswith(IGNORED)}
    assert ignored == expected
    assert resume_points(lines) == {}, "a forged marker was honoured"
    assert sum(s.get("resume_markers_ignored", 0) for s in summaries(stack)) == len(entries)
    assert sum(s["published"] for s in summaries(stack)) == len(entries)
