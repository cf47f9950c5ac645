"""Stored rows -> the v4 response documents: ModelConfigResponse (and the other ConfigResponse kinds),
ProjectConfigResponse / GetModelConfigResponse, ModelConfigEvaluatorAggregateResponse,
EnvironmentProjectConfigResponse, ProjectResponse."""

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from loopgate.store.deployments import Environment
from loopgate.store.evaluators import EvaluatorRow
from loopgate.store.model_configs import ConfigRow, ConfigUsage
from loopgate.store.projects import ProjectRow

_SAMPLING_DEFAULTS: dict[str, Any] = {
    "provider": "openai",
    "max_tokens": -1,
    "temperature": 1,
    "top_p": 1,
    "presence_penalty": 0,
    "frequency_penalty": 0,
}


def _tool_id(tool: dict[str, Any]) -> str:
    """Inline tools have no id of their own; ToolResponse needs one, so derive a stable one from the
    definition (the same tool always shows the same id)."""
    digest = hashlib.sha256(orjson.dumps(tool, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return "config_" + digest[:21]


def tool_response(tool: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": tool.get("id") or _tool_id(tool),
        "name": tool.get("name"),
        "description": tool.get("description"),
        "parameters": tool.get("parameters"),
        "source": tool.get("source") or "inline",
    }


def model_config_view(config_id: str, name: str | None, body: dict[str, Any]) -> dict[str, Any]:
    """ModelConfigResponse of a config body (stored, or parsed from a ``.prompt`` file)."""
    view: dict[str, Any] = {
        "id": config_id,
        "type": "model",
        "name": name if name is not None else body.get("name"),
        "description": body.get("description"),
    }
    view.update({key: body.get(key, default) for key, default in _SAMPLING_DEFAULTS.items()})
    view.update(
        model=body.get("model"),
        stop=body.get("stop"),
        other=body.get("other") or {},
        seed=body.get("seed"),
        response_format=body.get("response_format"),
        prompt_template=body.get("prompt_template"),
        chat_template=body.get("chat_template"),
        tool_configs=[],
        tools=[tool_response(tool) for tool in body.get("tools") or ()],
        endpoint=body.get("endpoint"),
    )
    return view


def evaluator_config_view(config_id: str, name: str | None, body: dict[str, Any]) -> dict[str, Any]:
    """EvaluatorConfigResponse: the evaluator version its judgments were logged under (the body is what
    ``service/evaluator_logs.py`` registers), its model config as a ModelConfigResponse."""
    model_config = body.get("model_config")
    return {
        "id": config_id,
        "type": "evaluator",
        "status": "committed",
        "name": name if name is not None else body.get("name"),
        "description": body.get("description"),
        "other": None,
        "created_by": None,
        "evaluator_type": body.get("evaluator_type"),
        "model_config": model_config_view(config_id, None, model_config) if model_config else None,
        "code": body.get("code"),
        "arguments_type": body.get("arguments_type"),
        "return_type": body.get("return_type"),
    }


def config_view(row: ConfigRow) -> dict[str, Any]:
    """The ConfigResponse union member for a stored version, discriminated by ``type``."""
    if row.config_type == "model":
        return model_config_view(row.id, row.name, row.body)
    if row.config_type == "evaluator":
        return evaluator_config_view(row.id, row.name, row.body)
    return {
        **row.body,
        "id": row.id,
        "type": row.config_type,
        "name": row.body.get("name") or row.name,
        "status": "committed",
    }


def evaluator_aggregates(
    config_id: str, evaluators: Sequence[EvaluatorRow], means: Mapping[str, float | None]
) -> list[dict[str, Any]]:
    """ModelConfigEvaluatorAggregateResponse of each evaluator, for an evaluation's ``evaluator_aggregates``
    and a config's ``evaluation_aggregates``: ``aggregate_value`` null until it has a numeric result.
    Earlier evaluator versions are not kept, so the version named is the current one."""
    return [
        {
            "model_config_id": config_id,
            "evaluator_id": evaluator.id,
            "evaluator_version_id": evaluator.version_id,
            "aggregate_value": means.get(evaluator.id),
        }
        for evaluator in evaluators
    ]


def project_config_view(
    row: ConfigRow,
    project: ProjectRow,
    usage: ConfigUsage | None,
    *,
    environment_id: str | None = None,
    aggregates: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """ProjectConfigResponse; with ``environment_id`` it is a GetModelConfigResponse. ``aggregates`` is
    null unless the caller asked for them (``evaluation_aggregates=true``)."""
    last_used: datetime = usage.last_used if usage and usage.last_used else row.created_at
    view: dict[str, Any] = {
        "project_id": project.id,
        "project_name": project.name,
        "created_at": row.created_at,
        "updated_at": row.created_at,  # versions are immutable
        "last_used": last_used,
        "num_datapoints": usage.num_datapoints if usage else 0,
        "evaluation_aggregates": aggregates,
        "config": config_view(row),
    }
    if environment_id is not None:
        view["environment_id"] = environment_id
    return view


def deployment_view(
    project: ProjectRow, environment: Environment, config: ConfigRow | None
) -> dict[str, Any]:
    return {
        "project_id": project.id,
        "project_name": project.name,
        "model_config_id": config.id if config else None,
        "model_config_name": config.name if config else None,
        "environment_id": environment.id,
        "environment_name": environment.name,
        "environment_tag": environment.tag,
    }


def project_view(
    project: ProjectRow,
    *,
    data_count: int,
    feedback_types: list[dict[str, Any]],
    active_config: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "active_config": active_config,
        "users": [],  # loopgate has organizations and keys, no user accounts
        "data_count": data_count,
        "feedback_types": feedback_types,
        "team_id": project.org_id,
        "config_type": "model",
        "active_evaluators": [],
        "directory_id": project.directory_id,
        "created_at": project.created_at,
        "updated_at": project.updated_at,
    }
