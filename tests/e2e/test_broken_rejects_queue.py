"""The rejects queue (SQS) broken under the real function: it accepts
SendMessage and never answers (the fault proxy, reached through
AWS_ENDPOINT_URL_SQS; Kinesis is fine).

Expected, as for Kinesis (docs/guarantees.md, 3 and 4): the invocation answers
before its timeout, the valid submissions are published, and every invalid one
whose rejects-queue send did not complete is in batchItemFailures, so that SQS
brings it back.

The function waits for the rejects queue at most one call timeout
(`KINESIS_CALL_TIMEOUT_MS`, here 1 s) and then counts the unanswered sends as
failed, so 1.5 s of the 3 s remain to publish.
"""

from __future__ import annotations

import time

from edr_tools import fleet as sensor_fleet
from helpers import fleet, sqs_event


def test_a_rejects_queue_that_never_answers_cannot_eat_the_invocation(deploy, kinesis_proxy):
    stack = deploy(
        env={"AWS_ENDPOINT_URL_SQS": kinesis_proxy.endpoint, "KINESIS_CALL_TIMEOUT_MS": "1000"},
        timeout=3,
        visibility_timeout=4,
        mapping=False,
    )
    kinesis_proxy.never_answer()
    entries = fleet(seed=900, devices=3, submissions=8, broken=2)
    event = sqs_event([e["body"] for e in entries], stack.queue_arn)
    began = time.monotonic()
    try:
        answer, error = stack.invoke(event)
    finally:
        kinesis_proxy.pass_through()
    took = time.monotonic() - began
    assert error is None, f"no answer in time ({took:.1f}s): {answer}"
    invalid = {r["messageId"] for r, e in zip(event["Records"], entries) if e["broken"]}
    assert {f["itemIdentifier"] for f in answer["batchItemFailures"]} == invalid
    by_sid = sensor_fleet.group_by_submission(stack.records())
    for e in entries:
        if not e["broken"]:
            assert sensor_fleet.check_submission(e["submission"], by_sid.get(e["submission"]["submission_id"])) == []
