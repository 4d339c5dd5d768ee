"""The sample events in events/ through `cargo lambda invoke --data-file`, as
docs/local.md tells a user to run them: `cargo lambda watch` serves the Runtime API
(here with --only-lambda-apis, running the release binary the other tests use
instead of compiling a debug one), the function publishes to the emulator's
Kinesis, and the response is the documented one."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from edr_tools import emulator as local_emulator
from edr_tools import fleet as sensor_fleet
from helpers import REGION, ROOT, log_path

EVENTS = sorted((ROOT / "events").glob("*.json"))
# cargo-lambda from mk/deploy.mk's .venv-lambda (requirements/cargo-lambda.txt).
CARGO_LAMBDA_BIN = Path(os.environ.get("E2E_CARGO_LAMBDA_BIN") or ROOT / ".venv-lambda" / "bin")

# The documented response of each sample event with Kinesis reachable: nothing
# to retry (invalid submissions are dropped, and sent to the rejects queue).
DOCUMENTED = {
    "sensor-batch.json": {"batchItemFailures": []},
    "invalid-mix.json": {"batchItemFailures": []},
    "fifo-batch.json": {"batchItemFailures": []},
    "large-batch.json": {"batchItemFailures": []},
}

# The function's secret (docs/contract.md, PIPELINE_KEY), for these local runs only.
PIPELINE_KEY = "e2e-only-pipeline-key-0123456789abcdef"


def cargo_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{CARGO_LAMBDA_BIN}:{env['PATH']}"
    return env


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


def stop_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def watch():
    """`cargo lambda watch --only-lambda-apis` on a free loopback port."""
    if not (CARGO_LAMBDA_BIN / "cargo-lambda").exists():
        pytest.fail(f"no cargo-lambda in {CARGO_LAMBDA_BIN}: `make test-e2e` installs it (.venv-lambda)")
    port = local_emulator.free_port()
    log = log_path("cargo-lambda-watch.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        ["cargo", "lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", str(port)],
        cwd=ROOT,
        env=cargo_env(),
        stdin=subprocess.DEVNULL,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_port(port)
        yield port
    finally:
        stop_group(proc)


class Function:
    """The release binary polling the watch server's Runtime API."""

    def __init__(self, binary: Path, port: int, env: dict):
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [str(binary)],
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{port}/.rt",
                "AWS_LAMBDA_FUNCTION_NAME": "_",
                "AWS_LAMBDA_FUNCTION_VERSION": "1",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "4096",
                "AWS_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
                **env,
            },
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> str:
        stop_group(self.proc)
        self.log.seek(0)
        text = self.log.read().decode(errors="replace")
        self.log.close()
        return text[-4000:]


def invoke(port: int, event_file: Path) -> dict:
    out = subprocess.run(
        [
            "cargo",
            "lambda",
            "invoke",
            "-A",
            "127.0.0.1",
            "-P",
            str(port),
            "--data-file",
            str(event_file),
            "--output-format",
            "json",
        ],
        cwd=ROOT,
        env=cargo_env(),
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def decoded_submission_id(body: str) -> str | None:
    """The submission id of an accepted body: base64 of JSON, or plain JSON."""
    try:
        doc = json.loads(base64.b64decode(body, validate=True))
    except ValueError:
        try:
            doc = json.loads(body)
        except ValueError:
            return None
    return doc.get("submission_id") if isinstance(doc, dict) else None


@pytest.mark.skipif(not EVENTS, reason="no sample events in events/")
@pytest.mark.parametrize("event_file", EVENTS, ids=[p.name for p in EVENTS])
def test_sample_event_gives_documented_response(event_file, watch, aws, bootstrap_binary):
    name = f"e2e-invoke-{uuid.uuid4().hex[:8]}"
    aws.kinesis.create_stream(StreamName=name, ShardCount=2)
    aws.kinesis.get_waiter("stream_exists").wait(StreamName=name)
    rejects_url = aws.sqs.create_queue(QueueName=f"{name}-rejects")["QueueUrl"]
    event = json.loads(event_file.read_text())
    records = event["Records"]

    fn = Function(
        bootstrap_binary,
        watch,
        {
            "STREAM_NAME": name,
            "REJECTS_QUEUE_URL": rejects_url,
            "AWS_ENDPOINT_URL": aws.endpoint,
            "PIPELINE_KEY": PIPELINE_KEY,
        },
    )
    try:
        response = invoke(watch, event_file)
    finally:
        log = fn.stop()
    assert response == DOCUMENTED.get(event_file.name, {"batchItemFailures": []}), log

    rejected = {
        m["MessageAttributes"]["source_message_id"]["StringValue"]: m
        for m in sensor_fleet.drain_queue(aws.sqs, rejects_url)
    }
    by_id = {r["messageId"]: r for r in records}
    assert set(rejected) <= set(by_id)
    for mid, msg in rejected.items():
        assert msg["Body"] == by_id[mid]["body"]
    published = sensor_fleet.group_by_submission(sensor_fleet.read_stream(aws.kinesis, name))
    accepted = [r for r in records if r["messageId"] not in rejected]
    assert set(published) == {decoded_submission_id(r["body"]) for r in accepted}
    for pub in published.values():
        assert [r["sequence"] for r in pub.first_copies()] == list(range(pub.records[0]["event_count"]))

    # Without a reachable Kinesis every accepted record is reported for retry,
    # and the invalid ones still are not.
    down = Function(
        bootstrap_binary,
        watch,
        {
            "STREAM_NAME": name,
            "PIPELINE_KEY": PIPELINE_KEY,
            "AWS_ENDPOINT_URL": aws.endpoint,
            "AWS_ENDPOINT_URL_KINESIS": "http://127.0.0.1:9",
            "MAX_ATTEMPTS": "2",
            "RETRY_BASE_DELAY_MS": "10",
            "RETRY_MAX_DELAY_MS": "20",
            "KINESIS_CONNECT_TIMEOUT_MS": "200",
        },
    )
    try:
        response = invoke(watch, event_file)
    finally:
        log = down.stop()
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == sorted(
        r["messageId"] for r in accepted
    ), log

    aws.sqs.delete_queue(QueueUrl=rejects_url)
    aws.kinesis.delete_stream(StreamName=name)
