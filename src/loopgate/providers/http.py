"""The one pooled HTTP client every provider adapter shares (``http_client.ConnectionPool``: keep-alive
connections per upstream host), with the timeouts of each provider."""

from collections.abc import Callable, Mapping

from loopgate.providers.http_client import ConnectionPool, Response, Timeout

Timeouts = Callable[[str], tuple[float, float]]
"""A provider name to its ``(connect, total)`` seconds (``Settings.timeouts``)."""


class UpstreamHTTP:
    def __init__(
        self, *, connect_timeout: float, total_timeout: float, timeouts: Timeouts | None = None
    ) -> None:
        self._timeout = Timeout(connect=connect_timeout, total=total_timeout)
        self._timeouts = timeouts
        self._pool: ConnectionPool | None = None

    def timeout(self, provider: str) -> Timeout:
        """The timeout of one request to ``provider`` (passed per request: the pool is shared)."""
        if self._timeouts is None:
            return self._timeout
        connect, total = self._timeouts(provider)
        return Timeout(connect=connect, total=total)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        time_limit: Timeout | None = None,
    ) -> Response:
        """Send a request; the answer's body is read from the returned ``Response``, which the caller
        releases (``async with``). Raises ``http_client.ClientError`` subclasses or ``TimeoutError``."""
        if self._pool is None:
            self._pool = ConnectionPool()
        limit = self._timeout if time_limit is None else time_limit
        return await self._pool.request(method, url, headers=headers, body=body, time_limit=limit)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
