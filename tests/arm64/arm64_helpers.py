"""Helpers of the arm64 tests (see conftest.py for the fixtures)."""

from __future__ import annotations

import subprocess
import time

from edr_tools import ROOT
from edr_tools import emulator as local_emulator
from edr_tools.bench.coldstart import memory_kb
from edr_tools.bench.lambda_stub import Invocation, RuntimeApi

REGION = local_emulator.local_region()
LOGS = ROOT / ".cache" / "arm64"
ELF_MACHINE_AARCH64 = 183
# A fixed key for these tests only (docs/contract.md, PIPELINE_KEY).
PIPELINE_KEY = "arm64-tests-only-pipeline-key-0123456789"


class Function:
    """One function process under the stub: the arm64 binary through the runner."""

    def __init__(self, argv: list[str], env: dict[str, str], api: RuntimeApi, stdout, name: str):
        api.reset()
        self.api, self.name = api, name
        self.stdout_path = LOGS / f"{name}.stdout"
        self.stderr_path = LOGS / f"{name}.stderr"
        out = open(self.stdout_path, "wb") if stdout is None else stdout
        with out, open(self.stderr_path, "wb") as err:
            started = time.perf_counter()
            self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        self.started = started

    def wait_ready(self, timeout: float = 120) -> float:
        """Seconds from the spawn to the first /next (init done), as Lambda counts init."""
        if not self.api.first_next.wait(timeout):
            self.stop()
            raise AssertionError(f"{self.name}: no /next within {timeout}s; stderr: {self.stderr()[-2000:]}")
        return self.api.first_next_at - self.started

    def invoke(self, payload: bytes, timeout: float = 300) -> Invocation:
        """Hands the stub one invocation and waits for its answer; fails at
        once if the process dies first (a panic with panic = "abort")."""
        inv = Invocation(payload)
        self.api.invocations[inv.request_id] = inv
        self.api.pending.put(inv)
        deadline = time.monotonic() + timeout
        while not inv.done.wait(0.2):
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name}: the process exited with {self.proc.returncode} before answering; "
                    f"stderr: {self.stderr()[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no answer within {timeout}s")
        return inv

    def memory(self) -> dict[str, int]:
        return memory_kb(self.proc.pid)

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> None:
        self.api.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
