"""The upstream HTTP client (providers/http_client.py) against a scripted asyncio server on 127.0.0.1: each
test's handler writes the raw response bytes, so framing, keep-alive, failures and timing are exact."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import ssl
import subprocess
import sys
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.http_client import (
    ClientConnectionError,
    ClientPayloadError,
    ConnectionPool,
    Timeout,
)
from loopgate.providers.retry import RetryPolicy
from loopgate.providers.wire import Upstream as WireUpstream

from .conftest import free_port

LIMIT = Timeout(connect=2, total=5)


@dataclass
class Request:
    connection: int  # which accepted connection carried it, from 0
    head: str
    body: bytes

    @property
    def headers(self) -> dict[str, str]:
        lines = self.head.split("\r\n")[1:]
        return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}


Handler = Callable[[Request, asyncio.StreamWriter], Awaitable[bool]]
"""Answers one request; returns False to close the connection afterwards."""


@dataclass
class Upstream:
    handler: Handler
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/x?q=1"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                try:
                    head = (await reader.readuntil(b"\r\n\r\n")).decode()
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request = Request(index, head, b"")
                length = int(request.headers.get("content-length", "0"))
                request.body = await reader.readexactly(length)
                self.requests.append(request)
                if not await self.handler(request, writer):
                    return
        finally:
            writer.close()


@pytest.fixture
async def pool() -> AsyncIterator[ConnectionPool]:
    client = ConnectionPool()
    yield client
    await client.close()


async def serving(
    handler: Handler, ssl_context: ssl.SSLContext | None = None
) -> tuple[Upstream, asyncio.Server]:
    upstream = Upstream(handler)
    server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0, ssl=ssl_context)
    upstream.port = server.sockets[0].getsockname()[1]
    return upstream, server


def fixed(body: bytes, extra: str = "") -> Handler:
    async def handler(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body)
        await writer.drain()
        return True

    return handler


async def post(pool: ConnectionPool, url: str, body: bytes = b"{}", limit: Timeout = LIMIT) -> bytes:
    async with await pool.request(
        "POST",
        url,
        headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
        body=body,
        time_limit=limit,
    ) as response:
        assert response.status == 200
        return await response.read()


async def test_keep_alive_one_connection_for_sequential_requests(pool: ConnectionPool) -> None:
    upstream, server = await serving(fixed(b'{"ok":true}'))
    async with server:
        for i in range(5):
            assert await post(pool, upstream.url, f'{{"i":{i}}}'.encode()) == b'{"ok":true}'
    assert upstream.connections == 1
    first = upstream.requests[0]
    assert first.head.startswith("POST /v1/x?q=1 HTTP/1.1\r\n")
    assert first.headers["host"] == f"127.0.0.1:{upstream.port}"
    assert first.headers["authorization"] == "Bearer k"
    assert first.headers["content-length"] == "7"
    assert [r.body for r in upstream.requests] == [f'{{"i":{i}}}'.encode() for i in range(5)]


async def test_chunked_and_close_delimited_bodies(pool: ConnectionPool) -> None:
    async def chunked(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(b"6\r\n world\r\n0\r\n\r\n")
        return True

    async def until_close(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nfirst part, ")
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(b"and the rest")
        return False

    upstream, server = await serving(chunked)
    async with server:
        assert await post(pool, upstream.url) == b"hello world"
        assert await post(pool, upstream.url) == b"hello world"
    assert upstream.connections == 1  # chunked answers keep the connection
    upstream, server = await serving(until_close)
    async with server:
        assert await post(pool, upstream.url) == b"first part, and the rest"
        assert await post(pool, upstream.url) == b"first part, and the rest"
    assert upstream.connections == 2  # a close-delimited answer uses its connection up


async def test_stream_chunks_arrive_as_sent(pool: ConnectionPool) -> None:
    go_on = asyncio.Event()

    async def stream(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"d\r\ndata: first\n\n\r\n")
        await writer.drain()
        await go_on.wait()  # the second event exists only after the client has seen the first
        writer.write(b"e\r\ndata: second\n\n\r\n0\r\n\r\n")
        return True

    upstream, server = await serving(stream)
    async with server:
        response = await pool.request("POST", upstream.url, headers={}, body=b"{}", time_limit=LIMIT)
        async with response:
            lines = []
            async for line in response.iter_lines():
                lines.append(line)
                go_on.set()
        assert lines == [b"data: first", b"", b"data: second", b""]
        assert await post(pool, upstream.url) == b"data: first\n\ndata: second\n\n"
    assert upstream.connections == 1


async def test_line_batches_hold_the_lines_of_each_read_and_join_split_lines(pool: ConnectionPool) -> None:
    go_on = asyncio.Event()

    async def stream(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"16\r\ndata: a\n\ndata: b\n\ndata\r\n")  # two events and half a line
        await writer.drain()
        await go_on.wait()
        writer.write(b"8\r\n: c\n\nend\r\n0\r\n\r\n")  # the rest of the line, and one without an end
        return True

    upstream, server = await serving(stream)
    async with server:
        response = await pool.request("POST", upstream.url, headers={}, body=b"{}", time_limit=LIMIT)
        async with response, contextlib.aclosing(response.line_batches()) as batches:
            seen = []
            async for batch in batches:
                seen.append(batch)
                go_on.set()
    assert seen == [[b"data: a", b"", b"data: b", b""], [b"data: c", b""], [b"end"]]


async def test_idle_connection_closed_by_server_then_next_request_succeeds(pool: ConnectionPool) -> None:
    upstream, server = await serving(fixed(b"ok"))
    async with server:
        assert await post(pool, upstream.url) == b"ok"
        upstream.writers[0].close()  # the server drops the idle keep-alive connection
        await asyncio.sleep(0.05)
        assert await post(pool, upstream.url) == b"ok"
    assert upstream.connections == 2


async def test_stale_connection_retried_once_only_before_any_answer(pool: ConnectionPool) -> None:
    async def drop_second(request: Request, writer: asyncio.StreamWriter) -> bool:
        if len(upstream.requests) == 2:  # closed as the request arrives, the race of a keep-alive timeout
            return False
        return await fixed(b"ok")(request, writer)

    upstream, server = await serving(drop_second)
    async with server:
        assert await post(pool, upstream.url) == b"ok"
        assert await post(pool, upstream.url) == b"ok"  # the dropped request went again, on a new connection
    assert [r.connection for r in upstream.requests] == [0, 0, 1]

    async def half_answer(request: Request, writer: asyncio.StreamWriter) -> bool:
        if len(upstream.requests) == 1:
            return await fixed(b"ok")(request, writer)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Le")  # the server started answering: never sent twice
        await writer.drain()
        return False

    upstream, server = await serving(half_answer)
    async with server:
        assert await post(pool, upstream.url) == b"ok"
        with pytest.raises(ClientConnectionError):
            await post(pool, upstream.url)
    assert len(upstream.requests) == 2


async def test_connection_refused_is_a_retryable_connection_error(pool: ConnectionPool) -> None:
    with pytest.raises(ClientConnectionError) as caught:
        await post(pool, f"http://127.0.0.1:{free_port()}/v1")
    assert RetryPolicy(max_retries=1).delay(0, caught.value) is not None


async def test_slow_server_times_out(pool: ConnectionPool) -> None:
    async def silent(request: Request, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    async def slow_body(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
        await writer.drain()
        await asyncio.sleep(5)
        return False

    for handler in (silent, slow_body):
        upstream, server = await serving(handler)
        async with server:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(TimeoutError):
                await post(pool, upstream.url, limit=Timeout(connect=1, total=0.2))
            assert 0.15 < loop.time() - started < 1.0
            assert RetryPolicy(max_retries=1).delay(0, TimeoutError()) is None


async def test_body_cut_short_is_a_payload_error(pool: ConnectionPool) -> None:
    async def cut(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()
        return False

    upstream, server = await serving(cut)
    async with server:
        with pytest.raises(ClientPayloadError):
            await post(pool, upstream.url)
    assert len(upstream.requests) == 1  # not retried: the answer had started


async def test_large_bodies_both_ways(pool: ConnectionPool) -> None:
    sent = bytes(range(256)) * 4096  # 1 MiB up
    answer = b"x" * (5 * 1024 * 1024 + 7)  # 5 MiB down: reading pauses and resumes on the way

    async def echo_size(request: Request, writer: asyncio.StreamWriter) -> bool:
        assert request.body == sent
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(answer)}\r\n\r\n".encode())
        for start in range(0, len(answer), 65536):
            writer.write(answer[start : start + 65536])
            await writer.drain()
        return True

    upstream, server = await serving(echo_size)
    async with server:
        response = await pool.request("POST", upstream.url, headers={}, body=sent, time_limit=LIMIT)
        async with response:
            got = []
            async for chunk in response.iter_chunks():
                got.append(chunk)
                await asyncio.sleep(0)  # a slower reader than the socket
        assert b"".join(got) == answer
        assert await post(pool, upstream.url, sent) == answer
    assert upstream.connections == 1


async def test_concurrent_requests_open_several_connections_then_reuse_them(pool: ConnectionPool) -> None:
    arrived = asyncio.Event()

    async def together(request: Request, writer: asyncio.StreamWriter) -> bool:
        if len(upstream.requests) == 6:
            arrived.set()
        await arrived.wait()  # nobody is answered before all six are in: six connections are needed
        return await fixed(request.body)(request, writer)

    upstream, server = await serving(together)
    async with server:
        bodies = [f"{i}".encode() for i in range(6)]
        assert await asyncio.gather(*(post(pool, upstream.url, b) for b in bodies)) == bodies
        assert await asyncio.gather(*(post(pool, upstream.url, b) for b in bodies)) == bodies
    assert upstream.connections == 6


async def test_gzip_and_deflate_answers_are_decoded(pool: ConnectionPool) -> None:
    text = b'{"answer": "' + b"compressible " * 200 + b'"}'
    for encoding, packed in (
        ("gzip", gzip.compress(text)),
        ("deflate", zlib.compress(text)),
        ("deflate", zlib.compress(text)[2:-4]),  # raw deflate, as some servers send it
    ):
        upstream, server = await serving(fixed(packed, f"Content-Encoding: {encoding}\r\n"))
        async with server:
            assert await post(pool, upstream.url) == text
        assert upstream.requests[0].headers["accept-encoding"] == "gzip, deflate"


async def test_newline_in_a_header_is_refused(pool: ConnectionPool) -> None:
    upstream, server = await serving(fixed(b"ok"))
    async with server:
        with pytest.raises(ValueError, match="newline"):
            await pool.request(
                "POST",
                upstream.url,
                headers={"Authorization": "Bearer k\r\nX-Evil: 1"},
                body=b"",
                time_limit=LIMIT,
            )
    assert upstream.requests == []


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_with_a_trusted_self_signed_certificate(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    upstream, server = await serving(fixed(b"secret"), server_context)
    url = f"https://127.0.0.1:{upstream.port}/v1"
    async with server:
        untrusting = ConnectionPool()
        try:
            with pytest.raises(ClientConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
                await post(untrusting, url)
        finally:
            await untrusting.close()
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted the way an operator would trust it
        trusting = ConnectionPool()
        try:
            assert await post(trusting, url) == b"secret"
            assert await post(trusting, url) == b"secret"
        finally:
            await trusting.close()
    assert upstream.connections == 1
    assert upstream.requests[0].headers["host"] == f"127.0.0.1:{upstream.port}"


@contextlib.contextmanager
def left_to_the_collector() -> Iterator[list[str]]:
    """The async generators that the event loop's finalizer hook had to close meanwhile: each was dropped
    unfinished, and closing it that way costs a self-pipe write, a loop wake-up and a task."""
    hooks = sys.get_asyncgen_hooks()
    closed: list[str] = []

    def finalizer(generator: AsyncGenerator[Any, Any]) -> None:
        closed.append(generator.ag_code.co_qualname)
        if hooks.finalizer is not None:
            hooks.finalizer(generator)

    sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=finalizer)
    try:
        yield closed
        gc.collect()
    finally:
        sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=hooks.finalizer)


SSE_ANSWER = b'data: {"n": 1}\n\ndata: {"n": 2}\n\ndata: [DONE]\n\n'


def sse(request: Request, writer: asyncio.StreamWriter) -> Awaitable[bool]:
    return fixed(SSE_ANSWER, "Content-Type: text/event-stream\r\n")(request, writer)


async def test_a_stream_read_to_its_done_line_leaves_no_generator_to_the_collector() -> None:
    upstream, server = await serving(sse)
    wire = WireUpstream(UpstreamHTTP(connect_timeout=2, total_timeout=5), "test")
    async with server:
        with left_to_the_collector() as closed:
            events = [event async for event in wire.events(upstream.url, {}, {})]
    assert events == [{"n": 1}, {"n": 2}]
    assert closed == []


async def test_lines_left_early_leave_no_generator_to_the_collector(pool: ConnectionPool) -> None:
    upstream, server = await serving(sse)
    async with server:
        with left_to_the_collector() as closed:
            response = await pool.request("POST", upstream.url, headers={}, body=b"{}", time_limit=LIMIT)
            async with response, contextlib.aclosing(response.iter_lines()) as lines:
                async for line in lines:
                    assert line == b'data: {"n": 1}'
                    break
    assert closed == []
