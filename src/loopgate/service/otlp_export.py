"""The OTLP exporter: committed logs -> spans -> ``POST {collector}/v1/traces`` (OTLP/HTTP, JSON).

Never on the request path: a request only commits its log, as always. This task, started with the server
when an endpoint is configured (api/app.py), reads what was committed behind a cursor in the database
(store/exports.py), sends it in batches and moves the cursor only once the collector has answered 2xx. So
delivery is at least once across collector outages and restarts: a batch whose answer never came is sent
again, with the same span ids.

- One process exports: every worker (``--workers N``) and every server on the database runs this task, and
  the one holding the cursor's lease exports while the others check every ``_STANDBY`` seconds whether it
  has lapsed. A lease held by a process of this host that no longer exists is taken at once.
- Retries: connection failures, timeouts, 429 and 5xx are retried without end (export waits, nothing is
  dropped), after ``Retry-After`` when the collector sends one, else with exponential backoff and jitter up
  to ``_MAX_DELAY``. Any other 4xx drops the batch with a warning, so one batch the collector will never
  take cannot stop export for good; 413 first halves the batch, down to one span.
- At shutdown (after the writer has committed the last logs) the owner keeps exporting for up to
  ``_SHUTDOWN_GRACE`` seconds, then gives the lease up so a restarted server resumes at once.
"""

import asyncio
import contextlib
import email.utils
import gzip
import logging
import random
import time
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from loopgate.config import Settings
from loopgate.providers.http_client import ClientError, ConnectionPool, Timeout
from loopgate.service import otlp_spans
from loopgate.service.lease_holders import holder_gone, new_holder
from loopgate.store.exports import Cursor, ExportStore

_log = logging.getLogger("loopgate.otlp")
CURSOR_NAME = "otlp"
_LEASE = 30.0  # seconds a lease lasts without renewal
_RENEW = 10.0  # the owner renews this often, also while it waits to retry
_STANDBY = 10.0  # a process without the lease checks this often whether it lapsed
_POLL = 1.0  # the owner looks for new logs this often when it has sent everything
_BASE_DELAY = 1.0
_MAX_DELAY = 60.0  # longest wait between tries; a longer Retry-After is cut to it
_SHUTDOWN_GRACE = 5.0
_ERROR_PAUSE = 5.0  # after an unexpected failure (the database unreachable, say)
_ENCODE_SLICE = 64  # spans built between two turns of the event loop
_GZIP_LEVEL = 6  # zlib's default; level 9 costs several times the CPU for a few percent more


class _Outcome(Enum):
    SENT = "sent"
    DROPPED = "dropped"
    TOO_LARGE = "too large"
    INTERRUPTED = "interrupted"  # stopping, or the lease was lost while waiting to retry


class OtlpExporter:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        url = settings.otlp_traces_url
        if url is None:
            raise ValueError("OTLP export needs LOOPGATE_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_ENDPOINT)")
        self._url = url
        self._store = ExportStore(engine, CURSOR_NAME, lease_seconds=_LEASE)
        self._headers = {**settings.otlp_header_map, "Content-Type": "application/json"}
        self._gzip = settings.otlp_compression == "gzip"
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._timeout = Timeout(connect=min(settings.otlp_timeout, 10.0), total=settings.otlp_timeout)
        self._capture = settings.otlp_capture_content
        self._batch_size = settings.otlp_batch_size
        self._resource = otlp_spans.resource(settings.otlp_service, settings.otlp_resource)
        self._owner = new_holder()
        self._pool = ConnectionPool()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._renewed = 0.0
        self._holding = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="loopgate-otlp-export")

    async def stop(self) -> None:
        """Export what is left for up to ``_SHUTDOWN_GRACE`` seconds, then give the lease up."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), _SHUTDOWN_GRACE)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        if self._holding:
            try:
                await self._store.release(self._owner)
            except Exception:  # the next holder waits for the lease to lapse instead
                _log.warning("could not give the OTLP export lease up", exc_info=True)
        await self._pool.close()

    # -- the loop ---------------------------------------------------------------------------------------

    async def _run(self) -> None:
        announced = False
        while not self._stopping.is_set():
            try:
                cursor = await self._store.claim(self._owner, abandoned=holder_gone)
                if cursor is None:
                    self._holding = False
                    await self._pause(_STANDBY)
                    continue
                if not announced:
                    _log.info("exporting logs as OTLP spans to %s", _shown(self._url))
                    announced = True
                self._holding = True
                self._renewed = time.monotonic()
                await self._export_from(cursor)
            except Exception:
                _log.warning("OTLP export failed; trying again in %.0f s", _ERROR_PAUSE, exc_info=True)
                await self._pause(_ERROR_PAUSE)

    async def _export_from(self, cursor: Cursor) -> None:
        """Batches from ``cursor`` on, for as long as this process holds the lease."""
        limit = self._batch_size
        while True:
            logs, end = await self._store.read(cursor, limit, content=self._capture)
            if not logs:
                if self._stopping.is_set() or not await self._keep_lease():
                    return
                await self._pause(_POLL)
                continue
            spans = await self._spans(logs)
            outcome, rejected = _Outcome.SENT, 0
            if spans:
                body = otlp_spans.request_body(spans, self._resource)
                if self._gzip:  # off the loop: a full batch with content takes milliseconds to compress
                    body = await asyncio.to_thread(gzip.compress, body, _GZIP_LEVEL)
                outcome, rejected = await self._deliver(body, len(spans))
            if outcome is _Outcome.INTERRUPTED:
                return
            if outcome is _Outcome.TOO_LARGE:
                limit = max(1, len(logs) // 2)
                continue
            exported = len(spans) - rejected if outcome is _Outcome.SENT else 0
            if not await self._store.advance(
                self._owner, cursor, end, exported=exported, dropped=len(logs) - exported
            ):
                return  # the lease was lost or the cursor moved: claim again, from where it is now
            self._renewed = time.monotonic()
            cursor, limit = end, self._batch_size

    async def _spans(self, logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The batch's spans. A log that cannot be encoded (a bug, or a row no code path writes) is left
        out with a warning and counted as dropped, rather than stopping export at that log for good.

        A span takes 20-40 us to build, so a whole batch would hold the event loop for 10-20 ms, in front
        of the requests this process serves: it yields every ``_ENCODE_SLICE`` spans."""
        spans = []
        for position, log in enumerate(logs):
            if position and not position % _ENCODE_SLICE:
                await asyncio.sleep(0)
            try:
                spans.append(otlp_spans.span(log, capture_content=self._capture))
            except Exception:
                _log.warning("log %s could not be made a span; not exported", log.get("id"), exc_info=True)
        return spans

    async def _deliver(self, body: bytes, count: int) -> tuple[_Outcome, int]:
        """Sends one batch until the collector takes or refuses it: (outcome, spans it rejected)."""
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                async with await self._pool.request(
                    "POST", self._url, headers=self._headers, body=body, time_limit=self._timeout
                ) as response:
                    status, answer = response.status, await response.read()
                    retry_after = _retry_after(response.headers.get("retry-after"))
            except (ClientError, TimeoutError, OSError) as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if 200 <= status < 300:
                    if attempt:
                        _log.warning("the OTLP collector took the batch after %d failed tries", attempt)
                    return _Outcome.SENT, _rejected(answer, count)
                if status == 413 and count > 1:
                    return _Outcome.TOO_LARGE, 0
                if 400 <= status < 500 and status != 429:
                    _log.warning(
                        "the OTLP collector refused a batch of %d spans with status %d; dropped: %s",
                        count,
                        status,
                        _excerpt(answer),
                    )
                    return _Outcome.DROPPED, count
                reason = f"status {status}: {_excerpt(answer)}"
            attempt += 1
            delay = min(retry_after if retry_after is not None else _backoff(attempt), _MAX_DELAY)
            if attempt & (attempt - 1) == 0:  # tries 1, 2, 4, 8, ...: a long outage does not flood the log
                _log.warning(
                    "OTLP export to %s failed (%s), try %d; trying again in %.1f s",
                    _shown(self._url),
                    reason,
                    attempt,
                    delay,
                )
            if not await self._wait(delay):
                return _Outcome.INTERRUPTED, 0

    # -- waiting, and keeping the lease -------------------------------------------------------------------

    async def _wait(self, seconds: float) -> bool:
        """Sleeps, renewing the lease as it goes; False when stopping or the lease was lost."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await self._pause(min(left, _RENEW))
            if self._stopping.is_set() or not await self._keep_lease():
                return False
        return True

    async def _keep_lease(self) -> bool:
        if time.monotonic() - self._renewed < _RENEW:
            return True
        if not await self._store.renew(self._owner):
            _log.warning("another process took the OTLP export lease over")
            self._holding = False
            return False
        self._renewed = time.monotonic()
        return True

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


def _backoff(attempt: int) -> float:
    delay: float = min(_BASE_DELAY * 2 ** (attempt - 1), _MAX_DELAY)
    return delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography


def _retry_after(raw: str | None) -> float | None:
    """Seconds, or an HTTP date."""
    if not raw:
        return None
    if raw.strip().isdigit():
        return float(raw.strip())
    try:
        moment = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _rejected(answer: bytes, count: int) -> int:
    """Spans a 2xx answer's ``partialSuccess`` rejected (logged; they cannot be sent again)."""
    try:
        document: Any = orjson.loads(answer) if answer.strip() else {}
    except orjson.JSONDecodeError:
        return 0
    partial = document.get("partialSuccess") if isinstance(document, dict) else None
    if not isinstance(partial, dict):
        return 0
    try:
        rejected = min(count, max(0, int(partial.get("rejectedSpans") or 0)))
    except (TypeError, ValueError):
        rejected = 0
    if rejected or partial.get("errorMessage"):
        _log.warning(
            "the OTLP collector rejected %d of %d spans: %s", rejected, count, partial.get("errorMessage")
        )
    return rejected


def _excerpt(answer: bytes) -> str:
    return answer[:300].decode("utf-8", "replace").strip() or "(no body)"


def _shown(url: str) -> str:
    """The URL without user info or query, which may hold credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
