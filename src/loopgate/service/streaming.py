"""A streamed generation: provider deltas out as SSE events, the samples logged when the stream ends.

``GenerationStream`` owns what every stream must do the same way: accumulate each sample, log the samples
when the stream ends, send the final events only after the logs are committed, and log whatever was
generated when the client goes away or the provider fails mid-stream (marked ``partial`` or ``error``).
What the events look like is a ``StreamShape``: ``V4Events`` here (v4's format), or the OpenAI-compatible
door's chunks (``service/openai_shapes.py``), so both doors share one logging path.

v4 events are one line ``data: {json}`` whose ``data`` holds exactly one sample (id, index, output delta),
as the SDK's parser requires. Samples interleave when ``num_samples > 1``. The final event of each sample
(``finish_reason`` set, full ``output_message``) is sent only after the logs are committed.

Events are pure ASCII: every non-ASCII character is sent as its JSON ``\\u`` escape (four hex digits).
TypeScript SDK 0.5.x decodes each network read on its own (a ``TextDecoder`` without ``stream: true``), so
a character whose UTF-8 bytes straddle two reads reached the user as U+FFFD; an ASCII byte stream can be
split anywhere.
"""

import asyncio
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import datetime
from typing import Any, Protocol

import orjson

from loopgate import ids, tokens
from loopgate.errors import LoopgateError, ProviderError, StorageUnavailable
from loopgate.providers.base import StreamDelta, StreamEnd, StreamEvent, Usage
from loopgate.providers.retry import RetryCount
from loopgate.service import records, shapes
from loopgate.service.prepare import Prepared
from loopgate.store.writers import LogWriter

_log = logging.getLogger("loopgate.streaming")
CLIENT_LEFT = "client disconnected"  # the reason api/sse.py cancels a stream with when its client leaves
_HOLE = "\x00loopgate-delta\x00"  # cannot occur in ids or config ids
_ENCODED_HOLE = orjson.dumps(_HOLE)
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # beyond the BMP: a UTF-16 surrogate pair, as JSON spells it
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def ascii_json(encoded: bytes) -> bytes:
    """orjson's output with non-ASCII characters escaped. They can only occur inside JSON strings, where
    the escape means the same character; ASCII (most text) is returned as is after one C-speed check."""
    if encoded.isascii():
        return encoded
    return _NON_ASCII.sub(_escape, encoded.decode()).encode("ascii")


class _SampleState:
    __slots__ = ("finish_reason", "parts", "tool_calls")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None

    def add(self, delta: StreamDelta) -> None:
        if delta.text:
            self.parts.append(delta.text)
        for tool in delta.tool_calls or ():
            call = self.tool_calls.setdefault(
                tool.position, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
            )
            if tool.id:
                call["id"] = tool.id
            call["function"]["name"] += tool.name or ""
            call["function"]["arguments"] += tool.arguments
        if delta.finish_reason:
            self.finish_reason = delta.finish_reason

    def calls(self) -> list[dict[str, Any]] | None:
        return [self.tool_calls[p] for p in sorted(self.tool_calls)] or None


class StreamShape(Protocol):
    """The bytes a stream sends: one ``delta`` per provider delta (None: nothing to send for it), the
    ``finals`` sent once the logs are committed, and the event that reports a mid-stream failure."""

    def delta(self, event: StreamDelta) -> bytes | None: ...

    def finals(self, samples: list[records.Sample], usage: Usage) -> list[bytes]: ...

    def failure(self, error: LoopgateError) -> bytes: ...


# Made once per stream, with the stream's log ids (known before the first event is sent).
StreamShapeFactory = Callable[[Prepared, list[str]], StreamShape]


class V4Events:
    """v4's server-sent events: text deltas only (tool calls arrive whole in the final event)."""

    def __init__(self, prepared: Prepared, log_ids: list[str]) -> None:
        self._prepared = prepared
        self._ids = log_ids
        self._templates: dict[int, list[bytes]] = {}
        self._head: dict[str, Any] = {
            "project_id": prepared.project_id,
            "session_id": prepared.session_id,
            "num_samples": prepared.request.num_samples,
            "provider_responses": [],
        }

    def delta(self, event: StreamDelta) -> bytes | None:
        if not event.text:
            return None
        # Only the text changes from one delta event of a sample to the next: the event is rendered once
        # around a placeholder, and each delta is the encoded text spliced into the hole(s) it left.
        pieces = self._templates.get(event.index)
        if pieces is None:
            item = shapes.delta_item(self._prepared, self._ids[event.index], event.index, _HOLE)
            rendered = b"data: " + ascii_json(orjson.dumps({**self._head, "data": [item]})) + b"\n\n"
            pieces = self._templates[event.index] = rendered.split(_ENCODED_HOLE)
        return ascii_json(orjson.dumps(event.text)).join(pieces)

    def finals(self, samples: list[records.Sample], usage: Usage) -> list[bytes]:
        return [self._final_event(sample, usage) for sample in samples]

    def failure(self, error: LoopgateError) -> bytes:
        return b"data: " + ascii_json(orjson.dumps(error.body())) + b"\n\n"

    def _final_event(self, sample: records.Sample, usage: Usage) -> bytes:
        item = shapes.data_item(self._prepared, sample)
        item["output"] = item["raw_output"] = ""  # the text went out as deltas already
        item.pop("messages", None)
        body = {
            **self._head,
            "data": [item],
            "usage": shapes.usage_body(usage),
            "metadata": self._prepared.request.metadata,
            "user": self._prepared.request.user,
        }
        if self._prepared.completion:
            body.update(logprobs=self._prepared.logprobs, suffix=self._prepared.suffix)
        return b"data: " + ascii_json(orjson.dumps(body)) + b"\n\n"


class GenerationStream:
    def __init__(
        self,
        prepared: Prepared,
        writer: LogWriter,
        first: StreamEvent,
        events: AsyncGenerator[StreamEvent, None],
        created_at: datetime,
        started: float,
        retries: RetryCount | None = None,
        shape: StreamShapeFactory = V4Events,
    ) -> None:
        self._prepared = prepared
        self._writer = writer
        self._first = first
        self._events = events
        self._created_at = created_at
        self._started = started
        self._retries = retries  # the upstream retries of this stream, counted as it runs
        n = prepared.request.num_samples
        self.log_ids = ids.new_ids(ids.LOG, n)
        self._states = [_SampleState() for _ in range(n)]
        self._end: StreamEnd | None = None
        self._shape = shape(prepared, self.log_ids)

    async def events(self) -> AsyncIterator[bytes]:
        logged = False
        cut_short = f"stream ended early: {CLIENT_LEFT}"
        shape = self._shape
        try:
            event: StreamEvent | None = self._first
            while event is not None:
                if isinstance(event, StreamEnd):
                    self._end = event
                elif 0 <= event.index < len(self._states):
                    self._states[event.index].add(event)
                    chunk = shape.delta(event)
                    if chunk is not None:
                        yield chunk
                event = await anext(self._events, None)
            samples = self._samples()
            rows, blobs = self._rows(samples, status="complete", error=None)
            logged = True  # handed to the writer: it commits even if this request is cancelled now
            committed = self._writer.write_logs_nowait(rows, blobs)
            usage = records.total_usage(self._end.usage if self._end else None, samples)
            finals = shape.finals(samples, usage)  # built before the wait: see GenerationService.run
            try:
                await committed
            except StorageUnavailable as exc:
                # The deltas are out, but without the final events the client knows the answer is not
                # logged (v4 and OpenAI clients raise on this event).
                yield shape.failure(exc)
                return
            for final in finals:
                yield final
        except ProviderError as exc:
            # The provider failed mid-stream: log what was generated, then tell the client.
            rows, blobs = self._rows(self._samples(), status="error", error=f"{exc.origin}: {exc.message}")
            logged = True
            try:
                await self._writer.write_logs(rows, blobs)
            except StorageUnavailable:
                _log.warning("the log of a stream the provider broke off could not be stored", exc_info=True)
            yield shape.failure(exc)  # the provider's failure is what the client must hear of either way
        except asyncio.CancelledError as exc:
            if exc.args != (CLIENT_LEFT,):  # uvicorn cut it: LOOPGATE_SHUTDOWN_TIMEOUT ran out
                cut_short = "stream cut short: the server was stopping"
            raise
        finally:
            if not logged:
                message = cut_short
                rows, blobs = self._rows(self._samples(), status="partial", error=message)
                self._writer.write_logs_nowait(rows, blobs)
            await self._events.aclose()

    def _samples(self) -> list[records.Sample]:
        usage = self._end.usage if self._end else None
        prompt_tokens = usage.prompt_tokens if usage else tokens.count_messages(self._prepared.messages)
        single = len(self._states) == 1
        samples = []
        for index, state in enumerate(self._states):
            text = "".join(state.parts)
            calls = state.calls()
            # A reported count is exact but covers every sample; it is used as is only for a single one.
            output_tokens = usage.generation_tokens if usage and single else tokens.count_output(text, calls)
            samples.append(
                records.Sample(
                    log_id=self.log_ids[index],
                    index=index,
                    raw_output=text,
                    finish_reason=state.finish_reason,
                    tool_calls=calls,
                    prompt_tokens=prompt_tokens,
                    output_tokens=output_tokens,
                )
            )
        return samples

    def _rows(
        self, samples: list[records.Sample], *, status: str, error: str | None
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        blobs: dict[str, str] = {}
        latency = time.perf_counter() - self._started
        request = self._end.request if self._end else None
        responses = self._end.responses if self._end else []
        rows = [
            records.log_row(
                self._prepared,
                sample,
                created_at=self._created_at,
                latency=latency,
                status=status,
                error=error,
                provider_request=request,
                provider_responses=responses,
                blobs=blobs,
                provider_retries=self._retries.value if self._retries is not None else None,
            )
            for sample in samples
        ]
        return rows, blobs
