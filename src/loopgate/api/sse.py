"""A server-sent-events response that notices when the client goes away.

The body is iterated in the request's own task while a watcher waits for ``http.disconnect``; on disconnect
the iteration is cancelled and the body generator is closed explicitly, so its ``finally`` (which logs the
partial output) always runs, at once, rather than whenever the garbage collector gets to it.

Events that are ready together (an upstream often delivers many chunks in one socket read) go out in one
ASGI send: each send is a trip through uvicorn and a ``write`` syscall, and a stream used to pay that per
token. ``coalesced`` joins what the body produces without waiting and flushes just before it would wait, so
no event is held back while the upstream is quiet.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Generator
from typing import Any, cast

from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class SSEResponse(Response):
    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[bytes]) -> None:
        # No Content-Length: the body is open-ended (Response.__init__ would set one for an empty body).
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        disconnected = asyncio.Event()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    task.cancel()
                    return

        watcher = asyncio.create_task(watch())
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            async for chunk in coalesced(self._events):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (asyncio.CancelledError, OSError):
            if not disconnected.is_set():
                raise
            task.uncancel()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await self._events.aclose()  # type: ignore[attr-defined]


async def coalesced(events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``events`` with the items produced without suspending joined into one.

    Each ``__anext__`` is stepped by hand: if it finishes on its first step the item was ready, so it is
    buffered; if it yields a future (it must wait), the buffer is flushed first and the step is then driven
    exactly as the task would drive it (``_relay`` hands each future to the task, and sends back the result
    or throws the exception, cancellation included, into the step)."""
    pending: list[bytes] = []
    while True:
        step = events.__anext__()
        try:
            signal = step.send(None)  # type: ignore[attr-defined]
        except StopIteration as done:
            pending.append(done.value)
            continue
        except StopAsyncIteration:
            break
        except BaseException:
            if pending:
                yield b"".join(pending)
            raise
        if pending:
            yield b"".join(pending)
            pending = []
        pending.append(await _drive(step, signal))
    if pending:
        yield b"".join(pending)


async def _drive(step: Any, signal: Any) -> bytes:
    """Finish a suspended step as ``asyncio.Task`` would: relay each future it yields to our own task."""
    while True:
        try:
            value = await _Relay(signal)
        except BaseException as exc:  # every exception, cancellation too, goes into the step
            try:
                signal = step.throw(exc)
            except StopIteration as done:
                return cast(bytes, done.value)
            continue
        try:
            signal = step.send(value)
        except StopIteration as done:
            return cast(bytes, done.value)


class _Relay:
    __slots__ = ("_signal",)

    def __init__(self, signal: Any) -> None:
        self._signal = signal

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self._signal)
