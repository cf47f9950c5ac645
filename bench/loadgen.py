"""A small HTTP/1.1 load generator on raw asyncio streams (uvloop when present), for what wrk cannot do:
time every request on its own, time the first streamed token, and send an exact number of requests
while keeping every response so the log ids it names can be looked up in the database.

Keep-alive connections, one per concurrent worker; a request is a prebuilt byte string. Responses are
parsed just enough to be timed and checked: status line, headers, Content-Length or chunked body, and
for server-sent events the moment the first event that carries generated text arrives.
"""

import asyncio
import contextlib
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass(slots=True)
class Response:
    status: int
    latency: float  # seconds from the first byte written to the last byte read
    ttft: float | None  # seconds to the first event carrying generated text (streams only)
    body: bytes


@dataclass
class RunStats:
    requests: int = 0
    elapsed: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    log_ids: list[str] = field(default_factory=list)
    missing_ids: int = 0  # 200 responses that named no log id (only counted when ids are collected)

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of unsorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


def _text_in_event(event: Any) -> bool:
    """True when an SSE payload carries generated text, in either the OpenAI or the v4 shape."""
    if not isinstance(event, dict):
        return False
    for choice in event.get("choices") or ():
        if (choice.get("delta") or {}).get("content"):
            return True
    return any(item.get("output") for item in event.get("data") or ())


def _events(buffer: bytes) -> list[Any]:
    events = []
    for block in buffer.split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data:"):
                payload = line[5:].strip()
                if payload and payload != b"[DONE]":
                    events.append(json.loads(payload))
    return events


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        return self._reader, self._writer

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None

    async def request(self, payload: bytes, *, sse: bool = False) -> Response:
        reader, writer = await self._open()
        started = time.perf_counter()
        writer.write(payload)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name:
                headers[name.strip().lower()] = value.strip().lower()
        ttft = None
        if b"content-length" in headers:
            body = await reader.readexactly(int(headers[b"content-length"]))
            arrived = time.perf_counter() - started
            if sse and any(_text_in_event(e) for e in _events(body)):
                ttft = arrived
        elif headers.get(b"transfer-encoding") == b"chunked":
            parts: list[bytes] = []
            pending = b""  # bytes of a not yet complete event, while looking for the first text
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                        pass
                    break
                chunk = (await reader.readexactly(size + 2))[:-2]
                arrived = time.perf_counter() - started
                parts.append(chunk)
                if sse and ttft is None:
                    pending += chunk
                    complete, _, pending = pending.rpartition(b"\n\n")
                    if complete and any(_text_in_event(e) for e in _events(complete)):
                        ttft = arrived
            body = b"".join(parts)
        else:  # no framing: the body runs until the server closes
            body = await reader.read()
            headers[b"connection"] = b"close"
        latency = time.perf_counter() - started
        if headers.get(b"connection") == b"close":
            await self.close()
        return Response(status, latency, ttft, body)


def log_ids(body: bytes, *, sse: bool) -> list[str]:
    """The v4 log ids a /v4/chat response names (for a stream: those of its final events)."""
    if sse:
        found = [
            item["id"]
            for event in _events(body)
            for item in event.get("data") or ()
            if item.get("finish_reason") is not None and item.get("id")
        ]
    else:
        found = [item["id"] for item in json.loads(body).get("data") or () if item.get("id")]
    return list(dict.fromkeys(found))


async def run(
    host: str,
    port: int,
    payload: bytes,
    *,
    count: int,
    concurrency: int,
    sse: bool = False,
    collect_ids: bool = False,
    keep_latencies: bool = True,
) -> RunStats:
    """Send exactly ``count`` requests over ``concurrency`` keep-alive connections and wait for all."""
    stats = RunStats()
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        connection = Connection(host, port)
        try:
            while remaining > 0:
                remaining -= 1
                response = await connection.request(payload, sse=sse)
                stats.requests += 1
                stats.statuses[response.status] += 1
                if keep_latencies:
                    stats.latencies.append(response.latency)
                    if response.ttft is not None:
                        stats.ttfts.append(response.ttft)
                if collect_ids and response.status == 200:
                    found = log_ids(response.body, sse=sse)
                    stats.log_ids.extend(found)
                    stats.missing_ids += not found
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    stats.elapsed = time.perf_counter() - started
    return stats


def run_sync(host: str, port: int, payload: bytes, **options: Any) -> RunStats:
    """``run`` on a fresh event loop (uvloop when installed, as the server uses)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run(host, port, payload, **options))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(host, port, payload, **options))
