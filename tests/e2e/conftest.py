"""Fixtures of the end-to-end tests: a MiniStack emulator on the loopback, the
real `bootstrap` binary deployed as a provided.al2023 Lambda behind an SQS event
source mapping, and helpers to read what the function published.

The tests start and stop the emulator themselves (one per session, on a free
port, in its own process group) and check at the end that no process of it is
left. Run them with `make test-e2e`, which builds the binary (dev profile) and the
virtual environments first; `E2E_BOOTSTRAP=/path/to/bootstrap` tests another
build.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from edr_tools import emulator as local_emulator
from edr_tools.fault_proxy import KinesisFaultProxy
from helpers import REGION, ROOT, Aws, Deployer, log_path


def bootstrap_path() -> Path:
    env = os.environ.get("E2E_BOOTSTRAP")
    return Path(env) if env else ROOT / "target" / "e2e" / "bootstrap"


@pytest.fixture(scope="session")
def bootstrap_binary() -> Path:
    path = bootstrap_path()
    if not path.is_file():
        pytest.fail(
            f"no function binary at {path}: run `make test-e2e` (it builds it) "
            "or `make e2e-package`, or set E2E_BOOTSTRAP"
        )
    return path


@pytest.fixture(scope="session")
def function_zip(bootstrap_binary) -> bytes:
    """The deployment package: the binary as `bootstrap`, executable."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = (stat.S_IFREG | 0o755) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, bootstrap_binary.read_bytes())
    return buf.getvalue()


@pytest.fixture(scope="session")
def emulator():
    log = log_path("ministack.log")
    ms = local_emulator.MiniStack(log_path=log)
    ms.start()
    pgid = ms.proc.pid
    try:
        yield ms
    finally:
        ms.stop()
    # No process of the emulator's group (MiniStack or a bootstrap it ran) is left.
    assert not local_emulator._group_alive(pgid), "emulator processes left behind"
    assert ms.workdir is None


def _client(service: str, endpoint: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )


@pytest.fixture(scope="session")
def aws(emulator) -> Aws:
    e = emulator.endpoint
    return Aws(
        e, _client("sqs", e), _client("kinesis", e), _client("lambda", e), _client("iam", e), logs=_client("logs", e)
    )


@pytest.fixture(scope="session")
def role_arn(aws) -> str:
    import json

    doc = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
    )
    return aws.iam.create_role(RoleName="edr-preprocessor-e2e", AssumeRolePolicyDocument=doc)["Role"]["Arn"]


@pytest.fixture
def deploy(aws, role_arn, function_zip):
    d = Deployer(aws, role_arn, function_zip)
    yield d
    d.teardown()


@pytest.fixture
def kinesis_proxy(emulator):
    proxy = KinesisFaultProxy(emulator.endpoint).start()
    yield proxy
    proxy.stop()
