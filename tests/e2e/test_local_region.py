"""The local loop runs in the region of the original homework environment
(issue 11, item 10).

The original environment (the public sabaferoz/EDR repository: LocalStack and
`sensor-fleet/main.py`) runs in eu-west-1: its sensor fleet's boto3 client has
the region written in, looks the `submissions` queue up by name and swallows
every client error. MiniStack, like LocalStack and AWS, keeps queues and
streams per region (the region of each request's signature), so a deployment
in any other region leaves that fleet sending to a queue that does not exist,
silently. Every local target therefore defaults to eu-west-1 through one make
variable, LOCAL_REGION (mk/deploy.mk), which mk/local.mk passes to the scripts.
"""

from __future__ import annotations

import os
import re
import subprocess
import time

import boto3
import pytest
from botocore.config import Config

from edr_tools import fleet as sensor_fleet
from helpers import ROOT, fleet, remove_deployment

# The original fleet's region (sensor-fleet/main.py: Config(region_name='eu-west-1')).
FLEET_REGION = "eu-west-1"
# The make variables and environment a user's shell might carry; the tests
# below run make with the defaults, so they drop them.
NOT_DEFAULTS = ("LOCAL_REGION", "MAKEFLAGS", "MAKEOVERRIDES", "MFLAGS", "MAKELEVEL")


def default_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in NOT_DEFAULTS}


def make_dry_run(target: str, *variables: str) -> str:
    """The commands `make <target>` would run (its build steps not included)."""
    out = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", "local-package", target, *variables],
        cwd=ROOT,
        env=default_env(),
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def regions_in(commands: str) -> set[str]:
    found = set(re.findall(r"\b(?:AWS_REGION|AWS_DEFAULT_REGION|LOCAL_REGION)=([a-z0-9-]+)", commands))
    found |= set(re.findall(r"--region ([a-z0-9-]+)", commands))
    return found


# Each local target and the setting through which it passes the region on.
LOCAL_TARGETS = {
    "emulator": "--region",  # MiniStack's default region, and the exports it prints
    "deploy-local": "AWS_DEFAULT_REGION=",  # scripts/deploy-local.sh (the AWS CLI)
    "demo": "AWS_REGION=",  # edr_tools.demo
    "watch": "--env-var AWS_REGION=",  # the function under cargo lambda watch
    "test-e2e": "LOCAL_REGION=",  # these tests (helpers.REGION)
    "soak": "LOCAL_REGION=",  # edr_tools.soak
}


@pytest.mark.parametrize("target", sorted(LOCAL_TARGETS))
def test_every_local_target_defaults_to_eu_west_1_through_local_region(target):
    commands = make_dry_run(target)
    assert LOCAL_TARGETS[target] in commands, commands
    assert regions_in(commands) == {FLEET_REGION}, commands
    # One setting moves them all.
    moved = make_dry_run(target, "LOCAL_REGION=ap-southeast-2")
    assert regions_in(moved) == {"ap-southeast-2"}, moved


def test_the_original_fleet_finds_the_queue_of_the_default_local_deployment(emulator, function_zip, tmp_path):
    """`make deploy-local` with its defaults against a running emulator (here
    the tests' MiniStack), then what the original fleet does: a client with
    eu-west-1 written in looks the `submissions` queue up by name and sends a
    base64 submission; its events reach the `events` stream, complete and in
    order. Deployed in us-east-1 (the old default), get_queue_url fails with
    QueueDoesNotExist, which the original fleet swallows."""
    zip_path = tmp_path / "bootstrap.zip"
    zip_path.write_bytes(function_zip)
    # The package is the one under test (E2E_BOOTSTRAP), not rebuilt: -o local-package.
    out = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "-o",
            "local-package",
            "deploy-local",
            f"EMULATOR_PORT={emulator.port}",
            f"LOCAL_ZIP={zip_path}",
        ],
        cwd=ROOT,
        env=default_env(),
        text=True,
        capture_output=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    deployed = dict(line.split("=", 1) for line in out.stdout.splitlines() if re.match(r"^[A-Z_]+=", line))

    def client(service):
        # As sensor-fleet/main.py builds it, with the dummy credentials of docs/local.md.
        return boto3.client(
            service,
            endpoint_url=emulator.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(region_name=FLEET_REGION, retries={"max_attempts": 3, "mode": "standard"}),
        )

    sqs, kinesis = client("sqs"), client("kinesis")
    try:
        queue_url = sqs.get_queue_url(QueueName="submissions")["QueueUrl"]
        assert queue_url == deployed["QUEUE_URL"]
        assert f":{FLEET_REGION}:" in deployed["QUEUE_ARN"], deployed
        entries = fleet(seed=1010, devices=2, submissions=3)
        for e in entries:  # one SendMessage per submission, as the original fleet sends them
            sqs.send_message(QueueUrl=queue_url, MessageBody=e["body"])
        sensor_fleet.wait_drained(sqs, queue_url, timeout=90, quiet_polls=3)
        deadline = time.monotonic() + 30
        while True:
            by_sid = sensor_fleet.group_by_submission(sensor_fleet.read_stream(kinesis, "events"))
            problems = [
                p
                for e in entries
                for p in sensor_fleet.check_submission(e["submission"], by_sid.get(e["submission"]["submission_id"]))
            ]
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert problems == []
    finally:
        # Where the deployment went (on the old default, us-east-1).
        region = deployed.get("QUEUE_ARN", f"arn:aws:sqs:{FLEET_REGION}").split(":")[3]
        sqs, kinesis, lam = (
            boto3.client(
                service,
                endpoint_url=emulator.endpoint,
                region_name=region,
                aws_access_key_id="test",
                aws_secret_access_key="test",
            )
            for service in ("sqs", "kinesis", "lambda")
        )
        remove_deployment(deployed, sqs=sqs, kinesis=kinesis, lam=lam)
