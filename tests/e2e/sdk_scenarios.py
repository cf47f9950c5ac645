"""End-to-end scenarios driven by the official ``humanloop`` Python SDK (0.7.35).

Runs with the SDK's own interpreter (``.venv-sdk/bin/python``), never inside pytest: the SDK pins old
dependencies, so it cannot share the project's environment. It imports nothing from loopgate.

    python sdk_scenarios.py --host http://127.0.0.1:PORT/v4 --api-key KEY [--tag TAG] SCENARIO [SCENARIO ...]

(``--host`` / ``--api-key`` default to the ``HL_E2E_HOST`` / ``HL_E2E_API_KEY`` environment variables;
``all`` runs every scenario.) Prints one JSON object to stdout: ``{scenario: {"ok": true, "result": ...}}``
or ``{scenario: {"ok": false, "error": "<traceback>"}}``. A scenario only *records* what the SDK handed
back; the pytest side (``test_sdk_chat.py``) makes the assertions. ``--tag`` makes project names and session
references unique, so scenarios never see each other's data on a shared server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from humanloop import ApiException, Humanloop
from humanloop.exceptions import ApiStreamingException

MOCK = {"provider": "mock", "model": "mock-1"}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


class Context:
    def __init__(self, host: str, api_key: str, tag: str) -> None:
        self.host = host
        self.api_key = api_key
        self.tag = tag
        self.hl = Humanloop(api_key=api_key, host=host)

    def name(self, label: str) -> str:
        """A project name / session reference private to this run."""
        return f"e2e-sdk-{label}-{self.tag}"


def dump(model: Any) -> Any:
    """An SDK pydantic response as plain JSON (wire names, e.g. ``model_config_id``)."""
    return model.model_dump(mode="json", by_alias=True)


def api_error(call: Callable[[], Any]) -> dict[str, Any]:
    """Runs a call that must fail and records the ApiException's status and parsed body."""
    try:
        call()
    except ApiException as exc:
        return {"exception": type(exc).__name__, "status": exc.status, "body": exc.body}
    raise AssertionError("the call succeeded, an ApiException was expected")


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# -- scenarios -------------------------------------------------------------------------------------------


def chat_template(ctx: Context) -> dict[str, Any]:
    response = ctx.hl.chat(
        project=ctx.name("template"),
        messages=user("What is your name?"),
        model_config={
            **MOCK,
            "temperature": 0.3,
            "chat_template": [{"role": "system", "content": "You are {{person}}, born in {{ year }}."}],
        },
        inputs={"person": "Ada Lovelace", "year": 1815},
    )
    first = response.data[0]
    return {
        "response": dump(response),
        # Read through the SDK's attribute names, as user code does (``model_config_id_`` is the SDK's name).
        "attributes": {
            "output": first.output,
            "id": first.id,
            "model_config_id": first.model_config_id_,
            "project_id": response.project_id,
            "finish_reason": first.finish_reason,
            "usage": {
                "prompt_tokens": response.usage.prompt_tokens,
                "generation_tokens": response.usage.generation_tokens,
                "total_tokens": response.usage.total_tokens,
            },
            "output_message_content": first.output_message.content,
            "message_contents": [m.content for m in first.messages],
        },
    }


def config_versions(ctx: Context) -> dict[str, Any]:
    project = ctx.name("versions")
    base = {
        **MOCK,
        "temperature": 0.5,
        "seed": 7,
        "chat_template": [{"role": "system", "content": "Be brief."}],
    }

    def config_id(model_config: dict[str, Any], text: str = "hello") -> str:
        response = ctx.hl.chat(project=project, messages=user(text), model_config=model_config)
        return str(response.data[0].model_config_id_)

    return {
        "first": config_id(base),
        "same_again": config_id(dict(base), text="different message, same config"),
        "renamed": config_id({**base, "name": "a label only"}),
        "temperature": config_id({**base, "temperature": 0.9}),
        "seed": config_id({**base, "seed": 8}),
        "temperature_again": config_id({**base, "temperature": 0.9}),
    }


async def _collect(stream_call: Any) -> list[dict[str, Any]]:
    response = await stream_call
    return [chunk async for chunk in response.content]


def stream(ctx: Context) -> dict[str, Any]:
    params: dict[str, Any] = {
        "project": ctx.name("stream"),
        "messages": user("tell me about streams"),
        "model_config": {**MOCK, "chat_template": [{"role": "system", "content": "Talk like {{who}}."}]},
        "inputs": {"who": "a pirate"},
    }
    plain = ctx.hl.chat(**params)
    chunks = asyncio.run(_collect(ctx.hl.chat_stream(**params)))
    return {"plain": dump(plain), "chunks": chunks}


def stream_samples(ctx: Context) -> dict[str, Any]:
    params: dict[str, Any] = {
        "project": ctx.name("samples"),
        "messages": user("two please"),
        "model_config": dict(MOCK),
        "num_samples": 2,
    }
    chunks = asyncio.run(_collect(ctx.hl.chat_stream(**params)))
    plain = ctx.hl.chat(**params)
    return {"chunks": chunks, "plain": dump(plain)}


def sessions(ctx: Context) -> dict[str, Any]:
    project = ctx.name("sessions")

    def chat(text: str, **kwargs: Any) -> dict[str, Any]:
        response = ctx.hl.chat(project=project, messages=user(text), model_config=dict(MOCK), **kwargs)
        return {"session_id": response.session_id, "id": response.data[0].id}

    first = chat("turn one", session_reference_id=ctx.name("conversation-a"))
    second = chat("turn two", session_reference_id=ctx.name("conversation-a"))
    other = chat("elsewhere", session_reference_id=ctx.name("conversation-b"))
    by_id = chat("turn three", session_id=first["session_id"])
    child = chat("nested", parent_id=first["id"])
    return {"first": first, "second": second, "other": other, "by_id": by_id, "child": child}


def save_false(ctx: Context) -> dict[str, Any]:
    project = ctx.name("save")
    unsaved = ctx.hl.chat(
        project=project,
        messages=user("do not keep this secret"),
        model_config=dict(MOCK),
        inputs={"topic": "secrets"},
        save=False,
    )
    saved = ctx.hl.chat(
        project=project, messages=user("keep this"), model_config=dict(MOCK), inputs={"topic": "kept"}
    )
    no_inputs = ctx.hl.chat(
        project=project,
        messages=user("no inputs back, please"),
        model_config={**MOCK, "chat_template": [{"role": "system", "content": "About {{topic}}."}]},
        inputs={"topic": "hidden"},
        return_inputs=False,
    )
    return {"unsaved": dump(unsaved), "saved": dump(saved), "no_inputs": dump(no_inputs)}


def tools(ctx: Context) -> dict[str, Any]:
    response = ctx.hl.chat(
        project=ctx.name("tools"),
        messages=user("Please call get_weather for Paris"),
        model_config={**MOCK, "tools": [WEATHER_TOOL]},
    )
    first = response.data[0]
    return {
        "response": dump(response),
        "attributes": {
            "finish_reason": first.finish_reason,
            "function_name": first.tool_calls[0].function.name,
            "arguments": first.tool_calls[0].function.arguments,
            "tool_call_name": first.tool_call.name if first.tool_call else None,
            "output_message_tool_calls": len(first.output_message.tool_calls or []),
        },
    }


def errors(ctx: Context) -> dict[str, Any]:
    project = ctx.name("errors")
    real_project = ctx.hl.chat(project=project, messages=user("exists"), model_config=dict(MOCK)).project_id

    def chat(client: Humanloop | None = None, text: str = "hi", **kwargs: Any) -> Callable[[], Any]:
        kwargs.setdefault("model_config", dict(MOCK))
        return lambda: (client or ctx.hl).chat(messages=user(text), **kwargs)

    return {
        "missing_variable": api_error(
            chat(
                project=project,
                model_config={**MOCK, "chat_template": [{"role": "system", "content": "Hi {{customer}}"}]},
                inputs={"someone_else": "x"},
            )
        ),
        "project_and_project_id": api_error(chat(project=project, project_id=real_project)),
        "session_id_and_reference": api_error(
            chat(project=project, session_id="sesh_doesnotmatter000000", session_reference_id="ref")
        ),
        "unknown_project_id": api_error(chat(project_id="pr_doesnotexist0000000000")),
        "wrong_api_key": api_error(
            chat(Humanloop(api_key="lg_not-a-real-key", host=ctx.host), project=project)
        ),
        "unknown_session_id": api_error(chat(project=project, session_id="sesh_doesnotexist000000000")),
        "unknown_parent_id": api_error(chat(project=project, parent_id="data_doesnotexist000000000")),
        "provider_429": api_error(chat(project=project, text="mock-error:429")),
    }


def stream_error(ctx: Context) -> dict[str, Any]:
    """A provider refusal on a stream arrives as the HTTP status (ApiStreamingException), not as an event."""
    try:
        chunks = asyncio.run(
            _collect(
                ctx.hl.chat_stream(
                    project=ctx.name("stream-error"), messages=user("mock-error:503"), model_config=dict(MOCK)
                )
            )
        )
    except ApiStreamingException as exc:
        return {"exception": type(exc).__name__, "status": exc.status, "body": json.loads(exc.body)}
    raise AssertionError(f"the stream succeeded with {len(chunks)} chunks, an error was expected")


SCENARIOS: dict[str, Callable[[Context], Any]] = {
    "chat_template": chat_template,
    "config_versions": config_versions,
    "stream": stream,
    "stream_samples": stream_samples,
    "sessions": sessions,
    "save_false": save_false,
    "tools": tools,
    "errors": errors,
    "stream_error": stream_error,
}


def run(scenarios: dict[str, Callable[[Context], Any]], argv: list[str], description: str | None) -> int:
    """The command line every scenario script shares: run the named scenarios, print one JSON object."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default=os.environ.get("HL_E2E_HOST"))
    parser.add_argument("--api-key", default=os.environ.get("HL_E2E_API_KEY"))
    parser.add_argument("--tag", default=uuid.uuid4().hex[:10])
    parser.add_argument("scenarios", nargs="+", choices=[*scenarios, "all"])
    args = parser.parse_args(argv)
    if not args.host or not args.api_key:
        parser.error("--host and --api-key (or HL_E2E_HOST / HL_E2E_API_KEY) are required")
    ctx = Context(args.host, args.api_key, args.tag)
    names = list(scenarios) if "all" in args.scenarios else args.scenarios
    results: dict[str, Any] = {}
    for name in names:
        try:
            results[name] = {"ok": True, "result": scenarios[name](ctx)}
        except Exception:
            results[name] = {"ok": False, "error": traceback.format_exc()}
    json.dump(results, sys.stdout, default=str)
    sys.stdout.write("\n")
    return 0


def main(argv: list[str]) -> int:
    return run(SCENARIOS, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
