"""The one pooled HTTP client every provider adapter shares (aiohttp: measurably faster than httpx on
the hot path, with keep-alive pooling per upstream host)."""

from collections.abc import Callable

import aiohttp

Timeouts = Callable[[str], tuple[float, float]]
"""A provider name to its ``(connect, total)`` seconds (``Settings.timeouts``)."""


class UpstreamHTTP:
    def __init__(
        self, *, connect_timeout: float, total_timeout: float, timeouts: Timeouts | None = None
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout)
        self._timeouts = timeouts
        self._session: aiohttp.ClientSession | None = None

    def timeout(self, provider: str) -> aiohttp.ClientTimeout:
        """The timeout of one request to ``provider`` (passed per request: the session is shared)."""
        if self._timeouts is None:
            return self._timeout
        connect, total = self._timeouts(provider)
        return aiohttp.ClientTimeout(total=total, sock_connect=connect)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Created on first use so it binds to the running event loop.
            connector = aiohttp.TCPConnector(
                limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                auto_decompress=True,
                skip_auto_headers={"User-Agent"},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
