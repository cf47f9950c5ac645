"""Everything that happens before the provider is called: checks that span fields, template rendering,
project / model-config / session / parent resolution, and the provider call itself."""

from dataclasses import dataclass
from typing import Any

from loopgate.errors import NotFoundError, RequestInvalid
from loopgate.providers.base import GenerationCall, Provider
from loopgate.providers.registry import ProviderRegistry
from loopgate.schemas.chat import ChatRequest
from loopgate.schemas.common import ModelConfigTool
from loopgate.service import model_configs
from loopgate.service.templates import render_messages
from loopgate.store.repository import Store


@dataclass(slots=True)
class Prepared:
    org_id: str
    request: ChatRequest
    provider: Provider
    call: GenerationCall
    messages: list[dict[str, Any]]
    project_id: str
    config_id: str
    session_id: str | None
    parent_id: str | None
    tool_choice: Any


def _exactly_one(request: ChatRequest) -> None:
    if request.project is not None and request.project_id is not None:
        raise RequestInvalid(["body", "project_id"], "Give either project or project_id, not both")
    if request.project is None and request.project_id is None:
        raise RequestInvalid(["body", "project"], "Give a project name (project) or an existing project_id")
    if request.session_id is not None and request.session_reference_id is not None:
        raise RequestInvalid(
            ["body", "session_reference_id"], "Give either session_id or session_reference_id, not both"
        )
    if request.parent_id is not None and request.parent_reference_id is not None:
        raise RequestInvalid(
            ["body", "parent_reference_id"], "Give either parent_id or parent_reference_id, not both"
        )


def _tools(tools: list[ModelConfigTool] | None) -> list[dict[str, Any]] | None:
    if not tools:
        return None
    converted = []
    for position, tool in enumerate(tools):
        if not tool.name:
            raise RequestInvalid(
                ["body", "model_config", "tools", position, "name"],
                "Linked organization tools are not available on this server; "
                "define the tool inline with a name",
            )
        function: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            function["description"] = tool.description
        function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
        if tool.strict is not None:
            function["strict"] = tool.strict
        converted.append({"type": "function", "function": function})
    return converted


def _tool_choice(request: ChatRequest) -> Any:
    """The effective tool_choice: the request's, else the deprecated ``tool_call`` translated."""
    if request.tool_choice is not None:
        return (
            request.tool_choice if isinstance(request.tool_choice, str) else request.tool_choice.model_dump()
        )
    legacy = request.tool_call
    if isinstance(legacy, str):
        if legacy in ("none", "auto", "required"):
            return legacy
        return {"type": "function", "function": {"name": legacy}}
    if isinstance(legacy, dict) and legacy.get("name"):
        return {"type": "function", "function": {"name": legacy["name"]}}
    return None


class Preparer:
    def __init__(self, store: Store, providers: ProviderRegistry) -> None:
        self._store = store
        self._providers = providers

    async def chat(self, org_id: str, request: ChatRequest) -> Prepared:
        _exactly_one(request)
        config = request.config
        provider = self._providers.get(config.provider.value)
        template = [m.model_dump(mode="json", exclude_none=True) for m in config.chat_template or ()]
        messages = render_messages(template, request.inputs) + [
            m.model_dump(mode="json", exclude_none=True) for m in request.messages
        ]
        tools = _tools(config.tools)
        tool_choice = _tool_choice(request)
        response_format = request.response_format or config.response_format

        project_id = await self._project(org_id, request)
        body = model_configs.config_body(config, seed=request.seed)
        config_id = await self._store.model_config_id(
            org_id, project_id, model_configs.config_hash(body), body
        )
        session_id, parent_id = await self._session_and_parent(org_id, request)

        keys = request.provider_api_keys
        api_key = getattr(keys, provider.key_field) if keys is not None and provider.key_field else None
        call = GenerationCall(
            model=config.model,
            messages=messages,
            n=request.num_samples,
            temperature=config.temperature,
            top_p=config.top_p,
            max_tokens=config.max_tokens if config.max_tokens > 0 else None,
            stop=config.stop,
            presence_penalty=config.presence_penalty,
            frequency_penalty=config.frequency_penalty,
            seed=body.get("seed"),
            user=request.user,
            tools=tools,
            tool_choice=tool_choice if tool_choice is not None else ("auto" if tools else None),
            response_format=response_format.model_dump(exclude_none=True) if response_format else None,
            other=config.other,
            api_key=api_key,
        )
        return Prepared(
            org_id=org_id,
            request=request,
            provider=provider,
            call=call,
            messages=messages,
            project_id=project_id,
            config_id=config_id,
            session_id=session_id,
            parent_id=parent_id,
            tool_choice=tool_choice,
        )

    async def _project(self, org_id: str, request: ChatRequest) -> str:
        if request.project_id is not None:
            if not await self._store.project_exists(org_id, request.project_id):
                raise NotFoundError(f"Project '{request.project_id}' not found")
            return request.project_id
        assert request.project is not None
        if not request.project.strip():
            raise RequestInvalid(["body", "project"], "Project name must not be empty")
        return await self._store.project_by_name(org_id, request.project)

    async def _session_and_parent(self, org_id: str, request: ChatRequest) -> tuple[str | None, str | None]:
        session_id: str | None = None
        if request.session_id is not None:
            if not await self._store.session_exists(org_id, request.session_id):
                raise NotFoundError(f"Session '{request.session_id}' not found")
            session_id = request.session_id
        elif request.session_reference_id is not None:
            session_id = await self._store.session_by_reference(org_id, request.session_reference_id)
        parent_id: str | None = None
        if request.parent_id is not None or request.parent_reference_id is not None:
            parent = await self._store.log_parent(
                org_id, log_id=request.parent_id, reference_id=request.parent_reference_id
            )
            if parent is None:
                wanted = request.parent_id or f"reference_id '{request.parent_reference_id}'"
                raise NotFoundError(f"Parent log {wanted} not found")
            parent_id = parent[0]
            # A child without a session of its own joins its parent's session, keeping the tree whole.
            session_id = session_id or parent[1]
        return session_id, parent_id
