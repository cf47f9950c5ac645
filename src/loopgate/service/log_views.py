"""What the SDK sees of a stored log: LogResponse, with its config as a ModelConfigResponse or
ToolConfigResponse. Built from the rows ``LogStore.fetch`` returns (payload expanded, names joined in).

Logs from ``/chat`` and from ``POST /logs`` share one payload layout (inputs, messages, raw_output,
output_message, tool_choice, provider_request, provider_responses, logprobs), so both read back the same way.
"""

import hashlib
from datetime import datetime
from typing import Any

import orjson

from loopgate.service.project_views import evaluator_config_view
from loopgate.service.records import full_message
from loopgate.store.evaluations import ResultRow
from loopgate.store.logs import utc

_MODEL_DEFAULTS: dict[str, Any] = {
    "provider": "openai",
    "max_tokens": -1,
    "temperature": 1,
    "top_p": 1,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "other": {},
}
_MODEL_OPTIONAL = ("description", "stop", "seed", "response_format", "prompt_template", "endpoint")
_TOOL_FIELDS = ("description", "source", "source_code", "parameters", "other", "preset_name", "strict")


def timestamp(value: datetime | None) -> str | None:
    return utc(value).isoformat() if value is not None else None


def _tool_response(tool: dict[str, Any]) -> dict[str, Any]:
    """ToolResponse needs an id; inline tools have none, so one is derived from the definition (stable)."""
    tool_id = tool.get("id")
    if not tool_id:
        digest = hashlib.sha256(orjson.dumps(tool, option=orjson.OPT_SORT_KEYS)).hexdigest()
        tool_id = "tool_" + digest[:21]
    return {
        "id": tool_id,
        "name": tool.get("name") or tool_id,
        "description": tool.get("description"),
        "parameters": tool.get("parameters"),
        "source": tool.get("source") or "inline",
    }


def config_response(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored config row as the ConfigResponse union member its ``config_type`` names."""
    if row is None:
        return None
    body: dict[str, Any] = orjson.loads(row["body"])
    if row.get("config_type") == "tool":
        tool: dict[str, Any] = {"id": row["id"], "type": "tool", "status": "committed", "name": row["name"]}
        tool.update({key: body.get(key) for key in _TOOL_FIELDS})
        tool["created_by"] = None
        return tool
    if row.get("config_type") == "evaluator":
        return evaluator_config_view(row["id"], row["name"], body)
    model: dict[str, Any] = {
        "id": row["id"],
        "type": "model",
        "name": row["name"],
        "model": body.get("model"),
    }
    model.update({key: body.get(key, default) for key, default in _MODEL_DEFAULTS.items()})
    model.update({key: body.get(key) for key in _MODEL_OPTIONAL})
    template = body.get("chat_template")
    model["chat_template"] = [full_message(message) for message in template] if template else None
    model["tools"] = [_tool_response(tool) for tool in body.get("tools") or ()]
    model["tool_configs"] = []
    return model


def _tokens(row: dict[str, Any]) -> int | None:
    if row["prompt_tokens"] is None and row["output_tokens"] is None:
        return None
    return int(row["prompt_tokens"] or 0) + int(row["output_tokens"] or 0)


def _feedback(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": item["id"],
            "type": item["type"],
            "value": orjson.loads(item["value"]) if item["value"] is not None else None,
            "data_id": row["id"],
            "user": item["user"],
            "created_at": timestamp(item["created_at"]),
        }
        for item in row["feedback"]
    ]


def result_response(row: ResultRow, evaluator_log: dict[str, Any] | None = None) -> dict[str, Any]:
    """EvaluationResultResponse; ``evaluator_log`` is the LogResponse of the judgment that gave it, for
    the evaluators loopgate runs (null for posted results, and when that log was deleted)."""
    return {
        "id": row.id,
        "evaluation_id": row.evaluation_id,
        "evaluator_id": row.evaluator_id,
        "evaluator_version_id": row.evaluator_version_id,
        "log_id": row.log_id,
        "value": row.value,
        "error": row.error,
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
        "evaluator_log": evaluator_log,
    }


def log_response(row: dict[str, Any]) -> dict[str, Any]:
    """LogResponse with every field present (null where unknown)."""
    payload: dict[str, Any] = row["payload"] or {}
    messages = payload.get("messages")
    output_message = payload.get("output_message")
    responses = payload.get("provider_responses") or []
    raw_output = payload.get("raw_output")
    return {
        "id": row["id"],
        "project": row["project_name"],
        "project_id": row["project_id"],
        "session_id": row["session_id"],
        "session_reference_id": row["session_reference_id"],
        "parent_id": row["parent_id"],
        "parent_reference_id": row["parent_reference_id"],
        "reference_id": row["reference_id"],
        "inputs": payload.get("inputs") or {},
        "source": row["source"],
        "metadata": row["metadata"],
        "save": row["save"],
        "source_datapoint_id": row["source_datapoint_id"],
        "messages": [full_message(message) for message in messages] if messages is not None else None,
        "output": row["output"],
        "raw_output": raw_output if raw_output is not None else row["output"],
        "output_message": full_message(output_message) if output_message is not None else None,
        "finish_reason": row["finish_reason"],
        "judgment": orjson.loads(row["judgment"]) if row["judgment"] is not None else None,
        "config_id": row["config_id"],
        "config": config_response(row["config"]),
        "environment": row["environment"],
        "feedback": _feedback(row),
        "created_at": timestamp(row["created_at"]),
        "updated_at": timestamp(row["updated_at"]),
        "error": row["error"],
        "stdout": row["stdout"],
        "duration": row["duration"],
        "prompt_tokens": row["prompt_tokens"],
        "output_tokens": row["output_tokens"],
        "tokens": _tokens(row),
        "prompt_cost": row["prompt_cost"],
        "output_cost": row["output_cost"],
        "provider_request": payload.get("provider_request"),
        "provider_response": responses[0] if responses else None,
        "user": row["user"],
        "provider_latency": row["provider_latency"],
        "provider_retries": row["provider_retries"],  # not in v4's LogResponse; the SDK ignores it
        "tools": [],
        "tool_choice": payload.get("tool_choice"),
        # The judgments' own logs are not fetched here: GET /evaluations/{id}/datapoints has them.
        "evaluation_results": [result_response(result) for result in row.get("evaluation_results") or ()],
        "observability_status": "completed",
        "batch_ids": row.get("batch_ids") or [],
    }


def paginated(records: list[dict[str, Any]], *, page: int, size: int, total: int) -> dict[str, Any]:
    return {"records": records, "page": page, "size": size, "total": total}
