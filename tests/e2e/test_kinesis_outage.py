"""Kinesis broken under the real function, then repaired.

MiniStack's Kinesis sits behind the tests' fault proxy (edr_tools.fault_proxy, reached
through AWS_ENDPOINT_URL_KINESIS), which breaks it one way per test: refusing
connections, accepting requests and never answering, answering 500/503,
throttling every call, throttling some records of every call, answering so
slowly that calls are still in flight at the deadline, denying access, and
refusing the credentials.

Each test deploys the real binary behind an SQS event source mapping with a
3-second timeout, breaks Kinesis, and then, while it is broken:

- sends a sensor fleet (some submissions invalid) through the queue, and
  invokes the function directly with another batch, so that its answer can be
  read: the invocation answers before its timeout (no Sandbox.Timedout), every
  valid submission not completely on the stream is in batchItemFailures, no
  invalid one is;
- waits until the mapping has delivered every queued message once: the
  invalid ones are gone from the queue (acknowledged, and in the rejects
  queue), the valid ones not published are still there.

Then it repairs Kinesis (the proxy passes everything through again), delivers
the failed messages of the direct batch again as SQS would, waits for the
mapping to drain the queue, and checks the stream: every valid submission
complete with its first copies in `sequence` order, nothing of an invalid one,
each invalid body exactly once in the rejects queue. The function's own logs
(CloudWatch Logs, one stream per invocation) show that every invocation
answered in time and that it failed for the reason the fault gives.

Under two faults records are still acknowledged (some records throttled, slow
answers): there, with RESUME=resend (the default), a submission published
part-way is not reported failed but sent back to its queue with its progress
(docs/guarantees.md, 9) and acknowledged. Such a submission counts as in
flight: its copy must be received with its marker, and complete on the stream
in the end; while Kinesis is broken, every valid submission not complete on
the stream still has a message in the queue, the original or its copy. The
same two faults run once more with RESUME=off, where the old rule holds
unchanged: not on the stream means reported failed.

Two faults run once more with RECORD_FORMAT=aggregated (the stream read
deaggregated, edr_tools.kpl), where a fleet submission is one Kinesis record,
written or refused whole: some records throttled, where a submission is
never published part-way, so none goes back (RESUME=resend or not) and every
one not on the stream is reported failed; and 5xx answers, a whole outage,
which refuses DescribeStreamSummary too, so the function, which puts no
aggregated record before it knows the stream places records by key, fails
every call with RecordDistributionUnknown and puts nothing. Both check that
every record sent was aggregated and each on the stream holds one whole
submission in order. (Slow answers are no outage there: one round trip
publishes every submission.)
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from edr_tools import fleet as sensor_fleet
from edr_tools import kpl
from edr_tools.fault_proxy import THROUGHPUT, KinesisFaultProxy
from helpers import answered_invocations, assert_record_format, esm_log_lines, fleet, function_invocations, sqs_event

# The function's timeout, in seconds (MiniStack sends the Lambda deadline as
# now + timeout), and the queue's visibility timeout, just above it as AWS requires.
FUNCTION_TIMEOUT = 3
VISIBILITY_TIMEOUT = 4
# Settings that make a broken Kinesis cost seconds, not minutes: retry quickly
# and often, so that with a retryable fault the deadline is what stops the
# function; connect and call timeouts far below the function timeout.
FAST = {
    "MAX_ATTEMPTS": "100",
    "RETRY_BASE_DELAY_MS": "20",
    "RETRY_MAX_DELAY_MS": "200",
    "KINESIS_CONNECT_TIMEOUT_MS": "250",
    "KINESIS_CALL_TIMEOUT_MS": "1000",
    "DEADLINE_MARGIN_MS": "500",
}


class SomeRecordsThrottled:
    """Which entries of a PutRecords call fail, and how: a third of the records
    are throttled (ProvisionedThroughputExceededException), at random, the first
    time they are sent; and the record with sequence 4 of every submission whose
    id starts with an even hex digit fails with InternalFailure its first
    MAX_ATTEMPTS times. Throttling does not count against MAX_ATTEMPTS (only the
    deadline bounds it), an InternalFailure does: so in every batch some
    submissions fail part-way (attempts exhausted) while the others go through."""

    def __init__(self, seed: int, share: float = 0.3, stubborn: int = 3):
        self.rng, self.share, self.stubborn = random.Random(seed), share, stubborn
        self.sends = Counter()

    def __call__(self, _index: int, record: dict) -> str | None:
        # An aggregated record carries a whole submission: it counts as its
        # events' sends, is throttled as its first event, and fails as sequence 4.
        events = [json.loads(e) for e in kpl.events(base64.b64decode(record["Data"]))]
        keys = [(data["submission_id"], data["sequence"]) for data in events]
        sends = {key: self.sends[key] for key in keys}
        self.sends.update(keys)
        for sid, sequence in keys:
            if sequence == 4 and int(sid[0], 16) % 2 == 0:
                return "InternalFailure" if sends[(sid, sequence)] < self.stubborn else None
        return THROUGHPUT if sends[keys[0]] == 0 and self.rng.random() < self.share else None


@dataclass
class Fault:
    name: str
    arm: Callable[[KinesisFaultProxy], None]
    # the error_code the function logs for a submission it gives up on (besides
    # DeadlineReached, for a call abandoned at the deadline, if the fault is retryable)
    codes: set[str]
    # cause values it may log (see docs/operations.md, "Observability")
    causes: set[str] = field(default_factory=lambda: {"deadline"})
    # nothing can be published while the fault lasts: every valid submission fails
    everything_fails: bool = True
    # not retryable: the function gives up at once instead of retrying until the deadline
    at_once: bool = False
    env: dict = field(default_factory=dict)
    # PutRecords calls each invocation under the fault makes at least (retries)
    min_calls: int = 2
    # records are acknowledged while the fault lasts, and RESUME is resend: a
    # submission published part-way goes back to its queue with its progress
    resends: bool = False
    record_format: str = "per-event"


FAULTS = [
    Fault("refuses_connections", lambda p: p.refuse_connections(), codes={"DispatchFailure"}),
    # Each attempt ends after KINESIS_CALL_TIMEOUT_MS (1 s): two attempts time
    # out, the third is abandoned at the deadline. (A hung request the endpoint
    # finally drops, as pass_through() does, is a DispatchFailure.)
    Fault(
        "never_answers",
        lambda p: p.never_answer(),
        codes={"Timeout", "DeadlineReached", "DispatchFailure"},
        min_calls=3,
    ),
    Fault(
        "answers_5xx",
        lambda p: p.error_responses([(500, "InternalFailure"), (503, "ServiceUnavailable")]),
        codes={"InternalFailure", "ServiceUnavailable"},
    ),
    Fault("throttles_every_call", lambda p: p.error_responses((400, THROUGHPUT)), codes={THROUGHPUT}),
    Fault(
        "throttles_some_records",
        lambda p: p.entry_failures(10**9, SomeRecordsThrottled(seed=61)),
        codes={"InternalFailure"},
        causes={"attempts_exhausted"},
        everything_fails=False,
        env={"MAX_ATTEMPTS": "3"},
        resends=True,
    ),
    # Each answer comes 0.8 s after the records were written; strict ordering
    # needs one round trip per event, so no submission (6-10 events) can finish
    # before the deadline, and the calls in flight then are abandoned.
    Fault(
        "slow_near_the_deadline",
        lambda p: p.slow_responses(0.8),
        codes={"DeadlineReached"},
        env={"KINESIS_CALL_TIMEOUT_MS": "2000"},
        resends=True,
    ),
    Fault(
        "denies_access",
        lambda p: p.error_responses((400, "AccessDeniedException")),
        codes={"AccessDeniedException"},
        causes={"non_retryable_error"},
        at_once=True,
        min_calls=1,
    ),
    Fault(
        "rejects_the_credentials",
        lambda p: p.error_responses((400, "UnrecognizedClientException")),
        codes={"UnrecognizedClientException"},
        causes={"non_retryable_error"},
        at_once=True,
        min_calls=1,
    ),
]
# The faults that let records through, once more with RESUME=off: a submission
# published part-way is then reported in batchItemFailures and redelivered
# whole, as from a FIFO queue (appended, so the seeds of the others stay).
FAULTS += [
    dataclasses.replace(f, name=f"{f.name}_resume_off", env={**f.env, "RESUME": "off"}, resends=False)
    for f in FAULTS
    if f.resends
]
# Aggregated (RECORD_FORMAT=aggregated): a fleet submission is one Kinesis
# record, written or refused whole, so a submission is never published
# part-way: under some records throttled it is reported failed (nothing goes
# back, whatever RESUME says), and slow answers (0.8 s) publish every
# submission in one round trip, which is no outage. One whole outage besides:
# it refuses DescribeStreamSummary too, and a function that has not read the
# stream's record distribution puts no aggregated record before it has
# (docs/contract.md), so it fails every call with RecordDistributionUnknown.
FAULTS += [
    dataclasses.replace(
        f,
        name=f"{f.name}_aggregated",
        env={**f.env, "RECORD_FORMAT": "aggregated"},
        codes={"RecordDistributionUnknown"} if f.everything_fails else f.codes,
        resends=False,
        record_format="aggregated",
    )
    for f in FAULTS
    if f.name in ("throttles_some_records", "answers_5xx")
]

RESUMING = "resuming a partly published submission"


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout:.0f}s")
        time.sleep(0.2)


def esm_deliveries(emulator, function: str) -> tuple[int, int, int]:
    """(messages acknowledged, messages reported failed, batches that failed as a
    whole) by the mapping so far, from MiniStack's log."""
    acked = failed = errors = 0
    for line in esm_log_lines(emulator, function):
        if "failed processing SQS batch" in line:
            errors += 1
        elif " processed " in line and " SQS messages" in line:
            words = line.split()
            acked += int(words[words.index("processed") + 1])
            if "partial failures" in line:
                failed += int(line.rsplit("(", 1)[1].split()[0])
    return acked, failed, errors


def resumed(aws, stack) -> list[dict]:
    """The function's "resuming a partly published submission" lines: a copy
    sent back with its progress was received with its marker."""
    lines = [line for inv in function_invocations(aws.logs, stack.function) for line in inv.lines]
    return [line for line in lines if line.get("message") == RESUMING]


def complete_on_stream(stack) -> set[str]:
    """Submission ids whose every event is on the stream."""
    complete = set()
    for sid, pub in sensor_fleet.group_by_submission(stack.records()).items():
        if sorted({r["sequence"] for r in pub.records}) == list(range(pub.records[0]["event_count"])):
            complete.add(sid)
    return complete


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
def test_kinesis_broken_then_repaired(fault, deploy, kinesis_proxy, emulator, aws):
    stack = deploy(
        env={"AWS_ENDPOINT_URL_KINESIS": kinesis_proxy.endpoint, **FAST, **fault.env},
        timeout=FUNCTION_TIMEOUT,
        visibility_timeout=VISIBILITY_TIMEOUT,
    )
    seed = 600 + FAULTS.index(fault)
    queued = fleet(seed=seed, devices=4, submissions=12, broken=3)
    direct = fleet(seed=seed + 50, devices=3, submissions=8, broken=2)
    fault.arm(kinesis_proxy)

    # 1. Kinesis broken. The mapping gets a fleet's submissions...
    stack.send(queued)
    # ... and one batch is invoked directly, so that its answer can be read.
    event = sqs_event([e["body"] for e in direct], stack.queue_arn)
    began = time.monotonic()
    answer, error = stack.invoke(event)
    took = time.monotonic() - began
    # MiniStack enforces the timeout as Lambda does: past it, the answer would be
    # a Sandbox.Timedout error. (`took` also counts a cold start and the Invoke API.)
    assert error is None, f"the invocation failed instead of answering: {answer}"
    assert took < FUNCTION_TIMEOUT + 0.5, f"answered after {took:.2f}s"
    ids = [r["messageId"] for r in event["Records"]]
    valid = {mid for mid, e in zip(ids, direct) if not e["broken"]}
    invalid = set(ids) - valid
    failed = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
    assert len(failed) == len(set(failed))
    assert not set(failed) & invalid, "an invalid submission was reported for retry"
    assert set(failed) <= valid
    complete = complete_on_stream(stack)
    sid_of = {mid: e["submission"]["submission_id"] for mid, e in zip(ids, direct)}
    # Not on the stream and not reported failed: sent back to the queue with its
    # progress (RESUME=resend), which only a fault that lets records through allows.
    went_back = {mid for mid in valid - set(failed) if sid_of[mid] not in complete}
    if not fault.resends:
        assert not went_back, f"{sorted(went_back)} not on the stream, yet not reported failed"
    in_flight = set(failed) | went_back
    if fault.everything_fails:
        assert in_flight == valid
    else:
        assert in_flight and in_flight != valid, "some should fail, some go through"
    if went_back:
        # In flight until its copy lands: the copy (in the mapping's queue, as the
        # event names it) is received with its marker.
        wait_until(
            lambda: {sid_of[mid] for mid in went_back} <= {line["submission_id"] for line in resumed(aws, stack)},
            timeout=3 * VISIBILITY_TIMEOUT,
            what=f"{len(went_back)} submission(s) neither on the stream nor reported failed, and no copy resumed",
        )
    if fault.at_once:
        assert took < 1.5, f"a non-retryable error should end the invocation at once, took {took:.2f}s"

    # The mapping has delivered every queued message once.
    wait_until(
        lambda: sum(esm_deliveries(emulator, stack.function)[:2]) >= len(queued),
        timeout=3 * VISIBILITY_TIMEOUT,
        what="the mapping did not deliver every message",
    )
    acked, reported, errors = esm_deliveries(emulator, stack.function)
    n_invalid = sum(1 for e in queued if e["broken"])
    assert errors == 0, "a batch failed as a whole (timeout or crash)"
    if fault.resends:
        # Acknowledged now also means sent back: nothing lost while it lasts if
        # every valid submission not complete on the stream has a message in the
        # queue, the original or its copy (the queue is read first: a submission
        # incomplete then had a message then).
        assert acked >= n_invalid
        depth = stack.depth()
        valid_sids = {e["submission"]["submission_id"] for e in queued if not e["broken"]}
        incomplete = (valid_sids | {sid_of[mid] for mid in went_back}) - complete_on_stream(stack)
        assert depth >= len(incomplete), f"{len(incomplete)} submissions in flight, {depth} messages in the queue"
    elif fault.everything_fails:
        assert acked == n_invalid, "exactly the invalid messages are acknowledged"
        assert stack.depth() == len(queued) - n_invalid, "every valid message is still in the queue"
    else:
        assert acked >= n_invalid and reported >= 1
        depth = stack.depth()
        acked_now = esm_deliveries(emulator, stack.function)[0]  # a redelivery may have come meanwhile
        assert len(queued) - acked_now <= depth <= len(queued) - acked

    if fault.record_format == "aggregated" and fault.everything_fails:
        assert not kinesis_proxy.put_calls(), "an aggregated record put before the stream's distribution was known"

    # 2. Kinesis repaired. SQS delivers the failed messages again.
    kinesis_proxy.pass_through()
    again = copy.deepcopy(event)
    again["Records"] = [r for r in again["Records"] if r["messageId"] in failed]
    for r in again["Records"]:
        r["attributes"]["ApproximateReceiveCount"] = "2"
    if again["Records"]:  # with RESUME=resend the failed ones may all have gone back
        answer, error = stack.invoke(again)
        assert error is None and answer == {"batchItemFailures": []}, answer
    stack.wait_drained(timeout=60)

    # 3. Every valid submission complete, first copies in order; nothing invalid.
    records = stack.records()
    by_sid = sensor_fleet.group_by_submission(records)
    problems = []
    for e in queued + direct:
        if not e["broken"]:
            problems += sensor_fleet.check_submission(e["submission"], by_sid.get(e["submission"]["submission_id"]))
    assert problems == []
    broken_ids = {e["submission"]["submission_id"] for e in queued + direct if e["broken"]}
    assert not broken_ids & set(by_sid), "an invalid submission reached the stream"
    rejected = Counter(m["Body"] for m in stack.rejects())
    assert rejected == Counter(e["body"] for e in queued + direct if e["broken"]), (
        "each invalid body once in the rejects queue"
    )
    _, _, errors = esm_deliveries(emulator, stack.function)
    assert errors == 0
    assert_record_format(fault.record_format, kinesis_proxy, records)

    # The function's own account: every invocation answered (a summary line)
    # within its timeout, and gave up for the reason this fault gives.
    count, summaries = answered_invocations(stack)
    assert count >= 4
    assert len(summaries) == count, f"{count - len(summaries)} of {count} invocations did not answer"
    margin = int(FAST["DEADLINE_MARGIN_MS"])
    for summary in summaries:
        # No call in flight after deadline - DEADLINE_MARGIN_MS: the answer came
        # with at least half of the margin to spare.
        assert summary["duration_ms"] < FUNCTION_TIMEOUT * 1000 - margin / 2
    invocations = function_invocations(aws.logs, stack.function)
    warnings = [w for inv in invocations for w in inv.not_published()]
    assert warnings, "the function logged no submission it could not publish"
    codes = Counter(w.get("error_code") for w in warnings)
    assert set(codes) & fault.codes, f"the fault's error never reached the function: {codes}"
    assert set(codes) <= fault.codes | (set() if fault.at_once else {"DeadlineReached"}), codes
    assert {w["cause"] for w in warnings} <= fault.causes, Counter(w["cause"] for w in warnings)
    under_fault = [s for s in summaries if s["failed"] or s["resent"]]
    # Every copy sent back was received with its marker (the queue is drained)
    # and none was refused; with RESUME=off nothing goes back.
    lines = [line for inv in invocations for line in inv.lines]
    resent = sum(s["resent"] for s in summaries)
    resumes = [line for line in lines if line.get("message") == RESUMING]
    assert not [
        line for line in lines if "could not send a partly published submission back" in line.get("message", "")
    ]
    assert len(resumes) >= resent
    if fault.resends:
        assert resent >= 1, "no submission went back to its queue with its progress"
    else:
        assert resent == 0 and not resumes
    calls = sorted(s["calls"] for s in under_fault)
    assert calls[0] >= fault.min_calls, f"PutRecords calls per invocation under the fault: {calls}"
    if fault.at_once:
        assert calls[-1] == 1, f"a non-retryable error is not retried: {calls}"
    slowest = max(s["duration_ms"] for s in summaries)
    if fault.at_once:
        assert slowest < 1000, f"a non-retryable error should end the invocation at once ({slowest:.0f} ms)"
    # What happened, for `pytest -s` / `-rA`.
    print(
        f"\n{fault.name}: direct invoke answered in {took:.2f}s, {len(failed)}/{len(valid)} valid reported "
        f"failed; mapping acked {acked}, reported {reported} under the fault; {count} invocations, "
        f"slowest {slowest:.0f} ms, calls {calls}; codes {dict(codes)}, "
        f"causes {dict(Counter(w['cause'] for w in warnings))}; proxy saw {len(kinesis_proxy.calls)} requests; "
        f"stream {len(records)} records"
    )
