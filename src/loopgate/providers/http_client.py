"""A small keep-alive HTTP/1.1 client for upstream calls: ``asyncio.Protocol`` + the ``httptools`` parser.

Why not aiohttp: profiles put aiohttp at 210-265 us of CPU per upstream call (a third of the event loop's
time at c=32), against 30-60 us for a raw asyncio client; most of it is generality loopgate does not use
(cookies, redirects, proxies, multipart, several timers per request). This client does what the adapters
need and no more:

- a pool of idle keep-alive connections per (scheme, host, port), reused most-recently-used first;
- one ``transport.write`` per request (head + body), one deadline timer per request (``total`` covers
  connecting, waiting and reading the body, as aiohttp's ``total`` did), a separate ``connect`` bound;
- bodies delimited by Content-Length, chunked, or by the server closing; gzip / deflate decoded (we send
  ``Accept-Encoding: gzip, deflate`` as aiohttp did, so answers are as small as before);
- streamed bodies as chunks or lines, with backpressure (reading pauses while a slow consumer has more
  than ``_HIGH_WATER`` bytes waiting);
- TLS with ``ssl.create_default_context()`` (honours SSL_CERT_FILE / SSL_CERT_DIR; certifi's roots are
  added when neither is set) and ALPN ``http/1.1``;
- a pooled connection the server had already closed is retried once on a fresh connection, but only when
  no byte of the answer arrived: the request was never processed, so even a POST is safe to repeat.

No proxy support: the aiohttp session it replaces did not read HTTP(S)_PROXY either (``trust_env`` off).
Failures are raised as the classes below (named after aiohttp's, which the adapters used to catch) or as
``TimeoutError``; ``providers/wire.py`` maps them to loopgate's upstream errors.
"""

import asyncio
import os
import ssl
import zlib
from collections import deque
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

_HIGH_WATER = 256 * 1024  # pause reading a streamed body while this much waits unread
_KEEPALIVE_SECONDS = 30.0  # an idle connection older than this is closed rather than reused
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ClientError(Exception):
    """Any failure of an upstream request other than a timeout."""


class ClientConnectionError(ClientError):
    """No answer: the connection could not be opened, or it was lost before the response headers."""


class ServerDisconnectedError(ClientConnectionError):
    """The server closed the connection before answering."""


class ClientPayloadError(ClientError):
    """The answer started but its body is broken: cut short, malformed, or badly encoded."""


@dataclass(frozen=True, slots=True)
class Timeout:
    connect: float  # seconds to open a connection (TCP + TLS)
    total: float  # seconds for the whole request: connect, send, headers and body


@dataclass(frozen=True, slots=True)
class _Target:
    key: tuple[str, str, int]
    tls: bool
    host: str
    port: int
    head: str  # "{path} HTTP/1.1\r\nHost: {host}\r\n": what follows the method


@lru_cache(maxsize=512)
def _target(url: str) -> _Target:
    # The path and query are sent exactly as given (Bedrock's SigV4 signs their encoding).
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ClientConnectionError(f"unsupported URL {url!r}")
    host = parts.hostname
    port = parts.port or _DEFAULT_PORTS[scheme]
    shown = f"[{host}]" if ":" in host else host
    if parts.port is not None and parts.port != _DEFAULT_PORTS[scheme]:
        shown = f"{shown}:{port}"
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return _Target(
        (scheme, host, port), scheme == "https", host, port, f" {path} HTTP/1.1\r\nHost: {shown}\r\n"
    )


def _request_bytes(method: str, target: _Target, headers: Mapping[str, str], body: bytes | None) -> bytes:
    lines = [method, target.head]
    names = set()
    for name, value in headers.items():
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
            raise ValueError(f"newline in the value of header {name!r}")  # header injection
        lower = name.lower()
        if lower in ("host", "content-length", "transfer-encoding", "connection"):
            continue  # framing is ours
        names.add(lower)
        lines.append(f"{name}: {value}\r\n")
    if "accept" not in names:
        lines.append("Accept: */*\r\n")
    if "accept-encoding" not in names:
        lines.append("Accept-Encoding: gzip, deflate\r\n")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("\r\n")
    head = "".join(lines).encode()
    return head + body if body else head


def default_ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context()  # system roots, or SSL_CERT_FILE / SSL_CERT_DIR when set
    if not os.environ.get("SSL_CERT_FILE") and not os.environ.get("SSL_CERT_DIR"):
        try:
            import certifi
        except ImportError:  # pragma: no cover - certifi comes with the dependencies
            pass
        else:
            context.load_verify_locations(certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context


class _Exchange:
    """One request's answer as it arrives: status, headers, body chunks, completion or failure."""

    __slots__ = (
        "body_started",
        "buffered",
        "chunks",
        "close_delimited",
        "decoder",
        "done",
        "error",
        "headers",
        "headers_done",
        "status",
        "timer",
        "waiter",
    )

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self.body_started = False  # any byte of the answer arrived: a retry could repeat the request
        self.close_delimited = False
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.done = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.decoder: Any = None
        self.timer: asyncio.TimerHandle | None = None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)


class _Connection(asyncio.Protocol):
    def __init__(self, pool: "ConnectionPool", key: tuple[str, str, int]) -> None:
        self._pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.exchange: _Exchange | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self.paused = False
        self._complete = False
        self._keep_alive = False
        self._parser = httptools.HttpResponseParser(self)

    # -- asyncio.Protocol ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:  # bytes nobody asked for: the connection cannot be trusted any more
            self.abort()
            return
        exchange.body_started = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, zlib.error) as exc:
            self._fail(exchange, ClientPayloadError(f"invalid response from upstream: {exc}"))
            self.abort()
            return
        if self._complete:
            self._complete = False
            self._finish(exchange, self._keep_alive)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.forget(self)
        exchange = self.exchange
        if exchange is None or exchange.done:
            return
        if exchange.headers_done and exchange.close_delimited and exc is None:
            self._flush_decoder(exchange)
            self._finish(exchange, keep_alive=False)
        elif exchange.headers_done:
            self._fail(exchange, ClientPayloadError("the upstream closed the connection mid-body"))
        else:
            self._fail(exchange, ServerDisconnectedError("the upstream closed the connection"))

    # -- httptools callbacks ----------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.exchange is not None
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers = self.exchange.headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        exchange = self.exchange
        assert exchange is not None
        status = self._parser.get_status_code()
        if status < 200:  # 100 Continue and friends: the real answer follows
            exchange.headers = {}
            return
        exchange.status = status
        headers = exchange.headers
        exchange.close_delimited = "content-length" not in headers and "chunked" not in headers.get(
            "transfer-encoding", ""
        )
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            exchange.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            exchange.decoder = _Deflate()
        exchange.headers_done = True
        exchange.wake()

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        assert exchange is not None
        if exchange.decoder is not None:
            body = exchange.decoder.decompress(body)
            if not body:
                return
        exchange.chunks.append(body)
        exchange.buffered += len(body)
        if exchange.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        exchange.wake()

    def on_message_complete(self) -> None:
        exchange = self.exchange
        if exchange is not None and exchange.headers_done:
            self._flush_decoder(exchange)
            self._complete = True
            self._keep_alive = self._parser.should_keep_alive()  # read here: the parser resets after

    # -- driving one exchange ---------------------------------------------------------------------------

    def start(self, data: bytes, exchange: _Exchange) -> None:
        assert self.transport is not None
        self.exchange = exchange
        self.transport.write(data)

    def timed_out(self) -> None:
        exchange = self.exchange
        if exchange is not None and not exchange.done:
            self._fail(exchange, TimeoutError("the upstream did not answer in time"))
        self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def consumed(self, exchange: _Exchange) -> None:
        """The reader took the waiting chunks: read on if reading was paused."""
        if self.paused and exchange.buffered <= _HIGH_WATER // 4 and not self.closed:
            self.paused = False
            assert self.transport is not None
            self.transport.resume_reading()

    def _flush_decoder(self, exchange: _Exchange) -> None:
        if exchange.decoder is not None:
            rest = exchange.decoder.flush()
            if rest:
                exchange.chunks.append(rest)
                exchange.buffered += len(rest)

    def _finish(self, exchange: _Exchange, keep_alive: bool) -> None:
        exchange.done = True
        if exchange.timer is not None:
            exchange.timer.cancel()
        self.exchange = None
        exchange.wake()
        if not keep_alive or self.closed or self.transport is None:
            self.abort()
            return
        if self.paused:  # the unread body is the exchange's now; the connection can read again
            self.paused = False
            self.transport.resume_reading()
        self._pool.release(self)

    def _fail(self, exchange: _Exchange, error: BaseException) -> None:
        exchange.error = error
        exchange.done = True
        if exchange.timer is not None:
            exchange.timer.cancel()
        self.exchange = None
        exchange.wake()


class _Deflate:
    """``Content-Encoding: deflate`` is meant to be zlib-wrapped but is sometimes raw deflate."""

    def __init__(self) -> None:
        self._inner: Any = None

    def decompress(self, data: bytes) -> bytes:
        if self._inner is None:
            wrapped = bool(data) and data[0] & 0x0F == 8
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return bytes(self._inner.decompress(data))

    def flush(self) -> bytes:
        return bytes(self._inner.flush()) if self._inner is not None else b""


class Response:
    """An answer whose headers have arrived; read the body once (``read``, ``iter_chunks`` or
    ``iter_lines``) and release it (``async with`` does), or the connection is closed rather than reused."""

    __slots__ = ("_connection", "_exchange", "headers", "status")

    def __init__(self, connection: _Connection, exchange: _Exchange) -> None:
        self._connection = connection
        self._exchange = exchange
        self.status = exchange.status
        self.headers = exchange.headers  # names in lower case

    async def read(self) -> bytes:
        exchange = self._exchange
        if exchange.done and exchange.error is None:  # the whole body came with the headers
            body = b"".join(exchange.chunks)
            exchange.chunks.clear()
            return body
        parts = [chunk async for chunk in self.iter_chunks()]
        return b"".join(parts)

    async def iter_chunks(self) -> AsyncGenerator[bytes, None]:
        """The body as it arrives, one piece per socket read (decoded when it was compressed)."""
        exchange = self._exchange
        connection = self._connection
        while True:
            while exchange.chunks:
                chunk = exchange.chunks.popleft()
                exchange.buffered -= len(chunk)
                connection.consumed(exchange)
                yield chunk
            if exchange.error is not None:
                raise exchange.error
            if exchange.done:
                return
            exchange.waiter = asyncio.get_running_loop().create_future()
            await exchange.waiter

    async def line_batches(self) -> AsyncGenerator[list[bytes], None]:
        """The body's lines, without the line end (``\\r`` is left on CRLF lines), as one list per socket
        read: an SSE stream's reader resumes once per read rather than once per line (two per event).

        Callers that may stop early close it (``contextlib.aclosing``), and it closes ``iter_chunks``: an
        async generator left unfinished is closed by the event loop's finalizer hook, which costs a
        self-pipe write, a wake-up and a task per generator (two per streamed chat, before this)."""
        pending = b""
        async with aclosing(self.iter_chunks()) as chunks:
            async for chunk in chunks:
                if pending:
                    chunk = pending + chunk
                lines = chunk.split(b"\n")
                pending = lines.pop()
                if lines:
                    yield lines
        if pending:
            yield [pending]

    async def iter_lines(self) -> AsyncGenerator[bytes, None]:
        """The body line by line (see ``line_batches``)."""
        async with aclosing(self.line_batches()) as batches:
            async for batch in batches:
                for line in batch:
                    yield line

    def release(self) -> None:
        exchange = self._exchange
        if not exchange.done:  # body left unread: the connection is in an unknown state
            if exchange.timer is not None:
                exchange.timer.cancel()
            exchange.done = True
            self._connection.exchange = None
            self._connection.abort()

    async def __aenter__(self) -> "Response":
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.release()


class ConnectionPool:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._open: set[_Connection] = set()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        time_limit: Timeout,
    ) -> Response:
        """Send one request and return once the answer's headers are in (its body is read from the
        ``Response``). Raises ``ClientError`` subclasses or ``TimeoutError``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + time_limit.total
        target = _target(url)
        data = _request_bytes(method, target, headers, body)
        while True:
            connection = self._idle_connection(target.key, loop.time())
            if connection is None:
                connection = await self._connect(target, time_limit.connect, deadline)
            exchange = _Exchange()
            exchange.timer = loop.call_at(deadline, connection.timed_out)
            connection.start(data, exchange)
            if not exchange.headers_done and not exchange.done:
                exchange.waiter = loop.create_future()
                try:
                    await exchange.waiter
                except BaseException:  # cancelled: the connection is mid-exchange, so it cannot be reused
                    exchange.timer.cancel()
                    connection.abort()
                    raise
            error = exchange.error
            if error is None:
                return Response(connection, exchange)
            if isinstance(error, ServerDisconnectedError) and connection.reused and not exchange.body_started:
                continue  # a stale keep-alive connection: the request never reached the server
            raise error

    def _idle_connection(self, key: tuple[str, str, int], now: float) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if connection.closed or connection.transport is None or connection.transport.is_closing():
                continue
            if now - connection.idle_since > _KEEPALIVE_SECONDS:
                connection.abort()
                continue
            connection.reused = True
            return connection
        return None

    async def _connect(self, target: _Target, connect_timeout: float, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        connection = _Connection(self, target.key)
        context = None
        if target.tls:
            if self._ssl is None:
                self._ssl = default_ssl_context()
            context = self._ssl
        try:
            async with asyncio.timeout_at(min(deadline, loop.time() + connect_timeout)):
                # uvloop may call connection_made only after this returns: take the transport from here.
                transport, _ = await loop.create_connection(
                    lambda: connection,
                    target.host,
                    target.port,
                    ssl=context,
                    server_hostname=target.host if context is not None else None,
                )
        except TimeoutError:
            connection.abort()
            raise
        except (OSError, ssl.SSLError) as exc:
            reason = exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)
            raise ClientConnectionError(f"Cannot connect to {target.host}:{target.port} [{reason}]") from exc
        connection.transport = transport
        self._open.add(connection)
        return connection

    def release(self, connection: _Connection) -> None:
        connection.idle_since = asyncio.get_running_loop().time()
        self._idle.setdefault(connection.key, []).append(connection)

    def forget(self, connection: _Connection) -> None:
        self._open.discard(connection)
        idle = self._idle.get(connection.key)
        if idle and connection in idle:
            idle.remove(connection)

    async def close(self) -> None:
        for connection in list(self._open):
            if connection.transport is not None:
                connection.transport.close()
        self._open.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports run their connection_lost
