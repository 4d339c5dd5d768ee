"""Helpers of the end-to-end tests (see conftest.py for the fixtures)."""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from edr_tools import ROOT as ROOT  # the tests import it from here
from edr_tools import emulator as local_emulator
from edr_tools import fleet as sensor_fleet
from edr_tools import kpl

# The region of every client and deployment of the tests: LOCAL_REGION (which
# `make test-e2e` passes on), else eu-west-1, as for the other local targets.
REGION = local_emulator.local_region()


def log_path(name: str) -> Path:
    """A log file of this test process in .cache/e2e: under pytest-xdist each
    worker runs its own emulator, so each writes its own logs (gw0-ministack.log)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return ROOT / ".cache" / "e2e" / (f"{worker}-{name}" if worker else name)


@dataclass
class Aws:
    endpoint: str
    sqs: object
    kinesis: object
    lambda_: object
    iam: object
    logs: object = None  # CloudWatch Logs: the function's own log lines, per invocation


@dataclass
class Stack:
    """One deployment: queue (+ rejects queue), stream, function, mapping."""

    aws: Aws
    name: str
    queue_url: str
    queue_arn: str
    stream: str
    function: str
    rejects_url: str | None = None
    esm_uuid: str | None = None
    sent: list = field(default_factory=list)

    def send(self, entries: list[dict]) -> list[dict]:
        sensor_fleet.send(self.aws.sqs, self.queue_url, entries)
        self.sent.extend(entries)
        return entries

    def send_bodies(self, bodies: list[str]) -> list[str]:
        entries = [{"body": b} for b in bodies]
        sensor_fleet.send(self.aws.sqs, self.queue_url, entries)
        return [e["message_id"] for e in entries]

    def wait_drained(self, timeout: float = 90) -> float:
        return sensor_fleet.wait_drained(self.aws.sqs, self.queue_url, timeout, quiet_polls=3)

    def depth(self) -> int:
        return sensor_fleet.queue_depth(self.aws.sqs, self.queue_url)

    def records(self) -> list[dict]:
        return sensor_fleet.read_stream(self.aws.kinesis, self.stream)

    def rejects(self) -> list[dict]:
        assert self.rejects_url
        return sensor_fleet.drain_queue(self.aws.sqs, self.rejects_url)

    def invoke(self, event: dict) -> tuple[dict | str, str | None]:
        """Synchronous Invoke through MiniStack's Lambda API and the Runtime API."""
        resp = self.aws.lambda_.invoke(FunctionName=self.function, Payload=json.dumps(event).encode())
        raw = resp["Payload"].read().decode()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        return body, resp.get("FunctionError")


class Deployer:
    def __init__(self, aws: Aws, role_arn: str, zip_bytes: bytes):
        self.aws, self.role_arn, self.zip_bytes = aws, role_arn, zip_bytes
        self.stacks: list[Stack] = []

    def __call__(
        self,
        *,
        env: dict | None = None,
        batch_size: int = 10,
        visibility_timeout: int = 30,
        timeout: int | None = None,
        shards: int = 2,
        rejects: bool = True,
        mapping: bool = True,
        stream_as_arn: bool = False,
        fifo: bool = False,
    ) -> Stack:
        # As AWS requires: the queue hides a message at least as long as the function may run.
        timeout = timeout or min(10, visibility_timeout)
        assert timeout <= visibility_timeout
        name = f"e2e-{uuid.uuid4().hex[:8]}"
        sqs, kin, lam = self.aws.sqs, self.aws.kinesis, self.aws.lambda_
        qname = f"{name}-submissions" + (".fifo" if fifo else "")
        attrs = {"VisibilityTimeout": str(visibility_timeout)}
        if fifo:
            attrs.update(FifoQueue="true", ContentBasedDeduplication="true")
        queue_url = sqs.create_queue(QueueName=qname, Attributes=attrs)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rejects_url = None
        if rejects:
            rname = f"{name}-rejects" + (".fifo" if fifo else "")
            rattrs = {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if fifo else {}
            rejects_url = sqs.create_queue(QueueName=rname, Attributes=rattrs)["QueueUrl"]
        stream = f"{name}-events"
        kin.create_stream(StreamName=stream, ShardCount=shards)
        kin.get_waiter("stream_exists").wait(StreamName=stream)
        stream_ref = (
            kin.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
            if stream_as_arn
            else stream
        )
        # Copies come back at once (RESUME_BASE_DELAY_SECONDS=0): these tests
        # are about what a copy does, MiniStack honours DelaySeconds, and the
        # default curve would add a minute to a test of many copies; the
        # curve is proven in tests/resume.rs.
        variables = {
            "STREAM_NAME": stream_ref,
            "PIPELINE_KEY": secrets.token_hex(32),
            "RESUME_BASE_DELAY_SECONDS": "0",
        }
        if rejects_url:
            variables["REJECTS_QUEUE_URL"] = rejects_url
        variables.update(env or {})
        variables = {k: v for k, v in variables.items() if v is not None}
        function = f"{name}-fn"
        lam.create_function(
            FunctionName=function,
            Runtime="provided.al2023",
            Handler="bootstrap",
            Architectures=["x86_64"],
            Role=self.role_arn,
            Code={"ZipFile": self.zip_bytes},
            Timeout=timeout,
            MemorySize=128,
            Environment={"Variables": variables},
        )
        lam.get_waiter("function_active_v2").wait(FunctionName=function)
        stack = Stack(self.aws, name, queue_url, queue_arn, stream, function, rejects_url)
        if mapping:
            stack.esm_uuid = lam.create_event_source_mapping(
                FunctionName=function,
                EventSourceArn=queue_arn,
                BatchSize=batch_size,
                FunctionResponseTypes=["ReportBatchItemFailures"],
            )["UUID"]
        self.stacks.append(stack)
        return stack

    def teardown(self) -> None:
        for s in self.stacks:
            lam = self.aws.lambda_
            try:
                if s.esm_uuid:
                    lam.delete_event_source_mapping(UUID=s.esm_uuid)
                lam.delete_function(FunctionName=s.function)
                for url in filter(None, [s.queue_url, s.rejects_url]):
                    self.aws.sqs.delete_queue(QueueUrl=url)
                self.aws.kinesis.delete_stream(StreamName=s.stream, EnforceConsumerDeletion=True)
            except Exception as e:  # noqa: BLE001 - best effort; the emulator goes at session end
                print(f"teardown of {s.name}: {e}")


def remove_deployment(deployed: dict, *, sqs, kinesis, lam) -> None:
    """Deletes what scripts/deploy-local.sh created, from the KEY=value lines
    it printed (`deployed`), as far as it got."""
    if deployed.get("EVENT_SOURCE_MAPPING"):
        lam.delete_event_source_mapping(UUID=deployed["EVENT_SOURCE_MAPPING"])
    if deployed.get("FUNCTION_NAME"):
        lam.delete_function(FunctionName=deployed["FUNCTION_NAME"])
    for key in ("QUEUE_URL", "REJECTS_QUEUE_URL", "DLQ_URL"):
        if deployed.get(key):
            sqs.delete_queue(QueueUrl=deployed[key])
    if deployed.get("STREAM_NAME"):
        kinesis.delete_stream(StreamName=deployed["STREAM_NAME"], EnforceConsumerDeletion=True)


def fleet(seed: int, devices: int = 4, submissions: int = 12, broken: int = 0) -> list[dict]:
    return sensor_fleet.make_batch(seed, devices, submissions, broken)


def sqs_event(bodies: list[str], queue_arn: str = f"arn:aws:sqs:{REGION}:000000000000:submissions") -> dict:
    """An SQS event as the event source mapping builds it, for direct invokes."""
    now = str(int(time.time() * 1000))
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"rh-{i}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now,
                    "SenderId": "000000000000",
                    "ApproximateFirstReceiveTimestamp": now,
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for i, body in enumerate(bodies)
        ]
    }


@dataclass
class Invocation:
    """One invocation as CloudWatch Logs holds it (MiniStack writes one log
    stream per invocation: START, the function's JSON lines, END, REPORT)."""

    lines: list[dict]  # the function's own JSON log lines

    def not_published(self) -> list[dict]:
        """One warning per submission reported in batchItemFailures."""
        return [line for line in self.lines if line.get("message", "").startswith("submission not fully published")]


def function_invocations(logs, function: str) -> list[Invocation]:
    """Every invocation of `function` so far (ESM batches and direct invokes)."""
    by_stream: dict[str, list[dict]] = {}
    kwargs = {"logGroupName": f"/aws/lambda/{function}"}
    try:
        while True:
            page = logs.filter_log_events(**kwargs)
            for ev in page.get("events", []):
                by_stream.setdefault(ev["logStreamName"], []).append(ev)
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
    except logs.exceptions.ResourceNotFoundException:
        return []
    out = []
    for events in by_stream.values():
        lines = []
        for ev in events:
            if ev["message"].startswith("{"):
                try:
                    lines.append(json.loads(ev["message"]))
                except ValueError:
                    pass
        out.append(Invocation(lines))
    return out


def is_summary(line: dict) -> bool:
    """The function's "batch processed" line, of a batch with records (an
    empty batch is what `answered_invocations` sends to bring lines out)."""
    return line.get("message") == "batch processed" and line.get("received", 0) > 0


def answered_invocations(stack, timeout: float = 30) -> tuple[int, list[dict]]:
    """(how many times the tests and the mapping invoked the function, the
    summary lines the function logged for them), once every one has its line
    or at the timeout.

    The lines are counted over every log stream, not stream by stream:
    MiniStack gives an invocation the output its worker read within a short
    window after the answer (lambda_runtime.py, `_drain_stderr_bounded`), so
    on a loaded machine a line the function printed before answering can land
    in the next invocation's stream, or wait in the worker's queue until there
    is one. While lines are missing, an invocation with no records (answered
    at once; its summary says `received: 0`, so it is not counted) brings the
    waiting ones out. CloudWatch Logs on AWS has no such window."""
    flushes = 0
    deadline = time.monotonic() + timeout
    while True:
        invocations = function_invocations(stack.aws.logs, stack.function)
        count = len(invocations) - flushes
        summaries = [line for inv in invocations for line in inv.lines if is_summary(line)]
        if len(summaries) >= count or time.monotonic() > deadline:
            return count, summaries
        answer, error = stack.invoke({"Records": []})
        assert error is None and answer == {"batchItemFailures": []}, answer
        flushes += 1
        time.sleep(0.5)


def esm_log_lines(emulator, function: str) -> list[str]:
    """MiniStack's log lines about batches of one function (partial failures are counted there)."""
    return [line for line in emulator.log_text().splitlines() if f"Lambda {function} " in line]


def assert_record_format(record_format: str, proxy, records: list[dict]) -> None:
    """What the function sent through the fault proxy is in `record_format`
    (RECORD_FORMAT); aggregated, each Kinesis record on the stream (`records`,
    Stack.records()) holds one submission's events, all of them, in
    `sequence` order: a fleet submission is one record, written or refused whole."""
    sent = [data for call in proxy.put_calls() for _, data in call.entries]
    aggregated = [kpl.user_records(data) is not None for data in sent]
    assert sent and (all(aggregated) if record_format == "aggregated" else not any(aggregated))
    if record_format == "aggregated":
        by_record: dict[tuple[str, str], list[dict]] = {}
        for r in records:
            by_record.setdefault((r["shard"], r["sequence_number"]), []).append(r["data"])
        for events in by_record.values():
            assert len({e["submission_id"] for e in events}) == 1, events
            assert [e["sequence"] for e in events] == list(range(events[0]["event_count"])), events
