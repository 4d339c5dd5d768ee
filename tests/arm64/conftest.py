"""Fixtures of the arm64 tests: the arm64 release build of the function, the
one `sam build` and `sam deploy` ship by default, run under qemu-user the way
Lambda runs it, against the Runtime API stub of the benchmarks
(`edr_tools.bench.lambda_stub`), with MiniStack's Kinesis and SQS behind it.

Run them with `make test-arm64`: it builds the binary (`make arm64-package`,
sam build's `cargo lambda build --release --arm64`) and passes
ARM64_BOOTSTRAP (the binary) and ARM64_RUNNER (`qemu-aarch64 -L <sysroot>`
from scripts/arm64-toolchain.sh, empty on an aarch64 machine).
"""

from __future__ import annotations

import os
import shlex
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from arm64_helpers import ELF_MACHINE_AARCH64, LOGS, PIPELINE_KEY, REGION, Function
from edr_tools import ROOT
from edr_tools import emulator as local_emulator
from edr_tools.bench.lambda_stub import RuntimeApi


@pytest.fixture(scope="session")
def arm64_binary() -> Path:
    path = Path(os.environ.get("ARM64_BOOTSTRAP") or ROOT / "target" / "arm64" / "bootstrap")
    if not path.is_file():
        pytest.fail(f"no arm64 function binary at {path}: run `make test-arm64` (it builds it), or set ARM64_BOOTSTRAP")
    header = path.read_bytes()[:20]
    machine = int.from_bytes(header[18:20], "little")
    assert header[:4] == b"\x7fELF" and machine == ELF_MACHINE_AARCH64, f"{path}: ELF machine {machine}, not aarch64"
    return path


@pytest.fixture(scope="session")
def runner() -> list[str]:
    """The command prefix that runs an aarch64 binary here (qemu-aarch64 -L ...)."""
    if "ARM64_RUNNER" not in os.environ:
        pytest.fail("ARM64_RUNNER is not set: run `make test-arm64` (scripts/arm64-toolchain.sh run prints it)")
    return shlex.split(os.environ["ARM64_RUNNER"])


@pytest.fixture(scope="session")
def emulator():
    LOGS.mkdir(parents=True, exist_ok=True)
    ms = local_emulator.MiniStack(log_path=LOGS / "ministack.log", region=REGION)
    ms.start()
    try:
        yield ms
    finally:
        ms.stop()


@pytest.fixture(scope="session")
def aws(emulator):
    config = Config(retries={"max_attempts": 3, "mode": "standard"})

    def client(service: str):
        return boto3.client(
            service,
            endpoint_url=emulator.endpoint,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=config,
        )

    return {"sqs": client("sqs"), "kinesis": client("kinesis")}


@pytest.fixture
def stream(aws) -> str:
    """A fresh two-shard stream, as `scripts/deploy-local.sh` makes."""
    name = f"arm64-{uuid.uuid4().hex[:8]}"
    aws["kinesis"].create_stream(StreamName=name, ShardCount=2)
    aws["kinesis"].get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    return name


@pytest.fixture
def rejects_queue(aws) -> str:
    return aws["sqs"].create_queue(QueueName=f"arm64-{uuid.uuid4().hex[:8]}-rejects")["QueueUrl"]


@pytest.fixture(scope="session")
def runtime_api():
    api = RuntimeApi(function_arn=f"arn:aws:lambda:{REGION}:000000000000:function:edr-preprocessor")
    yield api
    api.shutdown()


@pytest.fixture
def start_function(arm64_binary, runner, emulator, runtime_api, request):
    """start_function(env=..., stdout=None) -> Function, stopped after the test."""
    started: list[Function] = []
    LOGS.mkdir(parents=True, exist_ok=True)

    def start(env: dict[str, str], stdout=None) -> Function:
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "HOME": str(LOGS),  # no ~/.aws files, as on Lambda
            "AWS_LAMBDA_RUNTIME_API": runtime_api.address,
            "AWS_LAMBDA_FUNCTION_NAME": "edr-preprocessor",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/edr-preprocessor",
            "AWS_LAMBDA_LOG_STREAM_NAME": "arm64",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL": emulator.endpoint,
            "PIPELINE_KEY": PIPELINE_KEY,
            **env,
        }
        name = f"{request.node.name}-{len(started)}".replace("/", "_")
        fn = Function([*runner, str(arm64_binary)], full_env, runtime_api, stdout, name)
        started.append(fn)
        return fn

    yield start
    for fn in started:
        fn.stop()
