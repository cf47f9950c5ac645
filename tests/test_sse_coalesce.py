"""``api/sse.coalesced``: events produced without waiting go out as one send, nothing is held back while the
source waits, and cancellation reaches the source (its ``finally`` runs) as it would without the wrapper."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from loopgate.api.sse import coalesced


async def test_ready_events_are_joined_and_flushed_before_a_wait() -> None:
    gate = asyncio.Event()
    seen: list[bytes] = []

    async def source() -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"
        await gate.wait()  # nothing more until the consumer has received a and b
        yield b"c"
        await asyncio.sleep(0)
        yield b"d"
        yield b"e"

    async for chunk in coalesced(source()):
        seen.append(chunk)
        gate.set()
    assert seen == [b"ab", b"c", b"de"]


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
        async for chunk in coalesced(source()):
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
        async for chunk in coalesced(source()):
            received.append(chunk)

    with pytest.raises(ValueError, match="boom"):
        await consume()
    assert received == [b"x"]
