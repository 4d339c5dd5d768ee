"""Kinesis failing under the function: a fault-injecting proxy sits between the
function (AWS_ENDPOINT_URL_KINESIS) and the emulator. No valid submission may
be lost, and order must hold once SQS retries have drained the queue.

The function is configured to give up quickly within an invocation
(MAX_ATTEMPTS=2), so the faults outlast its own retries and reach SQS as batch
item failures, which come back after the short visibility timeout. Throttling
is the exception: it does not count against MAX_ATTEMPTS, only the deadline
bounds it.

The tests of individually failed entries are about that redelivery path, so
they run with RESUME=off: with the default (resend) a submission that fails
after some of its records were acknowledged goes back to its queue with its
progress and is acknowledged, and nothing would reach batchItemFailures.
test_resume.py runs the same kind of fault with RESUME=resend.

The strict cases run in both record formats (RECORD_FORMAT): an aggregated
record carries a whole submission, so a fault picked for one of its events
fails all of them, and the stream is read deaggregated (edr_tools.kpl)."""

from __future__ import annotations

import base64
import json
import random
from collections import Counter

import pytest

from edr_tools import fleet as sensor_fleet
from edr_tools import kpl
from helpers import esm_log_lines, fleet

FAST_GIVE_UP = {"MAX_ATTEMPTS": "2", "RETRY_BASE_DELAY_MS": "10", "RETRY_MAX_DELAY_MS": "20"}


FORMATS = ["per-event", "aggregated"]


def deploy_behind(deploy, proxy, ordering="strict", resume=None, record_format="per-event", **kw):
    env = {
        "AWS_ENDPOINT_URL_KINESIS": proxy.endpoint,
        "ORDERING": ordering,
        "RESUME": resume,
        "RECORD_FORMAT": record_format,
        **FAST_GIVE_UP,
    }
    return deploy(env=env, visibility_timeout=4, **kw)


def assert_all_published(stack, entries, copies="first"):
    by_sid = sensor_fleet.group_by_submission(stack.records())
    problems = []
    for e in entries:
        if not e["broken"]:
            problems += sensor_fleet.check_submission(
                e["submission"], by_sid.get(e["submission"]["submission_id"]), copies=copies
            )
    assert problems == []
    broken = {e["submission"]["submission_id"] for e in entries if e["broken"]}
    assert not broken & set(by_sid)
    return by_sid


class FailSome:
    """Which entries of a PutRecords call fail: sequence 3 of every submission
    twice (MAX_ATTEMPTS, so that submission must go back through SQS), and
    besides that a random share of entries, at most `budget` of them."""

    def __init__(self, seed: int, share: float, budget: int = 60):
        self.rng, self.share, self.budget = random.Random(seed), share, budget
        self.stubborn = Counter()

    def __call__(self, _index: int, record: dict) -> bool:
        for data in map(json.loads, kpl.events(base64.b64decode(record["Data"]))):
            key = (data["submission_id"], data["sequence"])
            if data["sequence"] == 3 and self.stubborn[key] < 2:
                self.stubborn[key] += 1
                return "InternalFailure"  # counts against MAX_ATTEMPTS; throttling does not
        if self.budget > 0 and self.rng.random() < self.share:
            self.budget -= 1
            return True
        return False


def retried_batches(emulator, stack) -> int:
    return sum(1 for line in esm_log_lines(emulator, stack.function) if "partial failures" in line)


@pytest.mark.parametrize(
    "ordering,record_format", [("strict", "per-event"), ("relaxed", "per-event"), ("strict", "aggregated")]
)
def test_whole_put_records_failed_localstack_shape(deploy, kinesis_proxy, emulator, ordering, record_format):
    """Every entry failed, FailedRecordCount 1 (LocalStack's injected error): the
    count is wrong, the entries are right; nothing may be taken as published."""
    stack = deploy_behind(deploy, kinesis_proxy, ordering, record_format=record_format)
    kinesis_proxy.whole_call_failures(12)
    entries = stack.send(fleet(seed=11, devices=3, submissions=9, broken=1))
    stack.wait_drained(timeout=120)
    assert kinesis_proxy.injected("whole") == 12
    # Every entry failed with ProvisionedThroughputExceededException: throttling,
    # retried within the invocation (it does not count against MAX_ATTEMPTS).
    assert_all_published(stack, entries, copies="first" if ordering == "strict" else "last")


@pytest.mark.parametrize("record_format", FORMATS)
def test_individual_entries_failed_strict(deploy, kinesis_proxy, emulator, record_format):
    """Some entries of a call fail, the others succeed: first copies stay in
    sequence order and every event arrives. RESUME=off: the purpose is the
    redelivery through batchItemFailures (sequences 0-2 are acknowledged before
    sequence 3 fails, so with RESUME=resend the submission would go back to its
    queue with its progress instead, and no batch would be retried)."""
    stack = deploy_behind(deploy, kinesis_proxy, "strict", resume="off", record_format=record_format)
    kinesis_proxy.entry_failures(10**6, FailSome(seed=12, share=0.3))
    entries = stack.send(fleet(seed=12, devices=4, submissions=12, broken=2))
    stack.wait_drained(timeout=120)
    assert kinesis_proxy.injected("entries") >= 1
    assert retried_batches(emulator, stack) >= 1, "sequence 3 fails MAX_ATTEMPTS times: SQS must retry"
    assert_all_published(stack, entries, copies="first")


def test_individual_entries_failed_relaxed(deploy, kinesis_proxy, emulator):
    """Relaxed ordering re-sends a submission from its first failed record: the
    last copies are in order and nothing is lost. RESUME=off, as in the strict
    test: this is the batchItemFailures path."""
    stack = deploy_behind(deploy, kinesis_proxy, "relaxed", resume="off")
    kinesis_proxy.entry_failures(10**6, FailSome(seed=13, share=0.3))
    entries = stack.send(fleet(seed=13, devices=4, submissions=12, broken=2))
    stack.wait_drained(timeout=120)
    assert kinesis_proxy.injected("entries") >= 1
    assert retried_batches(emulator, stack) >= 1
    assert_all_published(stack, entries, copies="last")


@pytest.mark.parametrize("record_format", FORMATS)
def test_throttled_calls_recover(deploy, kinesis_proxy, record_format):
    """Whole calls refused with HTTP 400 ProvisionedThroughputExceededException."""
    stack = deploy_behind(deploy, kinesis_proxy, "strict", record_format=record_format)
    kinesis_proxy.throttled_calls(8)
    entries = stack.send(fleet(seed=14, devices=2, submissions=6))
    stack.wait_drained(timeout=120)
    assert kinesis_proxy.injected("throttle") == 8
    assert_all_published(stack, entries, copies="first")


@pytest.mark.parametrize("record_format", FORMATS)
def test_no_faults_no_duplicates(deploy, kinesis_proxy, record_format):
    """Through the proxy with nothing armed: exactly one copy of every event;
    aggregated, one Kinesis record per submission."""
    stack = deploy_behind(deploy, kinesis_proxy, "strict", record_format=record_format)
    entries = stack.send(fleet(seed=15, devices=3, submissions=6))
    stack.wait_drained()
    by_sid = assert_all_published(stack, entries)
    assert all(len(p.records) == len(p.first_copies()) for p in by_sid.values())
    assert kinesis_proxy.put_calls(), "the function should have gone through the proxy"
    sent = [data for call in kinesis_proxy.put_calls() for _, data in call.entries]
    aggregated = [kpl.user_records(data) is not None for data in sent]
    assert all(aggregated) if record_format == "aggregated" else not any(aggregated)
    if record_format == "aggregated":
        assert len(sent) == len(by_sid), "one Kinesis record per submission"
