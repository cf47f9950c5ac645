"""The OTLP JSON encoding of logs (service/otlp_spans.py): ids, times, attributes, parent and trace linkage,
error status, content capture on and off; every request body parses as an ExportTraceServiceRequest."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from loopgate.service import otlp_spans
from tests.otlp_collector import parse

CREATED = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
CONFIG = {
    "provider": "openai",
    "model": "gpt-4o-mini",
    "endpoint": "chat",
    "temperature": 0.2,
    "top_p": 1,
    "max_tokens": -1,
    "presence_penalty": 0,
    "config_type": "model",
}


def _log(**values: Any) -> dict[str, Any]:
    log: dict[str, Any] = {
        "id": "data_child",
        "org_id": "tm_org",
        "project_id": "pr_project",
        "session_id": "sesh_one",
        "parent_id": None,
        "reference_id": None,
        "config_id": "config_1",
        "created_at": CREATED,
        "source": "tests",
        "environment": None,
        "status": "complete",
        "sample_index": 0,
        "finish_reason": "stop",
        "error": None,
        "prompt_tokens": 12,
        "output_tokens": 7,
        "provider_latency": 0.25,
        "duration": 0.25,
        "metadata": {"customer": "acme", "tier": 2, "flags": {"beta": True}},
        "config": dict(CONFIG),
        "trace_key": "sesh_one",
        "parent_trace_key": None,
    }
    log.update(values)
    return log


def _attributes(span: dict[str, Any]) -> dict[str, Any]:
    found = {}
    for pair in span["attributes"]:
        ((kind, value),) = pair["value"].items()
        found[pair["key"]] = (kind, value)
    return found


def test_ids_are_hex_of_the_right_size_and_deterministic() -> None:
    trace, span = otlp_spans.trace_id("sesh_one"), otlp_spans.span_id("data_child")
    assert len(trace) == 32 and len(span) == 16
    assert int(trace, 16) and int(span, 16)
    assert trace == otlp_spans.trace_id("sesh_one") != otlp_spans.trace_id("sesh_two")
    assert span == otlp_spans.span_id("data_child") != otlp_spans.span_id("data_other")


def test_a_chat_log_becomes_a_client_span_with_genai_attributes() -> None:
    span = otlp_spans.span(_log())
    assert span["name"] == "chat gpt-4o-mini"
    assert span["kind"] == 3
    assert span["traceId"] == otlp_spans.trace_id("sesh_one")
    assert span["spanId"] == otlp_spans.span_id("data_child")
    assert "parentSpanId" not in span and "status" not in span and "events" not in span
    start = 1748779200_123456000
    assert span["startTimeUnixNano"] == str(start)
    assert span["endTimeUnixNano"] == str(start + 250_000_000)
    attributes = _attributes(span)
    assert attributes["gen_ai.operation.name"] == ("stringValue", "chat")
    assert attributes["gen_ai.system"] == ("stringValue", "openai")
    assert attributes["gen_ai.request.model"] == ("stringValue", "gpt-4o-mini")
    assert attributes["gen_ai.request.temperature"] == ("doubleValue", 0.2)
    assert attributes["gen_ai.request.top_p"] == ("doubleValue", 1.0)
    assert "gen_ai.request.max_tokens" not in attributes  # -1: unset
    assert "gen_ai.request.presence_penalty" not in attributes
    assert attributes["gen_ai.response.finish_reasons"] == (
        "arrayValue",
        {"values": [{"stringValue": "stop"}]},
    )
    assert attributes["gen_ai.usage.input_tokens"] == ("intValue", "12")
    assert attributes["gen_ai.usage.output_tokens"] == ("intValue", "7")
    assert attributes["loopgate.log_id"] == ("stringValue", "data_child")
    assert attributes["loopgate.project_id"] == ("stringValue", "pr_project")
    assert attributes["loopgate.session_id"] == ("stringValue", "sesh_one")
    assert attributes["loopgate.config_id"] == ("stringValue", "config_1")
    assert attributes["loopgate.source"] == ("stringValue", "tests")
    assert attributes["loopgate.metadata.customer"] == ("stringValue", "acme")
    assert attributes["loopgate.metadata.tier"] == ("stringValue", "2")
    assert attributes["loopgate.metadata.flags"] == ("stringValue", '{"beta":true}')
    assert "loopgate.environment" not in attributes  # None values are left out


def test_completion_tool_and_unknown_model_names() -> None:
    completion = {**CONFIG, "endpoint": "complete", "max_tokens": 100, "provider": "openai_azure"}
    span = otlp_spans.span(_log(config=completion))
    assert span["name"] == "text_completion gpt-4o-mini"
    attributes = _attributes(span)
    assert attributes["gen_ai.request.max_tokens"] == ("intValue", "100")
    assert attributes["gen_ai.system"] == ("stringValue", "az.ai.openai")

    tool = otlp_spans.span(_log(config={"name": "get_weather", "config_type": "tool"}))
    assert tool["name"] == "execute_tool get_weather" and tool["kind"] == 1
    assert _attributes(tool)["gen_ai.tool.name"] == ("stringValue", "get_weather")

    bare = otlp_spans.span(_log(config=None, config_id=None, provider_latency=None, duration=None))
    assert bare["name"] == "chat"
    assert bare["startTimeUnixNano"] == bare["endTimeUnixNano"]


def test_parents_nest_in_one_trace_and_link_across_traces() -> None:
    child = otlp_spans.span(_log(parent_id="data_parent", parent_trace_key="sesh_one"))
    assert child["parentSpanId"] == otlp_spans.span_id("data_parent")
    assert child["traceId"] == otlp_spans.trace_id("sesh_one")

    rootless = _log(
        session_id=None, trace_key="data_root", parent_id="data_parent", parent_trace_key="data_root"
    )
    span = otlp_spans.span(rootless)
    assert span["traceId"] == otlp_spans.trace_id("data_root")
    assert span["parentSpanId"] == otlp_spans.span_id("data_parent")

    elsewhere = otlp_spans.span(_log(parent_id="data_parent", parent_trace_key="sesh_other"))
    assert "parentSpanId" not in elsewhere
    assert elsewhere["links"] == [
        {"traceId": otlp_spans.trace_id("sesh_other"), "spanId": otlp_spans.span_id("data_parent")}
    ]


def test_error_logs_have_error_status() -> None:
    span = otlp_spans.span(_log(status="error", error="openai: rate limited", finish_reason=None))
    assert span["status"] == {"code": 2, "message": "openai: rate limited"}
    attributes = _attributes(span)
    assert attributes["error.type"] == ("stringValue", "_OTHER")
    assert "gen_ai.response.finish_reasons" not in attributes


def test_content_is_exported_only_when_asked() -> None:
    payload = {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
            {"role": "tool", "content": "42", "tool_call_id": "c1"},
        ],
        "output_message": {"role": "assistant", "content": "Hello.", "tool_calls": None},
    }
    log = _log(payload=payload)
    assert "events" not in otlp_spans.span(log)
    text = orjson.dumps(otlp_spans.span(log)).decode()
    assert "You are terse" not in text and "Hello." not in text

    events = otlp_spans.span(log, capture_content=True)["events"]
    assert [event["name"] for event in events] == [
        "gen_ai.system.message",
        "gen_ai.user.message",
        "gen_ai.assistant.message",
        "gen_ai.tool.message",
        "gen_ai.choice",
    ]
    assert _attributes(events[0])["content"] == ("stringValue", "You are terse.")
    assert _attributes(events[1])["content"] == ("stringValue", '[{"type":"text","text":"hi"}]')
    assert "tool_calls" in _attributes(events[2])
    assert _attributes(events[3])["id"] == ("stringValue", "c1")
    choice = _attributes(events[4])
    assert orjson.loads(choice["message"][1]) == {"role": "assistant", "content": "Hello."}
    assert choice["finish_reason"] == ("stringValue", "stop")
    assert events[0]["timeUnixNano"] == otlp_spans.span(log)["startTimeUnixNano"]
    assert events[4]["timeUnixNano"] == otlp_spans.span(log)["endTimeUnixNano"]

    saved_without_content = otlp_spans.span(_log(payload=None), capture_content=True)
    assert "events" not in saved_without_content


def test_the_request_body_is_a_valid_export_request() -> None:
    spans = [
        otlp_spans.span(_log(payload={"messages": [{"role": "user", "content": "x"}]}), capture_content=True),
        otlp_spans.span(
            _log(id="data_2", parent_id="data_child", parent_trace_key="sesh_one", status="error")
        ),
        otlp_spans.span(_log(id="data_3", parent_id="data_x", parent_trace_key="sesh_other")),
    ]
    resource = otlp_spans.resource("gateway", {"deployment.environment": "test", "service.name": "ignored"})
    request = parse(otlp_spans.request_body(spans, resource))
    (resource_spans,) = request.resource_spans
    names = {pair.key: pair.value.string_value for pair in resource_spans.resource.attributes}
    assert names["service.name"] == "gateway"
    assert names["deployment.environment"] == "test"
    (scope,) = resource_spans.scope_spans
    assert scope.scope.name == "loopgate"
    first, second, third = scope.spans
    assert first.trace_id.hex() == otlp_spans.trace_id("sesh_one")
    assert first.span_id.hex() == otlp_spans.span_id("data_child")
    assert second.parent_span_id.hex() == otlp_spans.span_id("data_child")
    assert second.status.code == 2
    assert first.start_time_unix_nano == 1748779200_123456000
    assert len(third.links) == 1 and third.links[0].trace_id.hex() == otlp_spans.trace_id("sesh_other")
    assert first.events[0].name == "gen_ai.user.message"
