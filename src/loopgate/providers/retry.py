"""Retries of upstream calls, shared by every adapter: one place decides what is retried and how long to wait.

Retried: 408, 429 and 5xx answers (Anthropic's 529 "overloaded" included) and connections that failed or
were dropped before an answer. Not retried: other 4xx, timeouts (each attempt may already have waited the
whole ``LOOPGATE_PROVIDER_TIMEOUT``), and anything after a stream's success status: ``send`` returns the
response as soon as its status is a success, so a stream that has started is never sent twice and no
token reaches the client twice.

The wait before retry ``k`` (from 0) is exponential with jitter, ``base * 2**k`` scaled by a random factor
in [0.5, 1], capped at ``max_delay``. An upstream's ``Retry-After`` (seconds) replaces it; when it asks for
longer than ``max_delay`` there is no retry and the 429 (with its Retry-After) goes to the client, since
asking again sooner than told would only spend a call.

The retries ``send`` makes are added to the ``RetryCount`` of the enclosing ``counting()`` block, so the
service can record them on the log of the call whatever adapter (and fan-out of upstream calls) made them.
"""

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TypeVar

from loopgate.config import Settings
from loopgate.errors import UpstreamStatusError
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.http_client import ClientConnectionError, ClientError, Response, Timeout

log = logging.getLogger("loopgate.providers")

_T = TypeVar("_T")

StatusError = Callable[[int, bytes, Mapping[str, str]], UpstreamStatusError]


def _retryable_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> "RetryPolicy":
        return cls(
            max_retries=max(0, settings.provider_max_retries),
            base_delay=max(0.0, settings.provider_retry_base_delay),
            max_delay=max(0.0, settings.provider_retry_max_delay),
        )

    def delay(self, attempt: int, error: BaseException) -> float | None:
        """Seconds to wait before retrying after ``error`` on attempt ``attempt`` (0 = the first call), or
        None when the error is final."""
        if attempt >= self.max_retries:
            return None
        if isinstance(error, UpstreamStatusError):
            if not _retryable_status(error.status_code):
                return None
            told = _seconds(error.retry_after)
            if told is not None:
                return told if told <= self.max_delay else None
        elif isinstance(error, TimeoutError) or not isinstance(error, ClientConnectionError):
            return None
        backoff = min(self.max_delay, self.base_delay * 2.0**attempt)
        return backoff * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography


NO_RETRY = RetryPolicy(max_retries=0)


@dataclass(slots=True)
class RetryCount:
    """Retries made for one provider call, across every upstream request it fans out to."""

    value: int = 0


_COUNT: ContextVar[RetryCount | None] = ContextVar("loopgate_provider_retries", default=None)


@contextmanager
def counting(count: RetryCount | None = None) -> Iterator[RetryCount]:
    """Count the retries ``send`` makes inside the block into ``count`` (a new one when None); tasks started
    in the block (a fan-out) count into the same ``RetryCount``."""
    count = RetryCount() if count is None else count
    token = _COUNT.set(count)
    try:
        yield count
    finally:
        _COUNT.reset(token)


async def counted(events: AsyncGenerator[_T, None], count: RetryCount) -> AsyncGenerator[_T, None]:
    """``events`` with the retries made while producing each item counted into ``count``: the variable is
    set around each step, so it holds whichever task drives the stream. (Set by hand, not with
    ``counting()``: a ``contextmanager`` object per token was a measurable share of a stream's CPU.)"""
    try:
        while True:
            token = _COUNT.set(count)
            try:
                item = await anext(events)
            except StopAsyncIteration:
                return
            finally:
                _COUNT.reset(token)
            yield item
    finally:
        await events.aclose()


async def send(
    http: UpstreamHTTP,
    url: str,  # sent exactly as given (SigV4 signs the path's encoding)
    body: bytes,
    headers: Mapping[str, str],
    *,
    policy: RetryPolicy,
    origin: str,
    status_error: StatusError,
    request_timeout: Timeout | None = None,
) -> Response:
    """POST ``body`` until the answer's status is a success or the policy gives up; the caller reads the
    returned response and releases it (``async with``). Failures are raised as they are: an
    ``UpstreamStatusError`` from ``status_error``, or the HTTP client's own (``http_client.ClientError``,
    ``TimeoutError``) for the caller to map. ``request_timeout`` bounds each attempt, body included (the
    client's default when None)."""
    attempt = 0
    while True:
        try:
            response = await http.request("POST", url, headers=headers, body=body, time_limit=request_timeout)
            if response.status < 400:
                return response
            async with response:
                raise status_error(response.status, await response.read(), response.headers)
        except (UpstreamStatusError, ClientError) as exc:
            wait = policy.delay(attempt, exc)
            if wait is None:
                raise
            reason = exc.status_code if isinstance(exc, UpstreamStatusError) else type(exc).__name__
            log.warning("%s: %s on attempt %d, retrying in %.2fs", origin, reason, attempt + 1, wait)
        attempt += 1
        count = _COUNT.get()
        if count is not None:
            count.value += 1
        await policy.sleep(wait)


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: fall back to the backoff
    return seconds if seconds >= 0 else None
