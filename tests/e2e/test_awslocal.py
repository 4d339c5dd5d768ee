"""The LocalStack user's path, `awslocal`, run for real (issue 11, item 9).

A LocalStack user deploys with `AWS_CLI=awslocal scripts/deploy-local.sh` and
then works with `awslocal`, which sends every AWS CLI call to LOCALSTACK_HOST
(default localhost:4566; awscli-local's own rule, localstack_client/config.py).
Here LOCALSTACK_HOST is the tests' MiniStack, so the very commands of
docs/local.md's "On LocalStack (Docker)" section run, in order, against an emulator:
the deployment (queues, stream, role, function and the event source mapping,
all created with `awslocal`), a valid and an invalid submission sent with
`awslocal sqs send-message`, the events read back with `awslocal kinesis
get-records`, the invalid body read from the rejects queue. The test also
checks that each command it runs is printed in that section, word for word.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess

import boto3

from edr_tools import fleet as sensor_fleet
from helpers import ROOT, fleet, remove_deployment

# docs/local.md's LocalStack commands, in the order the test runs them. Every
# step runs after SETUP, in a shell whose current directory holds scripts/,
# submission.json and broken.json.
SETUP = "export AWS_DEFAULT_REGION=eu-west-1"
DEPLOY = "AWS_CLI=awslocal scripts/deploy-local.sh"
MAPPING = (
    "awslocal lambda list-event-source-mappings --function-name edr-preprocessor \\\n"
    "    --query 'EventSourceMappings[].[State,BatchSize,FunctionResponseTypes[0]]' --output text"
)
SEND = (
    "Q=$(awslocal sqs get-queue-url --queue-name submissions --query QueueUrl --output text)\n"
    'awslocal sqs send-message --queue-url "$Q" --message-body "$(base64 -w0 < submission.json)"\n'
    'awslocal sqs send-message --queue-url "$Q" --message-body "$(base64 -w0 < broken.json)"'
)
READ = (
    "for shard in $(awslocal kinesis list-shards --stream-name events --query 'Shards[].ShardId' --output text); do\n"
    '    IT=$(awslocal kinesis get-shard-iterator --stream-name events --shard-id "$shard" \\\n'
    "        --shard-iterator-type TRIM_HORIZON --query ShardIterator --output text)\n"
    "    awslocal kinesis get-records --shard-iterator \"$IT\" --query 'Records[].Data' --output text |\n"
    "        tr '\\t' '\\n' | while read -r d; do echo \"$d\" | base64 -d; echo; done\n"
    "done"
)
REJECTS = (
    "R=$(awslocal sqs get-queue-url --queue-name submissions-rejects --query QueueUrl --output text)\n"
    'awslocal sqs receive-message --queue-url "$R" --message-attribute-names All --max-number-of-messages 10'
)
STEPS = [SETUP, DEPLOY, MAPPING, SEND, READ, REJECTS]


def localstack_section() -> str:
    readme = (ROOT / "docs" / "local.md").read_text()
    match = re.search(r"^### On LocalStack \(Docker\)$.*?(?=^##)", readme, re.M | re.S)
    assert match, "docs/local.md has no '### On LocalStack (Docker)' section"
    return match.group(0)


def test_the_readme_shows_the_commands_this_test_runs():
    section = localstack_section()
    missing = [step for step in STEPS if step not in section]
    assert not missing, f"commands of tests/e2e/test_awslocal.py not in docs/local.md's LocalStack section: {missing}"


def test_awslocal_deployment_delivers_through_its_mapping(emulator, function_zip, tmp_path):
    zip_path = tmp_path / "bootstrap.zip"
    zip_path.write_bytes(function_zip)
    (tmp_path / "scripts").symlink_to(ROOT / "scripts")
    good, broken = (
        fleet(seed=1111, devices=1, submissions=1)[0],
        fleet(seed=1112, devices=1, submissions=1, broken=1)[0],
    )
    assert broken["broken"] and not good["broken"]
    for name, entry in (("submission.json", good), ("broken.json", broken)):
        (tmp_path / name).write_text(json.dumps(entry["submission"]))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOCALSTACK_"))}
    env.update(
        LOCALSTACK_HOST=f"127.0.0.1:{emulator.port}",
        ZIP=str(zip_path),
        DISABLE_DEPRECATION_NOTICE="1",
        PATH=f"{ROOT / '.venv-aws' / 'bin'}:{env['PATH']}",
    )

    def run(step: str) -> str:
        out = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", f"{SETUP}\n{step}"],
            cwd=tmp_path,
            env=env,
            text=True,
            capture_output=True,
            timeout=300,
        )
        assert out.returncode == 0, f"{step}\n--- stderr ---\n{out.stderr[-4000:]}"
        return out.stdout

    # The SDK's view of the same deployment, in the docs' region.
    sqs, kinesis, lam = (
        boto3.client(
            service,
            endpoint_url=emulator.endpoint,
            region_name="eu-west-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        for service in ("sqs", "kinesis", "lambda")
    )
    deployed = {}
    try:
        deployed = dict(line.split("=", 1) for line in run(DEPLOY).splitlines() if re.match(r"^[A-Z_]+=", line))
        assert ":eu-west-1:" in deployed["QUEUE_ARN"], deployed
        assert run(MAPPING).split() == ["Enabled", "10", "ReportBatchItemFailures"]

        run(SEND)
        sensor_fleet.wait_drained(sqs, deployed["QUEUE_URL"], timeout=90, quiet_polls=3)

        # The events, as docs/local.md's loop prints them: one JSON record per line.
        records = [json.loads(line) for line in run(READ).splitlines() if line.strip()]
        sub = good["submission"]
        assert sorted(r["sequence"] for r in records) == list(range(len(sensor_fleet.expected_events(sub))))
        assert {r["submission_id"] for r in records} == {sub["submission_id"]}
        assert {r["device_id"] for r in records} == {sub["device_id"]}
        # ... and, read with the SDK, the valid submission checked field by field.
        by_sid = sensor_fleet.group_by_submission(sensor_fleet.read_stream(kinesis, deployed["STREAM_NAME"]))
        assert set(by_sid) == {sub["submission_id"]}, "the broken submission published nothing"
        assert sensor_fleet.check_submission(sub, by_sid[sub["submission_id"]]) == []

        (message,) = json.loads(run(REJECTS))["Messages"]
        assert base64.b64decode(message["Body"]) == (tmp_path / "broken.json").read_bytes()
        assert message["MessageAttributes"]["reason"]["StringValue"] == sensor_fleet.BROKEN_KINDS[broken["broken"]]
        assert sensor_fleet.queue_depth(sqs, deployed["DLQ_URL"]) == 0
    finally:
        remove_deployment(deployed, sqs=sqs, kinesis=kinesis, lam=lam)
