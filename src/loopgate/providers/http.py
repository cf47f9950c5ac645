"""The one pooled HTTP client every provider adapter shares (aiohttp: measurably faster than httpx on
the hot path, with keep-alive pooling per upstream host)."""

import aiohttp


class UpstreamHTTP:
    def __init__(self, *, connect_timeout: float, total_timeout: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None

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
