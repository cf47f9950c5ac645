"""The in-process lookup cache: concurrent misses share one load; failures and cancellations stay apart."""

import asyncio

import pytest

from loopgate.store.cache import TTLCache


async def test_concurrent_misses_share_one_load() -> None:
    cache: TTLCache[str, str] = TTLCache(ttl=30)
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.01)
        return "tm_1"

    found = await asyncio.gather(*(cache.get_or_load("key", load) for _ in range(32)))
    assert found == ["tm_1"] * 32 and loads == 1  # one query, not one per request in flight
    assert await cache.get_or_load("key", load) == "tm_1" and loads == 1  # then served from memory


async def test_nothing_found_is_not_remembered() -> None:
    cache: TTLCache[str, str] = TTLCache(ttl=30)
    loads = 0

    async def load() -> str | None:
        nonlocal loads
        loads += 1
        return None

    assert await cache.get_or_load("gone", load) is None
    assert await cache.get_or_load("gone", load) is None and loads == 2


async def test_a_failed_load_reaches_every_waiter_and_the_next_call_retries() -> None:
    cache: TTLCache[str, str] = TTLCache(ttl=30)

    async def broken() -> str:
        await asyncio.sleep(0.01)
        raise RuntimeError("database unavailable")

    results = await asyncio.gather(
        *(cache.get_or_load("k", broken) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(result, RuntimeError) for result in results)

    async def fixed() -> str:
        return "tm_2"

    assert await cache.get_or_load("k", fixed) == "tm_2"


async def test_a_cancelled_waiter_does_not_cancel_the_others() -> None:
    cache: TTLCache[str, str] = TTLCache(ttl=30)
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "tm_3"

    first = asyncio.ensure_future(cache.get_or_load("k", slow))
    second = asyncio.ensure_future(cache.get_or_load("k", slow))
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    assert await second == "tm_3"
    with pytest.raises(asyncio.CancelledError):
        await first
