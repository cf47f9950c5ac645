"""Fan-out helpers for adapters that run several upstream calls for one request (``num_samples`` on an API
without ``n``, or a server that ignores it): interleave their streams, and add up their usage."""

import asyncio
from collections.abc import AsyncGenerator, Iterable
from contextlib import aclosing
from typing import Any, TypeVar

from loopgate.providers.base import Usage

_T = TypeVar("_T")


async def merge(sources: list[AsyncGenerator[_T, None]]) -> AsyncGenerator[_T, None]:
    """Interleave several async generators as their items arrive; the first failure propagates and the
    other sources are cancelled. Each source is closed when it is left, not left to the garbage collector."""
    if len(sources) == 1:
        async with aclosing(sources[0]) as only:
            async for item in only:
                yield item
        return
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def pump(source: AsyncGenerator[_T, None]) -> None:
        try:
            async with aclosing(source):
                async for item in source:
                    await queue.put(("item", item))
        except Exception as exc:
            await queue.put(("error", exc))
        finally:
            await queue.put(("done", None))

    tasks = [asyncio.create_task(pump(source)) for source in sources]
    try:
        remaining = len(tasks)
        while remaining:
            kind, value = await queue.get()
            if kind == "error":
                raise value
            if kind == "done":
                remaining -= 1
            else:
                yield value
    finally:
        for task in tasks:
            task.cancel()


def add_usage(total: Usage | None, more: Usage) -> Usage:
    """Usage of one more call of the same request: the prompt is billed once, the completions add up."""
    prompt, generated = (total.prompt_tokens, total.generation_tokens) if total else (0, 0)
    return Usage(max(prompt, more.prompt_tokens), generated + more.generation_tokens)


def total_usage(usages: Iterable[Usage | None]) -> Usage | None:
    """The usage of several calls, or None when any of them went unreported (the service then counts)."""
    total: Usage | None = None
    for usage in usages:
        if usage is None:
            return None
        total = add_usage(total, usage)
    return total
