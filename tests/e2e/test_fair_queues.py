"""SQS fair queues are standard queues (issue 11, item 2).

Since 2025 a *standard* queue's messages may carry a `MessageGroupId` (SQS fair
queues: the group is the tenant). A standard queue promises no order, so its
messages stay independent whatever attributes they carry: one failed message
is the only one reported in batchItemFailures, the others of its group are
published. FIFO semantics (a failed message fails every later message of its
group, unpublished) are for a FIFO source only: an `eventSourceARN` ending in
`.fifo` (docs/guarantees.md, 5; the handler test is
`a_standard_queue_with_message_groups_is_not_fifo` in tests/handler.rs).

Each case is one synchronous Invoke of the real binary through MiniStack, with
four submissions of one message group, the second of which fails in one of two
ways: Kinesis refuses its records for good (the fault proxy answers its
entries with a non-retryable error code), or it is invalid and the rejects
queue refuses it (REJECTS_QUEUE_URL names a queue that does not exist).
"""

from __future__ import annotations

import base64
import json

import pytest

from edr_tools import fleet as sensor_fleet
from helpers import fleet, function_invocations, sqs_event

GROUP = "tenant-a"
FAILING = 1  # the second message of the group fails
# A per-entry error code Kinesis answers that is not worth retrying (the
# function fails the submission at once).
NON_RETRYABLE = "KMSAccessDeniedException"


def grouped_event(bodies: list[str], queue_arn: str, fifo: bool) -> dict:
    """The SQS event of one message group: on a fair (standard) queue the
    messages carry MessageGroupId alone; on a FIFO queue also a sequence
    number and a deduplication id."""
    event = sqs_event(bodies, queue_arn)
    for i, record in enumerate(event["Records"]):
        record["attributes"]["MessageGroupId"] = GROUP
        if fifo:
            record["attributes"]["SequenceNumber"] = str(18_800_000_000_000_000_000 + i)
            record["attributes"]["MessageDeduplicationId"] = record["messageId"]
    return event


def sent_keys(proxy) -> set[str]:
    return {key for call in proxy.put_calls() for key, _ in call.entries}


@pytest.fixture(params=["kinesis_refuses_it", "rejects_queue_refuses_it"])
def failing_batch(request, deploy, kinesis_proxy, emulator):
    """(stack, entries): four submissions of one group, the second of which will fail."""
    entries = fleet(seed=1200, devices=1, submissions=4)
    env = {
        "AWS_ENDPOINT_URL_KINESIS": kinesis_proxy.endpoint,
        "MAX_ATTEMPTS": "2",
        "RETRY_BASE_DELAY_MS": "10",
        "RETRY_MAX_DELAY_MS": "20",
    }
    if request.param == "kinesis_refuses_it":
        target = entries[FAILING]["submission"]["submission_id"]

        def pick(_i, record):
            data = json.loads(base64.b64decode(record["Data"]))
            return NON_RETRYABLE if data["submission_id"] == target else False

        kinesis_proxy.entry_failures(10_000, pick)
    else:
        entries[FAILING] = fleet(seed=1201, devices=1, submissions=1, broken=1)[0]
        env["REJECTS_QUEUE_URL"] = f"{emulator.endpoint}/000000000000/e2e-no-such-rejects-queue"
    stack = deploy(mapping=False, rejects=request.param == "kinesis_refuses_it", env=env)
    return stack, entries


def invoke(stack, entries, queue_arn, fifo):
    event = grouped_event([e["body"] for e in entries], queue_arn, fifo)
    answer, error = stack.invoke(event)
    assert error is None, answer
    ids = [r["messageId"] for r in event["Records"]]
    failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    by_sid = sensor_fleet.group_by_submission(stack.records())
    return ids, failed, by_sid


def why(stack) -> str:
    """The function's warnings about what it did not publish, for a failed assertion."""
    lines = [
        line
        for inv in function_invocations(stack.aws.logs, stack.function)
        for line in inv.lines
        if line.get("level") in ("WARN", "ERROR")
    ]
    return "\n".join(json.dumps(line) for line in lines)


def test_a_fair_queue_fails_only_the_failed_message_of_a_group(failing_batch, kinesis_proxy):
    stack, entries = failing_batch
    assert not stack.queue_arn.endswith(".fifo")
    ids, failed, by_sid = invoke(stack, entries, stack.queue_arn, fifo=False)
    assert failed == {ids[FAILING]}, f"only the failed message, not its successors in the group\n{why(stack)}"
    for i, e in enumerate(entries):
        sid = e["submission"]["submission_id"]
        if i == FAILING:
            assert sid not in by_sid
        else:
            assert sensor_fleet.check_submission(e["submission"], by_sid.get(sid)) == [], i


def test_the_same_group_from_a_fifo_queue_still_fails_its_successors_unpublished(failing_batch, kinesis_proxy):
    stack, entries = failing_batch
    ids, failed, by_sid = invoke(stack, entries, f"{stack.queue_arn}.fifo", fifo=True)
    assert failed == set(ids[FAILING:]), f"the failed message and every later one of its group\n{why(stack)}"
    first = entries[0]["submission"]
    assert sensor_fleet.check_submission(first, by_sid.get(first["submission_id"])) == []
    later = {e["submission"]["submission_id"] for e in entries[FAILING:]}
    assert not later & set(by_sid), "nothing of a failed message or its successors is on the stream"
    successors = {e["submission"]["submission_id"] for e in entries[FAILING + 1 :]}
    assert not successors & sent_keys(kinesis_proxy), "the successors were never sent to Kinesis"
