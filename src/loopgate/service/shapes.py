"""The response shapes of the generation endpoints: ChatResponse / ChatDataResponse for chats,
CompletionResponse / DataResponse for completions. Plain and streamed answers are built from these, so the
two never disagree."""

from typing import Any

from loopgate.providers.base import Usage
from loopgate.service import records
from loopgate.service.prepare import Prepared

# DataResponse: a completion sample has no message fields.
_COMPLETION_ITEM_KEYS = (
    "id",
    "index",
    "output",
    "raw_output",
    "inputs",
    "finish_reason",
    "model_config_id",
    "tool_results",
)


def data_item(prepared: Prepared, sample: records.Sample) -> dict[str, Any]:
    item = records.data_item(prepared, sample)
    if prepared.completion:
        return {key: item[key] for key in _COMPLETION_ITEM_KEYS}
    return item


def delta_item(prepared: Prepared, log_id: str, index: int, text: str) -> dict[str, Any]:
    """One streamed piece of a sample's output: ``finish_reason`` stays null until its final event."""
    item: dict[str, Any] = {
        "id": log_id,
        "index": index,
        "output": text,
        "raw_output": text,
        "finish_reason": None,
        "model_config_id": prepared.config_id,
    }
    if prepared.completion:
        item["tool_results"] = None
    else:
        item.update(tool_calls=None, output_message=None, tool_results=None)
    return item


def usage_body(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "generation_tokens": usage.generation_tokens,
        "total_tokens": usage.total_tokens,
    }


def echoes(prepared: Prepared) -> dict[str, Any]:
    """Top-level fields that repeat the request: ``logprobs`` / ``suffix`` (completions) and the effective
    ``tool_choice`` (chats only)."""
    fields: dict[str, Any] = {"logprobs": prepared.logprobs, "suffix": prepared.suffix}
    if not prepared.completion:
        fields["tool_choice"] = prepared.tool_choice
    return fields


def response(
    prepared: Prepared,
    samples: list[records.Sample],
    usage: Usage,
    provider_request: Any,
    provider_responses: list[Any],
) -> dict[str, Any]:
    request = prepared.request
    extra = echoes(prepared)
    body = {
        "project_id": prepared.project_id,
        "num_samples": request.num_samples,
        "logprobs": extra.pop("logprobs"),
        "suffix": extra.pop("suffix"),
        "user": request.user,
        "data": [data_item(prepared, sample) for sample in samples],
        "usage": usage_body(usage),
        "metadata": request.metadata,
        "provider_responses": provider_responses,
        "provider_request": provider_request,
        "session_id": prepared.session_id,
    }
    body.update(extra)
    return body
