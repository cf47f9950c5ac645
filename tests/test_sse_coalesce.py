"""``api/sse.coalesced``: events produced without waiting go out as one send (but the first goes alone, at
once, and the last ones end the body), nothing is held back while the source waits, and cancellation
reaches the source (its ``finally`` runs) as it would without the wrapper."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from loopgate.api.sse import SSEResponse, coalesced


async def test_ready_events_are_joined_and_flushed_before_a_wait() -> None:
    gate = asyncio.Event()
    seen: list[tuple[bytes, bool]] = []
    seen_when_b_was_made: list[tuple[bytes, bool]] = []

    async def source() -> AsyncIterator[bytes]:
        yield b"a"  # the first event goes out alone, before the next one is even produced
        seen_when_b_was_made.extend(seen)
        yield b"b"
        yield b"c"
        await gate.wait()  # nothing more until the consumer has received b and c
        yield b"d"
        await asyncio.sleep(0)
        yield b"e"
        yield b"f"

    async for chunk, last in coalesced(source()):
        seen.append((chunk, last))
        if chunk == b"bc":
            gate.set()
    assert seen == [(b"a", False), (b"bc", False), (b"d", False), (b"ef", True)]
    assert seen_when_b_was_made == [(b"a", False)]


async def test_an_exhausted_source_ends_with_an_empty_last_chunk() -> None:
    async def source() -> AsyncIterator[bytes]:
        yield b"only"
        await asyncio.sleep(0)

    assert [pair async for pair in coalesced(source())] == [(b"only", False), (b"", True)]

    async def empty() -> AsyncIterator[bytes]:
        return
        yield b""  # pragma: no cover - makes this an async generator

    assert [pair async for pair in coalesced(empty())] == [(b"", True)]


async def test_the_last_events_share_the_send_that_ends_the_body() -> None:
    """Two ASGI sends for a stream whose events are all ready: the first event, then the rest together
    with ``more_body: False`` (uvicorn writes the chunk and the chunked-encoding end in one ``write``)."""

    async def source() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        yield b"data: 2\n\n"
        yield b"data: 3\n\n"

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client never leaves
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v4/chat", "headers": []}
    await SSEResponse(source())(scope, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body", "http.response.body"]
    assert (sent[1]["body"], sent[1]["more_body"]) == (b"data: 1\n\n", True)
    assert (sent[2]["body"], sent[2]["more_body"]) == (b"data: 2\n\ndata: 3\n\n", False)


async def test_cancellation_reaches_the_source() -> None:
    started = asyncio.Event()
    closed: list[str] = []

    async def source() -> AsyncIterator[bytes]:
        try:
            yield b"first"
            started.set()
            await asyncio.sleep(10)
            yield b"never"
        finally:
            await asyncio.sleep(0)  # the source may await while it cleans up
            closed.append("finally")

    received: list[bytes] = []

    async def consume() -> None:
        async for chunk, _ in coalesced(source()):
            received.append(chunk)

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert received == [b"first"]
    assert closed == ["finally"]


async def test_errors_after_ready_events_are_raised_after_them() -> None:
    async def source() -> AsyncIterator[bytes]:
        yield b"x"
        raise ValueError("boom")

    received: list[bytes] = []

    async def consume() -> None:
        async for chunk, _ in coalesced(source()):
            received.append(chunk)

    with pytest.raises(ValueError, match="boom"):
        await consume()
    assert received == [b"x"]
