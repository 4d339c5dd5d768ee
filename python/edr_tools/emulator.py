"""Start and stop a MiniStack AWS emulator on the loopback, leaving nothing behind.

Used by `edr_tools.demo`, `edr_tools.soak`, the end-to-end tests (`tests/e2e`)
and `make emulator`.

MiniStack runs in its own virtual environment (`.venv-emulator`: it pins
botocore exactly) in its own process group, so stopping the group also ends
the `bootstrap` processes it spawned for Lambda functions. It gets a private
TMPDIR, because it unpacks function code (and writes its pid file) under the
temp directory and never removes it; `stop()` deletes that directory.

Its environment is built from scratch rather than inherited: MiniStack hands
its whole environment to every function it runs, so a stray AWS_* variable in
the caller's shell would otherwise leak into the function. AWS_ENDPOINT_URL is
set to the emulator's own URL, which MiniStack injects into every function it
runs (LocalStack does the same), so a deployment needs no endpoint of its own.
A function can still send one service elsewhere with a service-specific
variable such as AWS_ENDPOINT_URL_KINESIS, which the AWS SDKs prefer.

CLI:  python -m edr_tools.emulator run [--port 4566]   foreground until Ctrl-C
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from edr_tools import ROOT

DEFAULT_PYTHON = ROOT / ".venv-emulator" / "bin" / "python"
HOST = "127.0.0.1"
# The region of the local loop: that of the original homework environment,
# whose LocalStack and sensor fleet run in eu-west-1. LOCAL_REGION (the make
# variable, passed on by mk/local.mk) changes it for every local script.
DEFAULT_REGION = "eu-west-1"


def local_region() -> str:
    """LOCAL_REGION, else eu-west-1: where the local scripts deploy and look."""
    return os.environ.get("LOCAL_REGION") or DEFAULT_REGION


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex((host, port)) == 0


class MiniStack:
    """One MiniStack process (group) on HOST:port."""

    def __init__(
        self,
        port: int | None = None,
        python: str | os.PathLike | None = None,
        log_path: str | os.PathLike | None = None,
        log_level: str = "INFO",
        extra_env: dict[str, str] | None = None,
        region: str | None = None,
    ):
        self.python = str(python or os.environ.get("MINISTACK_PYTHON") or DEFAULT_PYTHON)
        self.port = port or free_port()
        self.log_path = Path(log_path) if log_path else None
        self.log_level = log_level
        # MiniStack keeps every resource per account and region, taking the
        # region from each request's signature; this is only its default, for
        # requests that name none.
        self.region = region or local_region()
        self.extra_env = dict(extra_env or {})
        self.proc: subprocess.Popen | None = None
        self.workdir: Path | None = None
        self._log_file = None

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def environment(self) -> dict[str, str]:
        assert self.workdir is not None
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "TMPDIR": str(self.workdir),
            "GATEWAY_PORT": str(self.port),
            "BIND_HOST": HOST,
            "MINISTACK_HOST": HOST,
            "LAMBDA_EXECUTOR": "local",
            "LOG_LEVEL": self.log_level,
            "MINISTACK_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint,
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60.0) -> MiniStack:
        if not Path(self.python).exists():
            raise RuntimeError(
                f"MiniStack's Python not found at {self.python}; run `make emulator-venv` (or set MINISTACK_PYTHON)"
            )
        if port_in_use(self.port):
            raise RuntimeError(f"{HOST}:{self.port} is already in use")
        self.workdir = Path(tempfile.mkdtemp(prefix=f"ministack-{self.port}-"))
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "wb")
        else:
            self._log_file = open(self.workdir / "ministack.log", "wb")
        self.proc = subprocess.Popen(
            [self.python, "-m", "ministack"],
            env=self.environment(),
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() ends its children too
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"MiniStack exited with code {self.proc.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/_ministack/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.2)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"MiniStack did not answer on {self.endpoint} within {timeout}s:\n{tail}")

    def log_tail(self, lines: int = 40) -> str:
        path = self.log_path or (self.workdir / "ministack.log" if self.workdir else None)
        if not path or not Path(path).exists():
            return ""
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])

    def log_text(self) -> str:
        path = self.log_path or (self.workdir / "ministack.log" if self.workdir else None)
        if not path or not Path(path).exists():
            return ""
        return Path(path).read_text(errors="replace")

    def stop(self, grace: float = 10.0) -> None:
        """Ends the whole process group (MiniStack and every bootstrap it spawned)
        and removes the temp directory. Safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is not None:
            pgid = proc.pid  # leader of its own session/group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
            # Children outlive the leader for a moment (or ignore SIGTERM): make sure.
            deadline = time.monotonic() + grace
            while _group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> MiniStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run MiniStack in the foreground until Ctrl-C")
    run.add_argument("--port", type=int, default=int(os.environ.get("EMULATOR_PORT", "4566")))
    run.add_argument("--log-level", default="INFO")
    run.add_argument("--region", default=local_region(), help="default region (LOCAL_REGION, else eu-west-1)")
    args = parser.parse_args(argv)

    log = ROOT / ".cache" / "local" / f"ministack-{args.port}.log"
    emulator = MiniStack(port=args.port, log_path=log, log_level=args.log_level, region=args.region)

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        emulator.start()
        print(f"MiniStack is up at {emulator.endpoint} (log: {log.relative_to(ROOT)})", flush=True)
        print(
            f"  export AWS_ENDPOINT_URL={emulator.endpoint} AWS_ACCESS_KEY_ID=test "
            f"AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION={emulator.region}",
            flush=True,
        )
        print("  Ctrl-C stops it and removes everything it created.", flush=True)
        while emulator.proc is not None and emulator.proc.poll() is None:
            time.sleep(0.5)
        print("MiniStack exited on its own; see the log.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping MiniStack", flush=True)
        return 0
    finally:
        emulator.stop()


if __name__ == "__main__":
    sys.exit(main())
