"""End-to-end scenarios driven by the older ``humanloop`` Python SDK 0.5.18, still in many lockfiles.

Runs with that SDK's own interpreter (``.venv-sdk-0518/bin/python``), never inside pytest, and imports nothing
from loopgate; the command line and output are ``sdk_scenarios.run``'s (see that module). 0.5.18 differs
from 0.7.35 in what user code touches: methods return ``ApiResponseFor200`` objects whose ``.body`` is the
JSON (as frozendicts and str/Decimal subclasses, made plain here), the chat-model-config shortcut is
``chat_model_configuration``, and streams yield only ``{output, id}``. The pytest side is
``test_sdk_0518.py``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from sdk_scenarios import MOCK, Context, _collect, run, user

TEMPLATE = [{"role": "system", "content": "You are {{person}}."}]


def plain(value: Any) -> Any:
    """A 0.5.18 body (frozendicts, tuples, str/Decimal/bool schema subclasses) as plain JSON values."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    # konfig's schema classes wrap bools as BoolClass and None as NoneClass; their repr carries the value.
    if type(value).__name__ == "BoolClass":
        return bool(value)
    if type(value).__name__ == "NoneClass":
        return None
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Decimal | int | float):
        number = Decimal(str(value))
        return int(number) if number == number.to_integral_value() else float(number)
    return str(value)


def body(response: Any) -> Any:
    return plain(response.body)


def chat(ctx: Context) -> dict[str, Any]:
    response = ctx.hl.chat(
        project=ctx.name("chat"),
        messages=user("Who are you?"),
        model_config={**MOCK, "temperature": 0.2, "chat_template": TEMPLATE},
        inputs={"person": "Ada"},
    )
    # What 0.5.18 user code reads: the raw dict's first sample.
    output = str(response.body["data"][0]["output"])
    return {"status": response.status, "output": output, "body": body(response)}


def stream(ctx: Context) -> dict[str, Any]:
    params: dict[str, Any] = {
        "project": ctx.name("stream"),
        "messages": user("tell me about streams"),
        "model_config": {**MOCK, "chat_template": TEMPLATE},
        "inputs": {"person": "a pirate"},
    }
    plain_answer = body(ctx.hl.chat(**params))
    items = asyncio.run(_collect(ctx.hl.chat_stream(**params)))
    return {"plain": plain_answer, "items": plain(items)}


def nesting(ctx: Context) -> dict[str, Any]:
    project = ctx.name("nesting")

    def ask(text: str, **kwargs: Any) -> Any:
        return body(ctx.hl.chat(project=project, messages=user(text), model_config=dict(MOCK), **kwargs))

    session = ctx.name("conversation")
    first = ask("turn one", session_reference_id=session)
    second = ask("turn two", session_reference_id=session)
    child = ask("nested", session_reference_id=session, parent_id=first["data"][0]["id"])
    return {"first": first, "second": second, "child": child}


def deployed(ctx: Context) -> dict[str, Any]:
    project = ctx.name("deployed")
    registered = body(ctx.hl.model_configs.register(project=project, chat_template=TEMPLATE, **MOCK))
    by_config = body(
        ctx.hl.chat_model_configuration(
            project=project,
            model_config_id=registered["config"]["id"],
            messages=user("by config"),
            inputs={"person": "Grace"},
        )
    )
    by_deployment = body(
        ctx.hl.chat_deployed(project=project, messages=user("deployed"), inputs={"person": "Alan"})
    )
    return {"registered": registered, "by_config": by_config, "by_deployment": by_deployment}


def complete(ctx: Context) -> Any:
    return body(
        ctx.hl.complete(
            project=ctx.name("complete"),
            model_config={**MOCK, "prompt_template": "Say {{word}}."},
            inputs={"word": "hello"},
        )
    )


def log_and_feedback(ctx: Context) -> dict[str, Any]:
    logged = body(
        ctx.hl.log(
            project=ctx.name("log"),
            inputs={"question": "2+2"},
            messages=user("What is 2+2?"),
            output="4",
            config={"type": "model", **MOCK},
            source="elsewhere",
        )
    )
    log_id = logged[0]["id"] if isinstance(logged, list) else logged["id"]
    rated = body(ctx.hl.feedback(type="rating", value="good", data_id=log_id))
    return {"logged": logged, "log_id": log_id, "feedback": rated}


def projects(ctx: Context) -> dict[str, Any]:
    name = ctx.name("projects")
    created = body(ctx.hl.projects.create(name=name))
    listed = body(ctx.hl.projects.list(filter=name))
    got = body(ctx.hl.projects.get(id=created["id"]))
    return {"created": created, "listed": listed, "got": got}


SCENARIOS: dict[str, Callable[[Context], Any]] = {
    "chat": chat,
    "stream": stream,
    "nesting": nesting,
    "deployed": deployed,
    "complete": complete,
    "log_and_feedback": log_and_feedback,
    "projects": projects,
}


def main(argv: list[str]) -> int:
    return run(SCENARIOS, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
