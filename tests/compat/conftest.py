"""The three ends of the compatibility tests, each a function of a JSON request:
this project's (examples/kpl_compat.rs, through cargo), awslabs' Node.js library
(kinesis_agg.js on the node_modules the Makefile installs) and awslabs' Python
library (imported: this environment is .venv-compat)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / ".cache" / "compat-node" / "node_modules"


def _run(command, request, **kwargs):
    done = subprocess.run(command, input=json.dumps(request), capture_output=True, text=True, cwd=ROOT, **kwargs)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="session")
def rust():
    """The aggregator and deaggregator of this project (a dev build of the example)."""
    build = ["cargo", "build", "--quiet", "--locked", "--example", "kpl_compat", "--message-format=json"]
    done = subprocess.run(build, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    artifacts = [json.loads(line) for line in done.stdout.splitlines()]
    (binary,) = [
        a["executable"] for a in artifacts if a.get("target", {}).get("name") == "kpl_compat" and a.get("executable")
    ]
    return lambda request: _run([binary], request)


@pytest.fixture(scope="session")
def node():
    """awslabs' aws-kinesis-agg for Node.js."""
    assert NODE_MODULES.is_dir(), "make .cache/compat-node/.installed installs it"
    env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
    return lambda request: _run(["node", str(Path(__file__).with_name("kinesis_agg.js"))], request, env=env)
