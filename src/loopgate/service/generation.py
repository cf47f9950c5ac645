"""The generation flow of every chat and completion endpoint: prepare, call the provider, make each
sample a log, commit, answer.

A response (and, for streams, each sample's final event) is released only after the group commit holding
its logs: a client that saw a ``data_…`` id can always find that log. A provider failure is logged too
(status ``error``) before the error is returned.

``run`` and ``open_stream`` take an already prepared request and the shape of the answer, so the
OpenAI-compatible door (``service/openai_compat.py``) goes through this same path -- same log rows, same
commit-before-answer -- and differs only in what it sends back.
"""

import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from loopgate import ids, tokens
from loopgate.errors import ProviderError
from loopgate.providers.base import ProviderResult, Usage
from loopgate.providers.registry import ProviderRegistry
from loopgate.providers.retry import RetryCount, counted, counting
from loopgate.schemas.chat import ChatRequest
from loopgate.service import records, shapes
from loopgate.service.prepare import GenerationBody, Prepared, Preparer
from loopgate.service.streaming import GenerationStream, StreamShapeFactory, V4Events
from loopgate.store.catalog import Catalog
from loopgate.store.repository import now

T = TypeVar("T")
# What a plain answer is built from: the request, its samples, their usage, the provider's request and
# responses (``shapes.response`` for v4).
Shape = Callable[[Prepared, list[records.Sample], Usage, Any, list[Any]], T]


class GenerationService:
    def __init__(self, catalog: Catalog, providers: ProviderRegistry) -> None:
        self._store = catalog.store
        self._prepare = Preparer(catalog, providers)

    async def prepare(self, org_id: str, request: GenerationBody) -> Prepared:
        return await self._prepare.prepare(org_id, request)

    async def chat(self, org_id: str, request: ChatRequest) -> dict[str, Any]:
        # ``run`` directly rather than through ``generate``: the hot route keeps its depth of calls.
        return await self.run(await self._prepare.prepare(org_id, request), shapes.response)

    async def chat_stream(self, org_id: str, request: ChatRequest) -> AsyncIterator[bytes]:
        return await self.generate_stream(org_id, request)

    async def generate(self, org_id: str, request: GenerationBody) -> dict[str, Any]:
        """Any of the six generation endpoints, answered in one piece."""
        return await self.run(await self._prepare.prepare(org_id, request), shapes.response)

    async def run(self, prepared: Prepared, shape: Shape[T]) -> T:
        """Call the provider, log every sample, and return ``shape``'s answer once the logs are committed."""
        created_at = now()
        started = time.perf_counter()
        try:
            with counting() as retries:
                result = await prepared.provider.generate(prepared.call)
        except ProviderError as exc:
            exc.log_id = await self.log_failure(
                prepared, exc, created_at, time.perf_counter() - started, retries
            )
            raise
        latency = time.perf_counter() - started
        samples = _samples(prepared, result)
        blobs: dict[str, str] = {}
        rows = [
            records.log_row(
                prepared,
                sample,
                created_at=created_at,
                latency=latency,
                status="complete",
                error=None,
                provider_request=result.request,
                provider_responses=result.responses,
                blobs=blobs,
                provider_retries=retries.value,
            )
            for sample in samples
        ]
        committed = self._store.writer.write_logs_nowait(rows, blobs)
        # The answer is built before the wait, not after it: a request that slept through the commit and
        # its fsync resumed on caches gone cold (~0.1 ms at c=1, docs/benchmarks.md). The writer starts
        # once this task yields; the answer still goes out only after the commit.
        usage = records.total_usage(result.usage, samples)
        answer = shape(prepared, samples, usage, result.request, result.responses)
        await committed
        return answer

    async def generate_stream(self, org_id: str, request: GenerationBody) -> AsyncIterator[bytes]:
        """Opens the upstream stream before returning, so a provider that refuses the call is answered
        with its HTTP status rather than a 200 followed by an error event."""
        stream = await self.open_stream(await self._prepare.prepare(org_id, request), V4Events)
        return stream.events()

    async def open_stream(self, prepared: Prepared, shape: StreamShapeFactory) -> GenerationStream:
        """The stream of a prepared request, its first upstream event already received (see above); its
        ``log_ids`` are known before any event is sent."""
        created_at = now()
        started = time.perf_counter()
        retries = RetryCount()
        events = counted(prepared.provider.stream(prepared.call), retries)
        try:
            first = await anext(events)
        except ProviderError as exc:
            await self.log_failure(prepared, exc, created_at, time.perf_counter() - started, retries)
            raise
        return GenerationStream(
            prepared, self._store.writer, first, events, created_at, started, retries, shape
        )

    async def log_failure(
        self,
        prepared: Prepared,
        error: ProviderError,
        created_at: Any,
        latency: float,
        retries: RetryCount | None = None,
    ) -> str:
        """Logs the failed call (status ``error``); returns the log's id."""
        sample = records.Sample(
            log_id=ids.new_id(ids.LOG),
            index=0,
            raw_output="",
            finish_reason=None,
            tool_calls=None,
            prompt_tokens=tokens.count_messages(prepared.messages),
            output_tokens=0,
        )
        blobs: dict[str, str] = {}
        row = records.log_row(
            prepared,
            sample,
            created_at=created_at,
            latency=latency,
            status="error",
            error=f"{error.origin}: {error.message}",
            provider_request=None,
            provider_responses=[],
            blobs=blobs,
            provider_retries=retries.value if retries is not None else None,
        )
        row["output"] = None
        await self._store.writer.write_logs([row], blobs)
        return sample.log_id


def _samples(prepared: Prepared, result: ProviderResult) -> list[records.Sample]:
    prompt_tokens = result.usage.prompt_tokens if result.usage else tokens.count_messages(prepared.messages)
    single = len(result.generations) == 1 and result.usage is not None
    samples = []
    log_ids = ids.new_ids(ids.LOG, len(result.generations))
    for log_id, generation in zip(log_ids, result.generations, strict=True):
        output_tokens = (
            result.usage.generation_tokens
            if single and result.usage
            else tokens.count_output(generation.raw_output, generation.tool_calls)
        )
        samples.append(
            records.Sample(
                log_id=log_id,
                index=generation.index,
                raw_output=generation.raw_output,
                finish_reason=generation.finish_reason,
                tool_calls=generation.tool_calls,
                prompt_tokens=prompt_tokens,
                output_tokens=output_tokens,
                logprobs=generation.logprobs,
            )
        )
    return samples
