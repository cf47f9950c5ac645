"""End-to-end scenarios for projects, model configs, deployments and the generation variants, driven by
the official ``humanloop`` Python SDK (0.7.35).

Same contract as ``sdk_scenarios.py`` (whose Context and helpers it reuses): runs with the SDK's own
interpreter, never inside pytest, imports nothing from loopgate, and prints one JSON object
``{scenario: {"ok": true, "result": ...}}`` that ``test_sdk_projects.py`` asserts on.

    python sdk_projects_scenarios.py --host http://127.0.0.1:PORT/v4 --api-key KEY [--tag TAG] SCENARIO ...
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

from sdk_scenarios import MOCK, Context, _collect, api_error, run, user

TEMPLATE = [{"role": "system", "content": "You are {{persona}}."}]
PROMPT = {**MOCK, "prompt_template": "Tell me about {{topic}}."}


def plain(value: Any) -> Any:
    """An SDK response (a pydantic model, or a list of them) as plain JSON with wire names."""
    if isinstance(value, list):
        return [plain(item) for item in value]
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True)
    return value


def register(ctx: Context, project: str, **config: Any) -> dict[str, Any]:
    response = ctx.hl.model_configs.register(project=project, **{**MOCK, **config})
    return plain(response)


# -- scenarios -------------------------------------------------------------------------------------------


def projects(ctx: Context) -> dict[str, Any]:
    hl = ctx.hl
    name = ctx.name("projects")
    created = hl.projects.create(name=name)
    got = hl.projects.get(id=created.id)
    renamed = hl.projects.update(id=created.id, name=name + "-renamed", directory_id="dir_e2e")
    for suffix in ("b", "a"):
        hl.projects.create(name=ctx.name(f"projects-{suffix}"))
    listed = hl.projects.list(filter=ctx.tag, sort_by="name", order="asc", size=2)
    second_page = hl.projects.list(filter=ctx.tag, sort_by="name", order="asc", size=2, page=1)
    feedback_type = hl.projects.create_feedback_type(
        id=created.id, type="tone", _class="select", values=[{"value": "warm", "sentiment": "positive"}]
    )
    after_feedback_type = hl.projects.get(id=created.id)
    duplicate = api_error(lambda: hl.projects.create(name=name + "-renamed"))
    deleted = hl.projects.delete(id=created.id)
    return {
        "created": plain(created),
        "attributes": {
            "id": created.id,
            "team_id": created.team_id,
            "data_count": created.data_count,
            "users": created.users,
        },
        "got": plain(got),
        "renamed": plain(renamed),
        "listed": plain(listed),
        "list_attributes": {"total": listed.total, "names": [p.name for p in listed.records]},
        "second_page": plain(second_page),
        "feedback_type": plain(feedback_type),
        "feedback_types_after": [t["type"] for t in plain(after_feedback_type)["feedback_types"]],
        "duplicate": duplicate,
        "deleted": deleted,
        "gone": api_error(lambda: hl.projects.get(id=created.id)),
    }


def model_configs(ctx: Context) -> dict[str, Any]:
    hl = ctx.hl
    project = ctx.name("model-configs")
    registered = register(ctx, project, chat_template=TEMPLATE, temperature=0.4, name="reg-v1")
    again = register(ctx, project, chat_template=TEMPLATE, temperature=0.4)
    newer = register(ctx, project, chat_template=TEMPLATE, temperature=0.8)
    config_id = registered["config"]["id"]
    serialized = hl.model_configs.serialize(
        model="gpt-4o", provider="openai", temperature=0.7, chat_template=TEMPLATE, endpoint="chat"
    )
    return {
        "registered": registered,
        "again": again,
        "newer": newer,
        "got": plain(hl.model_configs.get(id=config_id)),
        "exported": hl.model_configs.export(id=config_id),
        "serialized": serialized,
        "deserialized": plain(hl.model_configs.deserialize(config=serialized)),
        "configs": plain(hl.projects.list_configs(id=registered["project_id"])),
        "active": plain(hl.projects.get_active_config(id=registered["project_id"])),
        "missing": api_error(lambda: hl.model_configs.get(id="config_doesnotexist0000000")),
    }


def deployments(ctx: Context) -> dict[str, Any]:
    hl = ctx.hl
    project = ctx.name("deploy")
    first = register(ctx, project, chat_template=TEMPLATE, temperature=0.1)
    second = register(ctx, project, chat_template=TEMPLATE, temperature=0.2)
    project_id = first["project_id"]
    environments = plain(hl.projects.list_deployed_configs(id=project_id))
    production = next(env["environment_id"] for env in environments if env["environment_tag"] == "default")
    deployed = hl.projects.deploy_config(
        project_id=project_id, config_id=second["config"]["id"], environments=[{"id": production}]
    )
    chat = hl.chat_deployed(project=project, messages=user("which one?"), inputs={"persona": "Grace"})
    by_id = hl.chat_model_config(
        model_config_id=first["config"]["id"], messages=user("by id"), inputs={"persona": "Alan"}
    )
    streamed = asyncio.run(
        _collect(
            hl.chat_deployed_stream(
                project_id=project_id, messages=user("stream it"), inputs={"persona": "Ida"}
            )
        )
    )
    deactivated = hl.projects.deactivate_config(id=project_id)
    nothing_deployed = api_error(lambda: hl.chat_deployed(project=project, messages=user("x"), inputs={}))
    redeployed = hl.projects.deploy_config(project_id=project_id, config_id=first["config"]["id"])
    removed = hl.projects.delete_deployed_config(project_id=project_id, environment_id=production)
    return {
        "first": first,
        "second": second,
        "environments": environments,
        "deployed": plain(deployed),
        "chat": plain(chat),
        "chat_attributes": {"output": chat.data[0].output, "model_config_id": chat.data[0].model_config_id_},
        "by_id": plain(by_id),
        "streamed": streamed,
        "deactivated": plain(deactivated),
        "nothing_deployed": nothing_deployed,
        "redeployed": plain(redeployed),
        "removed": plain(removed),
    }


def completions(ctx: Context) -> dict[str, Any]:
    hl = ctx.hl
    project = ctx.name("complete")
    params: dict[str, Any] = {"project": project, "model_config": dict(PROMPT), "inputs": {"topic": "tides"}}
    completed = hl.complete(**params, num_samples=2, logprobs=1, suffix="THE END", user="e2e-user")
    chunks = asyncio.run(_collect(hl.complete_stream(**params)))
    registered = register(ctx, ctx.name("complete-deployed"), prompt_template=PROMPT["prompt_template"])
    deployed = hl.complete_deployed(project=registered["project_name"], inputs={"topic": "rivers"})
    by_id = hl.complete_model_configuration(
        model_config_id=registered["config"]["id"], inputs={"topic": "lakes"}
    )
    return {
        "completed": plain(completed),
        "attributes": {
            "outputs": [item.output for item in completed.data],
            "model_config_id": completed.data[0].model_config_id_,
            "suffix": completed.suffix,
            "logprobs": completed.logprobs,
        },
        "chunks": chunks,
        "registered": registered,
        "deployed": plain(deployed),
        "by_id": plain(by_id),
        "missing_input": api_error(lambda: hl.complete(**{**params, "inputs": {}})),
    }


SCENARIOS: dict[str, Callable[[Context], Any]] = {
    "projects": projects,
    "model_configs": model_configs,
    "deployments": deployments,
    "completions": completions,
}


def main(argv: list[str]) -> int:
    return run(SCENARIOS, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
