"""A scripted upstream on 127.0.0.1 for provider adapter tests: it records every request (path with query,
headers, JSON body) and answers each with the reply registered under a marker word found in the body.

A reply is a JSON body, or a list of raw frames written as they are (one write and flush each), so a test
replays a provider's documented stream byte for byte.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    frames: list[bytes] | None = None  # a stream: raw bytes, written one frame at a time
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/event-stream"
    # A request header whose value replaces "{echo}" in the answer: an upstream quoting what it was sent.
    echo: str | None = None


@dataclass
class Received:
    marker: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


Script = Callable[[dict[str, Any]], Reply]


class Loopback:
    def __init__(self) -> None:
        self.scripts: dict[str, Script] = {}
        self.received: list[Received] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                body = json.loads(raw)
                marker = next((m for m in upstream.scripts if m in raw.decode()), "")
                headers = {k.lower(): v for k, v in self.headers.items()}
                upstream.received.append(Received(marker, self.path, headers, body))
                reply = upstream.scripts[marker](body) if marker else Reply(404, {"error": "no script"})
                quoted = headers.get(reply.echo, "") if reply.echo else None
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.frames is not None:
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for frame in reply.frames:
                        if quoted is not None:
                            frame = frame.replace(b"{echo}", quoted.encode())
                        self.wfile.write(frame)
                        self.wfile.flush()
                    self.close_connection = True
                    return
                data = json.dumps(reply.body).encode()
                if quoted is not None:
                    data = data.replace(b"{echo}", json.dumps(quoted)[1:-1].encode())
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def script(self, reply: Reply | Script) -> str:
        marker = f"lb-{uuid.uuid4().hex[:10]}"
        self.scripts[marker] = reply if callable(reply) else (lambda _body: reply)
        return marker

    def calls(self, marker: str) -> list[Received]:
        return [r for r in self.received if r.marker == marker]


def running() -> Iterator[Loopback]:
    """For a module-scoped fixture: ``yield from running()``."""
    instance = Loopback()
    instance.thread.start()
    try:
        yield instance
    finally:
        instance.http.shutdown()
        instance.http.server_close()


def sse(*events: Any, event_names: list[str] | None = None) -> list[bytes]:
    """SSE frames, ``data: <json>`` each (with ``event: <name>`` first when names are given)."""
    frames = []
    for position, item in enumerate(events):
        data = item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))
        head = f"event: {event_names[position]}\n" if event_names else ""
        frames.append(f"{head}data: {data}\n\n".encode())
    return frames
