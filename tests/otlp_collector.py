"""A tiny OTLP/HTTP collector on 127.0.0.1 for the export tests: it records every ``POST /v1/traces`` body
and answers 200, or whatever status the test sets (503 for an outage, 400 for a refusal). A body sent with
``Content-Encoding: gzip`` is recorded decompressed, with the size it had on the wire.

``parse`` reads a body as a collector does: OTLP's JSON differs from protobuf's standard JSON mapping in
one way -- trace and span ids are hex, not base64 -- so the ids are checked and converted, then the whole
document goes through ``json_format.Parse`` into ``ExportTraceServiceRequest`` (unknown fields refused).
"""

from __future__ import annotations

import base64
import gzip
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_HEX = {"traceId": re.compile(r"^[0-9a-f]{32}$"), "spanId": re.compile(r"^[0-9a-f]{16}$")}
_HEX["parentSpanId"] = _HEX["spanId"]


def _ids_to_base64(document: Any) -> Any:
    if isinstance(document, list):
        return [_ids_to_base64(item) for item in document]
    if not isinstance(document, dict):
        return document
    converted = {}
    for key, value in document.items():
        if key in _HEX and isinstance(value, str):
            assert _HEX[key].match(value), f"{key} {value!r} is not lowercase hex of the right size"
            converted[key] = base64.b64encode(bytes.fromhex(value)).decode()
        else:
            converted[key] = _ids_to_base64(value)
    return converted


def parse(body: bytes) -> ExportTraceServiceRequest:
    document = _ids_to_base64(orjson.loads(body))
    return json_format.Parse(orjson.dumps(document), ExportTraceServiceRequest())


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    wire_size: int

    @property
    def spans(self) -> list[dict[str, Any]]:
        document = orjson.loads(self.body)
        return [
            span
            for resource in document["resourceSpans"]
            for scope in resource["scopeSpans"]
            for span in scope["spans"]
        ]


@dataclass
class Collector:
    """``status``: what the next answers are; ``retry_after``: sent with a non-2xx answer when set."""

    status: int = 200
    retry_after: str | None = None
    port: int = 0  # a free one unless given (a test may start the collector where loopgate already points)
    received: list[Received] = field(default_factory=list)  # accepted (2xx) requests only
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                sent = self.rfile.read(int(self.headers["Content-Length"]))
                gzipped = self.headers.get("Content-Encoding", "").lower() == "gzip"
                body = gzip.decompress(sent) if gzipped else sent
                with collector.lock:
                    status = collector.status
                    if 200 <= status < 300:
                        headers = {k.lower(): v for k, v in self.headers.items()}
                        collector.received.append(Received(self.path, headers, body, len(sent)))
                    else:
                        collector.refused += 1
                answer = b"{}" if 200 <= status < 300 else b'{"code": 14, "message": "unavailable"}'
                self.send_response(status)
                if collector.retry_after is not None and status >= 300:
                    self.send_header("Retry-After", collector.retry_after)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.http = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.http.daemon_threads = True
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def spans(self) -> list[dict[str, Any]]:
        with self.lock:
            received = list(self.received)
        return [span for request in received for span in request.spans]

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()
