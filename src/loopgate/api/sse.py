"""A server-sent-events response that notices when the client goes away.

The body is iterated in the request's own task while a watcher waits for ``http.disconnect``; on disconnect
the iteration is cancelled and the body generator is closed explicitly, so its ``finally`` (which logs the
partial output) always runs, at once, rather than whenever the garbage collector gets to it.

Events that are ready together (an upstream often delivers many chunks in one socket read) go out in one
ASGI send: each send is a trip through uvicorn and a ``write`` syscall, and a stream used to pay that per
token. ``coalesced`` joins what the body produces without waiting and flushes just before it would wait, so
no event is held back while the upstream is quiet. Two exceptions: the first event goes out alone, at once
(it is the client's time to first token), and the last chunk goes with the end of the body, in one write.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Generator
from typing import Any, cast

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from loopgate.service.streaming import CLIENT_LEFT


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
                    task.cancel(CLIENT_LEFT)  # told apart from a server that stops (service/streaming.py)
                    return

        watcher = asyncio.create_task(watch())
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            async for chunk, last in coalesced(self._events):
                await send({"type": "http.response.body", "body": chunk, "more_body": not last})
        except (asyncio.CancelledError, OSError):
            if not disconnected.is_set():
                raise
            task.uncancel()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await self._events.aclose()  # type: ignore[attr-defined]


async def coalesced(events: AsyncIterator[bytes]) -> AsyncIterator[tuple[bytes, bool]]:
    """``events`` as ``(chunk, last)``: the items produced without suspending joined into one chunk.

    The first item is passed on alone the moment it exists. A fast upstream's whole answer often arrives in
    one read; joined, the first token waited for every other event and for the rows that log the stream
    (~0.6 ms at c=1 in ``bench/run.py``). ``last`` marks the chunk after which the source is exhausted (it
    may be empty), so the end of the body can go in the same write.

    Each ``__anext__`` is stepped by hand: if it finishes on its first step the item was ready, so it is
    buffered; if it yields a future (it must wait), the buffer is flushed first and the step is then driven
    exactly as the task would drive it (``_drive`` hands each future to the task, and sends back the result
    or throws the exception, cancellation included, into the step)."""
    pending: list[bytes] = []
    started = False
    while True:
        step = events.__anext__()
        try:
            signal = step.send(None)  # type: ignore[attr-defined]
        except StopIteration as done:
            item = done.value
        except StopAsyncIteration:
            break
        except BaseException:
            if pending:
                yield b"".join(pending), False
            raise
        else:
            if pending:
                yield b"".join(pending), False
                pending = []
            try:
                item = await _drive(step, signal)
            except StopAsyncIteration:  # the source ended after a wait (say, in its ``finally``)
                break
        if started:
            pending.append(item)
        else:
            started = True
            yield item, False
    yield b"".join(pending), True


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
