"""Logs as OTLP spans, in the OTLP/HTTP JSON encoding (``ExportTraceServiceRequest``): pure functions.

One span per log, named and attributed after the OpenTelemetry GenAI semantic conventions:

- ``chat {model}`` (``text_completion {model}`` when the config version is a completion config,
  ``execute_tool {name}`` for a tool config's log, the operation alone when the model is unknown); kind
  CLIENT, except tool executions (INTERNAL).
- Ids are derived, not stored: the trace id from the session id (a session's logs share one trace) or, for
  a log without one, from its root log's id; the span id from the log id; the parent span id from the
  parent log id. So a span sent twice (delivery is at least once) carries the same ids both times, and a
  parent is referred to correctly whether or not it was sent in the same batch. A parent in another trace
  (a child that named a session of its own) becomes a span link instead.
- Start: ``created_at`` (when the request reached the provider); end: start + the provider's latency (or a
  posted log's ``duration``). Status ERROR with the error text for logs with status ``error``.
- Content (messages, output) only with ``capture_content``: span events ``gen_ai.{role}.message`` and
  ``gen_ai.choice`` whose attributes carry what the conventions put in the event body.

JSON mapping (OTLP spec): ids as lowercase hex, times as unix nanoseconds in decimal strings, int64
attribute values as decimal strings, enums as integers.
"""

import functools
import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from loopgate import __version__

SCOPE = "loopgate"
_KIND_INTERNAL = 1
_KIND_CLIENT = 3
_STATUS_ERROR = 2
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# loopgate's provider names -> the conventions' well-known gen_ai.system values (others pass through).
_SYSTEMS = {
    "openai_azure": "az.ai.openai",
    "google": "gcp.gemini",
    "bedrock": "aws.bedrock",
}
_ROLES = frozenset({"system", "user", "assistant", "tool"})
_MAX_STATUS_MESSAGE = 1024


@functools.lru_cache(maxsize=4096)  # a session's logs, and parents, come again and again
def trace_id(key: str) -> str:
    return _digest("trace", key, 16)


def span_id(log_id: str) -> str:
    return _digest("span", log_id, 8)


def _digest(kind: str, value: str, size: int) -> str:
    digest = bytearray(hashlib.sha256(f"loopgate.{kind}:{value}".encode()).digest()[:size])
    if not any(digest):  # all zeros is the invalid id; one chance in 2**64 at least, but never send it
        digest[-1] = 1
    return digest.hex()


def unix_nanos(moment: datetime) -> int:
    """Exact: through a float timestamp, microseconds of a 2025 date are already rounded."""
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def value(item: Any) -> dict[str, Any]:
    """An AnyValue. Strings, booleans, integers and floats map to their kind, lists to arrays; anything
    else (objects, None) to its JSON text. By exact type first: a span has ~20 attributes, and this ran
    through a chain of isinstance calls for each (a third of the encoding's time)."""
    kind = type(item)
    if kind is str:
        return {"stringValue": item}
    if kind is int:
        return {"intValue": str(item)}
    if kind is float:
        return {"doubleValue": item}
    if kind is bool:
        return {"boolValue": item}
    if isinstance(item, bool):
        return {"boolValue": bool(item)}
    if isinstance(item, int):
        return {"intValue": str(int(item))}
    if isinstance(item, float):
        return {"doubleValue": float(item)}
    if isinstance(item, str):
        return {"stringValue": str(item)}
    if isinstance(item, list):
        return {"arrayValue": {"values": [value(element) for element in item]}}
    return {"stringValue": _json(item)}


def attributes(pairs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """KeyValues of the pairs whose value is not None."""
    return [{"key": key, "value": value(item)} for key, item in pairs.items() if item is not None]


def _json(item: Any) -> str:
    return orjson.dumps(item, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


def _stringified(item: Any) -> str:
    return item if isinstance(item, str) else _json(item)


def operation(log: Mapping[str, Any]) -> tuple[str, str | None]:
    """(gen_ai.operation.name, the model or tool name that completes the span name)."""
    config = log.get("config") or {}
    if config.get("config_type") == "tool":
        return "execute_tool", config.get("name")
    name = "text_completion" if config.get("endpoint") == "complete" else "chat"
    return name, config.get("model")


def span(log: Mapping[str, Any], *, capture_content: bool = False) -> dict[str, Any]:
    """The span of one log row as ``store/exports.py`` reads it."""
    config: Mapping[str, Any] = log.get("config") or {}
    op, target = operation(log)
    start = unix_nanos(log["created_at"])
    seconds = log.get("provider_latency")
    if seconds is None:
        seconds = log.get("duration")
    end = start + max(0, round((seconds or 0.0) * 1e9))
    trace = trace_id(log["trace_key"])
    provider = config.get("provider")
    pairs: dict[str, Any] = {"gen_ai.operation.name": op}
    if op == "execute_tool":
        pairs["gen_ai.tool.name"] = target
    else:
        system = _SYSTEMS.get(provider, provider) if provider else None
        # gen_ai.system until semconv 1.36, gen_ai.provider.name since: backends read one or the other.
        pairs |= {"gen_ai.system": system, "gen_ai.provider.name": system}
        pairs |= _request_parameters(config)
    if log.get("finish_reason"):
        pairs["gen_ai.response.finish_reasons"] = [log["finish_reason"]]
    pairs |= {
        "gen_ai.usage.input_tokens": log.get("prompt_tokens"),
        "gen_ai.usage.output_tokens": log.get("output_tokens"),
        "gen_ai.conversation.id": log.get("session_id"),
        "loopgate.log_id": log["id"],
        "loopgate.organization_id": log.get("org_id"),
        "loopgate.project_id": log.get("project_id"),
        "loopgate.session_id": log.get("session_id"),
        "loopgate.parent_id": log.get("parent_id"),
        "loopgate.reference_id": log.get("reference_id"),
        "loopgate.config_id": log.get("config_id"),
        "loopgate.source": log.get("source"),
        "loopgate.environment": log.get("environment"),
        "loopgate.status": log.get("status"),
        "loopgate.sample_index": log.get("sample_index"),
    }
    metadata = log.get("metadata")
    if isinstance(metadata, dict):
        pairs |= {f"loopgate.metadata.{key}": _stringified(item) for key, item in metadata.items()}
    error = log.get("status") == "error"
    if error:
        pairs["error.type"] = "_OTHER"  # the conventions' value when no low-cardinality class is known
    result: dict[str, Any] = {
        "traceId": trace,
        "spanId": span_id(log["id"]),
        "name": f"{op} {target}" if target else op,
        "kind": _KIND_INTERNAL if op == "execute_tool" else _KIND_CLIENT,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
        "attributes": attributes(pairs),
    }
    parent_id = log.get("parent_id")
    if parent_id and log.get("parent_trace_key") == log["trace_key"]:
        result["parentSpanId"] = span_id(parent_id)
    elif parent_id and log.get("parent_trace_key"):
        result["links"] = [{"traceId": trace_id(log["parent_trace_key"]), "spanId": span_id(parent_id)}]
    if error:
        message = str(log.get("error") or "error")[:_MAX_STATUS_MESSAGE]
        result["status"] = {"code": _STATUS_ERROR, "message": message}
    if capture_content:
        events = content_events(log, system=pairs.get("gen_ai.system"), start=start, end=end)
        if events:
            result["events"] = events
    return result


def _request_parameters(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config's sampling parameters, those at their "unset" values (max_tokens -1, penalties 0) left out.
    temperature and top_p are always stored (v4 defaults of 1 filled in), so they are always sent."""
    max_tokens = config.get("max_tokens")
    stop = config.get("stop")
    pairs: dict[str, Any] = {
        "gen_ai.request.model": config.get("model"),
        "gen_ai.request.temperature": _number(config.get("temperature")),
        "gen_ai.request.top_p": _number(config.get("top_p")),
        "gen_ai.request.max_tokens": max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None,
        "gen_ai.request.presence_penalty": _number(config.get("presence_penalty")) or None,
        "gen_ai.request.frequency_penalty": _number(config.get("frequency_penalty")) or None,
        "gen_ai.request.seed": config.get("seed"),
        "gen_ai.request.stop_sequences": [stop] if isinstance(stop, str) else stop or None,
    }
    return pairs


def _number(item: Any) -> float | None:
    """A double attribute (a config's 1 and 1.0 are the same temperature)."""
    return float(item) if isinstance(item, int | float) and not isinstance(item, bool) else None


def content_events(log: Mapping[str, Any], *, system: Any, start: int, end: int) -> list[dict[str, Any]]:
    """The messages sent (at the span's start) and the answer (at its end); none for a log stored without
    content (``save: false``)."""
    payload = log.get("payload")
    if not isinstance(payload, dict):
        return []
    events: list[dict[str, Any]] = []
    for message in payload.get("messages") or ():
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        pairs = {
            "gen_ai.system": system,
            "role": role,
            "content": _text(message.get("content")),
            "tool_calls": _json(message["tool_calls"]) if message.get("tool_calls") else None,
            "id": message.get("tool_call_id"),
        }
        name = f"gen_ai.{role}.message" if role in _ROLES else "gen_ai.user.message"
        events.append({"timeUnixNano": str(start), "name": name, "attributes": attributes(pairs)})
    answer = _answer(log, payload)
    if answer is not None:
        pairs = {
            "gen_ai.system": system,
            "index": log.get("sample_index") or 0,
            "finish_reason": log.get("finish_reason"),
            "message": _json(answer),
        }
        events.append({"timeUnixNano": str(end), "name": "gen_ai.choice", "attributes": attributes(pairs)})
    return events


def _answer(log: Mapping[str, Any], payload: Mapping[str, Any]) -> dict[str, Any] | None:
    message = payload.get("output_message")
    if isinstance(message, dict):
        answer = {"role": message.get("role") or "assistant", "content": message.get("content")}
        if message.get("tool_calls"):
            answer["tool_calls"] = message["tool_calls"]
        return answer
    raw = payload.get("raw_output")
    return {"role": "assistant", "content": raw} if isinstance(raw, str) else None


def _text(item: Any) -> str | None:
    if item is None or isinstance(item, str):
        return item
    return _json(item)  # a list of text and image parts


def resource(service_name: str, extra: Mapping[str, str]) -> dict[str, Any]:
    """The Resource of every span: ``service.name`` and loopgate's version, then OTEL_RESOURCE_ATTRIBUTES
    (which may not override service.name: LOOPGATE_OTLP_SERVICE_NAME/OTEL_SERVICE_NAME decide it)."""
    pairs = {**extra, "service.name": service_name}
    pairs.setdefault("service.version", __version__)
    return {"attributes": attributes(pairs)}


def request_body(spans: Iterable[dict[str, Any]], resource_: dict[str, Any]) -> bytes:
    """An ``ExportTraceServiceRequest`` holding the spans, as JSON bytes."""
    scope_spans = {"scope": {"name": SCOPE, "version": __version__}, "spans": list(spans)}
    return orjson.dumps({"resourceSpans": [{"resource": resource_, "scopeSpans": [scope_spans]}]})
