"""A fault-injecting HTTP proxy between the function and the Kinesis emulator.

The function is pointed at it with AWS_ENDPOINT_URL_KINESIS (the AWS SDKs
prefer the service-specific variable over AWS_ENDPOINT_URL, which the emulator
injects). Every request is forwarded unchanged to the emulator unless a fault
is armed for PutRecords:

- whole_call_failures(n): the next n PutRecords calls are answered, without
  reaching the emulator, with every entry failed and "FailedRecordCount": 1 -
  the shape LocalStack returns when it injects Kinesis errors
  (KINESIS_ERROR_PROBABILITY), where the count does not match the entries.
- entry_failures(n, pick): in the next n calls the entries that pick(i, entry)
  selects fail (ProvisionedThroughputExceededException / InternalFailure, or
  the error code pick returns instead of True); the others are forwarded and
  succeed. FailedRecordCount is then exact.
- throttled_calls(n): the next n calls fail as a whole with HTTP 400
  ProvisionedThroughputExceededException.

Besides those counted faults, a broken endpoint can be switched on until
pass_through() switches it off again (every request, not only PutRecords):

- refuse_connections(): the proxy stops listening and drops the connections
  it holds, so connecting fails with ECONNREFUSED; pass_through() listens on
  the same port again.
- never_answer(): requests are read and never answered; pass_through()
  closes those connections, still without an answer.
- error_responses([(status, code), ...]): every request is answered, without
  reaching the emulator, with that HTTP status and a JSON error of that
  `__type` (cycling through the list): 500 InternalFailure, 503
  ServiceUnavailable, 400 ProvisionedThroughputExceededException, 400
  AccessDeniedException, 400 UnrecognizedClientException...
- slow_responses(seconds): requests are forwarded at once (the records are
  written) and the answer is held back for that long.

Signatures are not re-computed: the emulator does not check them.
"""

from __future__ import annotations

import http.client
import itertools
import json
import socket
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

THROUGHPUT = "ProvisionedThroughputExceededException"
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "host",
}


@dataclass
class Call:
    action: str
    records: int
    # "whole" | "entries" | "throttle" | "hang" | "error" | "slow" | None
    injected: str | None = None
    failed: list[int] = field(default_factory=list)
    # (partition key, data: the bytes base64-decoded) per entry, as the function sent them
    entries: list[tuple[str, bytes]] = field(default_factory=list)


class KinesisFaultProxy:
    def __init__(self, upstream: str, host: str = "127.0.0.1", keep_calls: bool = True):
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname, parsed.port or 80)
        self.host = host
        self.lock = threading.Lock()
        # Every request, with the entries it carried; a long run (the soak)
        # keeps only the totals: keep_calls=False.
        self.keep_calls = keep_calls
        self.calls: list[Call] = []
        # "requests", "put_records", "records", "failed_entries", "injected:<kind>"
        self.totals: Counter = Counter()
        self._whole = 0
        self._throttle = 0
        self._entries = 0
        self._pick: Callable[[int, dict], bool] | None = None
        # Switched-on faults (until pass_through()).
        self._mode: str | None = None  # "refuse" | "hang" | "error" | "slow"
        self._errors: itertools.cycle | None = None
        self._delay = 0.0
        self._released = threading.Event()
        self.hang_limit = 60.0  # a hung request is dropped after this long anyway
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._conns: set[socket.socket] = set()

    # --- faults -------------------------------------------------------------------
    def whole_call_failures(self, n: int) -> None:
        with self.lock:
            self._whole = n

    def entry_failures(self, n: int, pick: Callable[[int, dict], bool]) -> None:
        with self.lock:
            self._entries, self._pick = n, pick

    def throttled_calls(self, n: int) -> None:
        with self.lock:
            self._throttle = n

    def refuse_connections(self) -> None:
        """Stop listening and drop every open connection: connects are refused."""
        with self.lock:
            self._mode = "refuse"
        self._close_listener()
        self._drop_connections()

    def never_answer(self) -> None:
        """Read every request and never answer it (until pass_through())."""
        with self.lock:
            self._released.clear()
            self._mode = "hang"

    def error_responses(self, errors: list[tuple[int, str]] | tuple[int, str]) -> None:
        """Answer every request with these (HTTP status, error type), in turn."""
        if isinstance(errors, tuple):
            errors = [errors]
        with self.lock:
            self._errors = itertools.cycle(list(errors))
            self._mode = "error"

    def slow_responses(self, seconds: float) -> None:
        """Forward every request at once and hold its answer back `seconds`."""
        with self.lock:
            self._delay = seconds
            self._mode = "slow"

    def pass_through(self) -> None:
        """Switch every fault off: forward everything unchanged from now on."""
        self.clear()

    def clear(self) -> None:
        with self.lock:
            self._whole = self._throttle = self._entries = 0
            self._pick = None
            refused, self._mode = self._mode == "refuse", None
            self._errors = None
            self._released.set()
        if refused and self._server is None and self._port:
            self._listen(self._port)

    def injected(self, kind: str | None = None) -> int:
        with self.lock:
            return sum(1 for c in self.calls if c.injected and (kind is None or c.injected == kind))

    def put_calls(self) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.action == "PutRecords"]

    # --- lifecycle ----------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        assert self._port, "start() the proxy first"
        return f"http://{self.host}:{self._port}"

    def start(self) -> KinesisFaultProxy:
        self._listen(0)
        return self

    def _listen(self, port: int) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                with proxy.lock:
                    proxy._conns.add(self.connection)

            def finish(self):
                with proxy.lock:
                    proxy._conns.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def do_POST(self):
                body = self._body()
                answer = proxy._handle(self.path, dict(self.headers.items()), body)
                if answer is None:  # never answered: drop the connection
                    self.close_connection = True
                    return
                status, headers, out = answer
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

        server = _QuietServer((self.host, port), Handler)
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="kinesis-fault-proxy"
        )
        self._thread.start()

    def _close_listener(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def _drop_connections(self) -> None:
        with self.lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        self._released.set()
        self._close_listener()
        self._drop_connections()

    # --- the proxying ---------------------------------------------------------------
    def _forward(self, path: str, headers: dict, body: bytes) -> tuple[int, list, bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            fwd = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
            fwd["Content-Length"] = str(len(body))
            conn.request("POST", path, body=body, headers=fwd)
            resp = conn.getresponse()
            data = resp.read()
            out_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
            return resp.status, out_headers, data
        finally:
            conn.close()

    @staticmethod
    def _json(status: int, doc: dict) -> tuple[int, list, bytes]:
        return (
            status,
            [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", "fault-proxy")],
            json.dumps(doc).encode(),
        )

    def _handle(self, path: str, headers: dict, body: bytes) -> tuple[int, list, bytes] | None:
        target = next((v for k, v in headers.items() if k.lower() == "x-amz-target"), "")
        action = target.rsplit(".", 1)[-1]
        with self.lock:
            mode = self._mode
        if mode in ("hang", "error", "slow"):
            return self._switched_on(mode, action, path, headers, body)
        if action != "PutRecords":
            with self.lock:
                self._note(Call(action, 0))
            return self._forward(path, headers, body)

        req = json.loads(body or b"{}")
        records = req.get("Records", [])
        call = Call("PutRecords", len(records), entries=self._entries_of(records))
        codes: dict[int, str] = {}  # error codes pick chose, by entry
        with self.lock:
            if self._throttle > 0:
                self._throttle -= 1
                call.injected = "throttle"
            elif self._whole > 0:
                self._whole -= 1
                call.injected = "whole"
            elif self._entries > 0 and self._pick is not None:
                self._entries -= 1
                call.injected = "entries"
                picked = [(i, self._pick(i, r)) for i, r in enumerate(records)]
                call.failed = [i for i, p in picked if p]
                codes = {i: p for i, p in picked if isinstance(p, str)}
                if not call.failed:
                    call.injected = None
            self._note(call)

        if call.injected == "throttle":
            return self._json(
                400, {"__type": THROUGHPUT, "message": "Rate exceeded for stream under account 000000000000."}
            )
        if call.injected == "whole":
            # LocalStack's shape: every entry failed, FailedRecordCount 1.
            return self._json(
                200,
                {
                    "FailedRecordCount": 1,
                    "Records": [
                        {
                            "ErrorCode": THROUGHPUT,
                            "ErrorMessage": "Rate exceeded for shard shardId-000000000000 "
                            "in stream under account 000000000000.",
                        }
                        for _ in records
                    ],
                },
            )
        if call.injected != "entries":
            return self._forward(path, headers, body)

        failed = set(call.failed)
        keep = [r for i, r in enumerate(records) if i not in failed]
        results = []
        if keep:
            status, hdrs, data = self._forward(path, headers, json.dumps({**req, "Records": keep}).encode())
            if status != 200:
                return status, hdrs, data
            results = json.loads(data)["Records"]
        merged, it = [], iter(results)
        for i in range(len(records)):
            if i in failed:
                code = codes.get(i) or (THROUGHPUT if i % 2 == 0 else "InternalFailure")
                merged.append({"ErrorCode": code, "ErrorMessage": f"injected by the test proxy ({code})"})
            else:
                merged.append(next(it))
        return self._json(200, {"FailedRecordCount": len(failed), "Records": merged})

    def _entries_of(self, records: list[dict]) -> list[tuple[str, bytes]]:
        if not self.keep_calls:
            return []
        return [(r.get("PartitionKey"), _b64(r.get("Data", ""))) for r in records]

    def _note(self, call: Call) -> None:
        """Counts a request (the caller holds the lock)."""
        self.totals["requests"] += 1
        if call.action == "PutRecords":
            self.totals["put_records"] += 1
            self.totals["records"] += call.records
            self.totals["failed_entries"] += len(call.failed)
        if call.injected:
            self.totals[f"injected:{call.injected}"] += 1
        if self.keep_calls:
            self.calls.append(call)

    def _switched_on(
        self, mode: str, action: str, path: str, headers: dict, body: bytes
    ) -> tuple[int, list, bytes] | None:
        records = json.loads(body or b"{}").get("Records", []) if action == "PutRecords" else []
        call = Call(action, len(records), injected=mode, entries=self._entries_of(records))
        with self.lock:
            self._note(call)
            error = next(self._errors) if mode == "error" and self._errors else None
            delay = self._delay
        if mode == "hang":
            self._released.wait(self.hang_limit)
            return None
        if mode == "error" and error is not None:
            status, code = error
            return self._json(
                status, {"__type": code, "message": ERROR_MESSAGES.get(code, f"injected by the test proxy ({code})")}
            )
        answer = self._forward(path, headers, body)
        time.sleep(delay)
        return answer


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # The function gives up on slow or hung calls: their connections go away.
        pass


# What AWS says with each error, so the function's logs read as they would there.
ERROR_MESSAGES = {
    "InternalFailure": "We encountered an internal error. Please try again.",
    "ServiceUnavailable": "Service Unavailable",
    THROUGHPUT: "Rate exceeded for stream under account 000000000000.",
    "AccessDeniedException": "User: arn:aws:sts::000000000000:assumed-role/edr-preprocessor/fn is not "
    "authorized to perform: kinesis:PutRecords on resource: stream",
    "UnrecognizedClientException": "The security token included in the request is invalid.",
}


def _b64(data: str) -> bytes:
    import base64

    try:
        return base64.b64decode(data)
    except (ValueError, TypeError):
        return str(data).encode()
