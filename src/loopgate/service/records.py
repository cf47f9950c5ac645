"""What one sample becomes: the stored log row and the ``data[]`` item of the response.

Both are built from the same ``Sample`` so the log and the answer can never disagree.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from loopgate import metrics
from loopgate.providers.base import Usage
from loopgate.service.prepare import Prepared
from loopgate.store import content

_MESSAGE_KEYS = ("content", "name", "tool_call_id", "role", "tool_calls", "tool_call")


@dataclass(slots=True)
class Sample:
    log_id: str
    index: int
    raw_output: str
    finish_reason: str | None
    tool_calls: list[dict[str, Any]] | None
    prompt_tokens: int
    output_tokens: int
    logprobs: Any = None


def full_message(message: dict[str, Any]) -> dict[str, Any]:
    """A message with every ChatMessageWithToolCall key present (null when unset), as v4 returned them."""
    return {key: message.get(key) for key in _MESSAGE_KEYS}


def output_message(sample: Sample) -> dict[str, Any]:
    return {
        "content": sample.raw_output if sample.raw_output or not sample.tool_calls else None,
        "name": None,
        "tool_call_id": None,
        "role": "assistant",
        "tool_calls": sample.tool_calls,
        "tool_call": first_tool_call(sample.tool_calls),
    }


def first_tool_call(tool_calls: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    if not tool_calls:
        return None
    function = tool_calls[0].get("function") or {}
    return {"name": function.get("name"), "arguments": function.get("arguments")}


def data_item(prepared: Prepared, sample: Sample) -> dict[str, Any]:
    return {
        "id": sample.log_id,
        "index": sample.index,
        "output": sample.raw_output.strip(),
        "raw_output": sample.raw_output,
        "inputs": prepared.request.inputs if prepared.request.return_inputs else {},
        "finish_reason": sample.finish_reason,
        "model_config_id": prepared.config_id,
        "tool_results": [],
        "messages": [full_message(m) for m in prepared.messages],
        "tool_call": first_tool_call(sample.tool_calls),
        "tool_calls": sample.tool_calls,
        "output_message": output_message(sample),
    }


def log_row(
    prepared: Prepared,
    sample: Sample,
    *,
    created_at: datetime,
    latency: float | None,
    status: str,
    error: str | None,
    provider_request: Any,
    provider_responses: list[Any],
    blobs: dict[str, str],
    provider_retries: int | None = None,
) -> dict[str, Any]:
    """The row for ``logs``. With ``save=false`` nothing of inputs, messages, output or provider payloads is
    kept -- only ids, config, metadata, counts and timings."""
    request = prepared.request
    payload: str | None = None
    output: str | None = None
    if request.save:
        output = sample.raw_output.strip()
        document = {
            "inputs": request.inputs,
            "messages": prepared.messages,
            "raw_output": sample.raw_output,
            "output_message": output_message(sample),
            "tool_choice": prepared.tool_choice,
            "provider_request": provider_request,
            "provider_responses": provider_responses,
            "logprobs": sample.logprobs,
        }
        payload = orjson.dumps(content.intern(document, blobs)).decode()
    # Every generation's log is built here, so this is where generations are counted.
    metrics.generation(
        prepared.provider.name,
        prepared.call.model,
        status,
        first_sample=sample.index == 0,
        prompt_tokens=sample.prompt_tokens,
        output_tokens=sample.output_tokens,
        seconds=latency,
        retries=provider_retries,
    )
    return {
        "id": sample.log_id,
        "org_id": prepared.org_id,
        "project_id": prepared.project_id,
        "session_id": prepared.session_id,
        "parent_id": prepared.parent_id,
        "reference_id": prepared.reference_id,
        "config_id": prepared.config_id,
        "created_at": created_at,
        "updated_at": created_at,
        "source": request.source,
        "source_datapoint_id": request.source_datapoint_id,
        "environment": prepared.environment,
        "user": request.user,
        "save": request.save,
        "status": status,
        "sample_index": sample.index,
        "output": output,
        "finish_reason": sample.finish_reason,
        "error": error,
        "prompt_tokens": sample.prompt_tokens,
        "output_tokens": sample.output_tokens,
        "provider_latency": latency,
        "metadata": orjson.dumps(request.metadata).decode() if request.metadata is not None else None,
        "payload": payload,
        "judgment": None,
        "stdout": None,
        "duration": latency,
        "prompt_cost": None,
        "output_cost": None,
        "provider_retries": provider_retries,
    }


def total_usage(reported: Usage | None, samples: list[Sample]) -> Usage:
    """The upstream's usage when it reported one, else our count over every sample."""
    if reported is not None:
        return reported
    prompt = samples[0].prompt_tokens if samples else 0
    return Usage(prompt, sum(s.output_tokens for s in samples))
