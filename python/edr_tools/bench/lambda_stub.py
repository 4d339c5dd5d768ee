"""A minimal AWS Lambda Runtime API and Kinesis PutRecords endpoint on loopback.

Used by edr_tools.bench.coldstart to run a Lambda function process (the Rust
`bootstrap`, or the Python reference under awslambdaric) the way Lambda
does, and measure it from outside:

- Runtime API (`AWS_LAMBDA_RUNTIME_API`): `GET /2018-06-01/runtime/invocation/next`
  hands out queued events with the usual headers (request id, deadline,
  function ARN, trace id); `.../response` and `.../error` complete them;
  `/runtime/init/error` records an init failure. The time of the first
  `/next` request is when the function finished its init.
- Kinesis (`AWS_ENDPOINT_URL`): answers `PutRecords` in the AWS JSON 1.1
  protocol (both the Rust SDK and boto3 speak it) with a sequence number for
  every entry after an optional fixed latency, and counts calls and records.
  Over HTTPS (as Kinesis is) with `tls=True`: a throw-away CA and server
  certificate for 127.0.0.1 are made with the `openssl` command; processes
  trust the CA through `SSL_CERT_FILE` (rustls-native-certs) and
  `AWS_CA_BUNDLE` (botocore), see `KinesisStub.client_env()`.

Standard library (and the openssl command for TLS) only. Times are
`time.perf_counter()` values.
"""

from __future__ import annotations

import queue
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RUNTIME_PREFIX = "/2018-06-01/runtime"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a function process killed mid-request resets its connections: expected


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # One write per response and no Nagle: otherwise delayed ACKs add 40 ms stalls.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):  # no per-request noise
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(body)
        self.flush_headers()


class Invocation:
    def __init__(self, payload: bytes):
        self.request_id = str(uuid.uuid4())
        self.payload = payload
        self.delivered_at: float | None = None
        self.finished_at: float | None = None
        self.response: bytes | None = None
        self.error: bytes | None = None
        self.done = threading.Event()

    @property
    def duration(self) -> float:
        return self.finished_at - self.delivered_at


class RuntimeApi:
    """One function process at a time: `reset()` before starting the next one."""

    def __init__(self, function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:bench"):
        self.function_arn = function_arn
        self.reset()
        api = self

        class Handler(_Quiet):
            def setup(self):
                super().setup()
                # The process this connection belongs to: a /next that a
                # killed process had sent, read only after reset(), must not
                # count as the new process asking, nor take its events.
                self.generation = api.generation

            def do_GET(self):
                if self.path != f"{RUNTIME_PREFIX}/invocation/next":
                    return self._send(404)
                if self.generation != api.generation:
                    return self._send(410)
                api._next_requested()
                inv = api._take(api.pending, self.generation)
                if inv is None:  # shutting down
                    return self._send(410)
                deadline_ms = int(time.time() * 1000) + api.deadline_s * 1000
                inv.delivered_at = time.perf_counter()
                self._send(
                    200,
                    inv.payload,
                    {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": api.function_arn,
                        "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
                    },
                )

            def do_POST(self):
                body = self._body()
                now = time.perf_counter()
                if self.path == f"{RUNTIME_PREFIX}/init/error":
                    api.init_error = body
                    api.first_next.set()
                    return self._send(202, b"{}")
                parts = self.path[len(RUNTIME_PREFIX) :].strip("/").split("/")
                if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    inv = api.invocations.get(parts[1])
                    if inv is None:
                        return self._send(404)
                    inv.finished_at = now
                    if parts[2] == "response":
                        inv.response = body
                    else:
                        inv.error = body
                    inv.done.set()
                    return self._send(202, b"{}")
                return self._send(404)

        self.server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def reset(self) -> None:
        # A /next request of a previous (killed) process may still be
        # waiting: the generation keeps it from taking the new process' events.
        self.generation = getattr(self, "generation", 0) + 1
        self.first_next = threading.Event()
        self.first_next_at: float | None = None
        self.init_error: bytes | None = None
        self.pending: queue.Queue = queue.Queue()
        self.invocations: dict[str, Invocation] = {}
        self.deadline_s = 900
        self.closed = False

    def _next_requested(self) -> None:
        if not self.first_next.is_set():
            self.first_next_at = time.perf_counter()
            self.first_next.set()

    def _take(self, pending: queue.Queue, generation: int) -> Invocation | None:
        while not self.closed and generation == self.generation:
            try:
                return pending.get(timeout=0.2)
            except queue.Empty:
                continue
        return None

    def invoke(self, payload: bytes, timeout: float = 300) -> Invocation:
        inv = Invocation(payload)
        self.invocations[inv.request_id] = inv
        self.pending.put(inv)
        if not inv.done.wait(timeout):
            raise TimeoutError("the function did not answer the invocation in time")
        return inv

    def close(self) -> None:
        self.closed = True

    def shutdown(self) -> None:
        self.closed = True
        self.server.shutdown()


def make_certificates(directory: str) -> tuple[str, str, str]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key) paths."""
    d = Path(directory)
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        str(d / "ca.key"),
        "-out",
        str(d / "ca.pem"),
        "-days",
        "2",
        "-subj",
        "/CN=bench CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    )
    run(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        str(d / "server.key"),
        "-out",
        str(d / "server.csr"),
        "-subj",
        "/CN=127.0.0.1",
    )
    (d / "ext.cnf").write_text(
        "basicConstraints=critical,CA:FALSE\nsubjectAltName=IP:127.0.0.1\n"
        "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n"
    )
    run(
        "x509",
        "-req",
        "-in",
        str(d / "server.csr"),
        "-CA",
        str(d / "ca.pem"),
        "-CAkey",
        str(d / "ca.key"),
        "-CAcreateserial",
        "-out",
        str(d / "server.pem"),
        "-days",
        "2",
        "-extfile",
        str(d / "ext.cnf"),
    )
    return str(d / "ca.pem"), str(d / "server.pem"), str(d / "server.key")


class KinesisStub:
    """PutRecords on loopback; every entry written, after `latency_s`."""

    def __init__(self, latency_s: float = 0.0, tls: bool = False):
        self.latency_s = latency_s
        self.tls = tls
        self.ca_file: str | None = None
        self.lock = threading.Lock()
        self.calls = 0
        self.records = 0
        self.bytes = 0
        self.other_requests: list[str] = []
        self.sequence = 0
        stub = self

        class Handler(_Quiet):
            def do_POST(self):
                body = self._body()
                target = self.headers.get("X-Amz-Target", "")
                if not target.endswith(".PutRecords"):
                    with stub.lock:
                        stub.other_requests.append(f"{self.path} {target} {self.headers.get('Content-Type')}")
                    return self._send(
                        400, b'{"__type":"UnknownOperationException"}', {"Content-Type": "application/x-amz-json-1.1"}
                    )
                # Every entry has one PartitionKey member: counting them is all
                # the stub needs, and keeps its own CPU out of the measurement.
                entries = body.count(b'"PartitionKey"')
                if stub.latency_s:
                    time.sleep(stub.latency_s)
                with stub.lock:
                    stub.calls += 1
                    stub.records += entries
                    stub.bytes += len(body)
                    first = stub.sequence
                    stub.sequence += entries
                answer = (
                    b'{"FailedRecordCount":0,"Records":['
                    + b",".join(
                        b'{"SequenceNumber":"4958%052d","ShardId":"shardId-000000000000"}' % (first + i)
                        for i in range(entries)
                    )
                    + b"]}"
                )
                self._send(200, answer, {"Content-Type": "application/x-amz-json-1.1"})

        self.server = _Server(("127.0.0.1", 0), Handler)
        if tls:
            self._certs = tempfile.TemporaryDirectory(prefix="bench-tls-")
            self.ca_file, cert, key = make_certificates(self._certs.name)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    def client_env(self) -> dict[str, str]:
        """What a function process needs to reach (and trust) this endpoint."""
        env = {"AWS_ENDPOINT_URL": self.url}
        if self.ca_file:
            env.update(SSL_CERT_FILE=self.ca_file, AWS_CA_BUNDLE=self.ca_file)
        return env

    def counters(self) -> tuple[int, int]:
        with self.lock:
            return self.calls, self.records

    def shutdown(self) -> None:
        self.server.shutdown()
