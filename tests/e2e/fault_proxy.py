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
  selects fail (ProvisionedThroughputExceededException / InternalFailure); the
  others are forwarded and succeed. FailedRecordCount is then exact.
- throttled_calls(n): the next n calls fail as a whole with HTTP 400
  ProvisionedThroughputExceededException.

Signatures are not re-computed: the emulator does not check them.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

THROUGHPUT = "ProvisionedThroughputExceededException"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
              "upgrade", "content-length", "host"}


@dataclass
class Call:
    action: str
    records: int
    injected: str | None = None  # "whole" | "entries" | "throttle" | None
    failed: list[int] = field(default_factory=list)
    # (partition key, decoded data) per entry, as the function sent them
    entries: list[tuple[str, str]] = field(default_factory=list)


class KinesisFaultProxy:
    def __init__(self, upstream: str, host: str = "127.0.0.1"):
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname, parsed.port or 80)
        self.host = host
        self.lock = threading.Lock()
        self.calls: list[Call] = []
        self._whole = 0
        self._throttle = 0
        self._entries = 0
        self._pick: Callable[[int, dict], bool] | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

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

    def clear(self) -> None:
        with self.lock:
            self._whole = self._throttle = self._entries = 0
            self._pick = None

    def injected(self, kind: str | None = None) -> int:
        with self.lock:
            return sum(1 for c in self.calls if c.injected and (kind is None or c.injected == kind))

    def put_calls(self) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.action == "PutRecords"]

    # --- lifecycle ----------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> "KinesisFaultProxy":
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self._body()
                status, headers, out = proxy._handle(self.path, dict(self.headers.items()), body)
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

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True, name="kinesis-fault-proxy")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

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
        return status, [("Content-Type", "application/x-amz-json-1.1"),
                        ("x-amzn-RequestId", "fault-proxy")], json.dumps(doc).encode()

    def _handle(self, path: str, headers: dict, body: bytes) -> tuple[int, list, bytes]:
        target = next((v for k, v in headers.items() if k.lower() == "x-amz-target"), "")
        action = target.rsplit(".", 1)[-1]
        if action != "PutRecords":
            with self.lock:
                self.calls.append(Call(action, 0))
            return self._forward(path, headers, body)

        req = json.loads(body or b"{}")
        records = req.get("Records", [])
        call = Call("PutRecords", len(records), entries=[(r.get("PartitionKey"), _b64(r.get("Data", "")))
                                                           for r in records])
        with self.lock:
            self.calls.append(call)
            if self._throttle > 0:
                self._throttle -= 1
                call.injected = "throttle"
            elif self._whole > 0:
                self._whole -= 1
                call.injected = "whole"
            elif self._entries > 0 and self._pick is not None:
                self._entries -= 1
                call.injected = "entries"
                call.failed = [i for i, r in enumerate(records) if self._pick(i, r)]
                if not call.failed:
                    call.injected = None

        if call.injected == "throttle":
            return self._json(400, {"__type": THROUGHPUT,
                                    "message": "Rate exceeded for stream under account 000000000000."})
        if call.injected == "whole":
            # LocalStack's shape: every entry failed, FailedRecordCount 1.
            return self._json(200, {"FailedRecordCount": 1, "Records": [
                {"ErrorCode": THROUGHPUT, "ErrorMessage": "Rate exceeded for shard shardId-000000000000 "
                 "in stream under account 000000000000."} for _ in records]})
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
                code = THROUGHPUT if i % 2 == 0 else "InternalFailure"
                merged.append({"ErrorCode": code, "ErrorMessage": f"injected by the test proxy ({code})"})
            else:
                merged.append(next(it))
        return self._json(200, {"FailedRecordCount": len(failed), "Records": merged})


def _b64(data: str) -> str:
    import base64

    try:
        return base64.b64decode(data).decode("utf-8", errors="replace")
    except (ValueError, TypeError):
        return str(data)
