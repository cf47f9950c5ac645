"""Everything that happens before the provider is called, for every generation endpoint: checks that span
fields, finding the config to run, template rendering, project / model-config / session / parent
resolution, and the provider call itself.

The six endpoints differ in two ways only, and both are read off the request type:

* where the config comes from -- inline ``model_config`` (``/chat``, ``/completion``: registered as a
  version of the project, deduplicated by parameters), the config deployed to ``environment``
  (``*-deployed``), or a stored version by ``model_config_id`` (``*-model-config``);
* what the provider gets -- chat: the rendered ``chat_template`` then the request's ``messages``;
  completion: the rendered ``prompt_template`` as one user message (every provider here is chat-only,
  which is what Humanloop did for chat models too).
"""

from dataclasses import dataclass
from typing import Any

from loopgate.errors import NotFoundError, RequestInvalid
from loopgate.providers.base import GenerationCall, Provider
from loopgate.providers.registry import ProviderRegistry
from loopgate.schemas.chat import ChatRequest, GenerationRequest
from loopgate.schemas.common import (
    LINKED_TOOLS_UNAVAILABLE,
    ModelConfigChatRequest,
    ModelConfigTool,
    ModelParameters,
    ProviderApiKeys,
)
from loopgate.schemas.completion import (
    ChatDeployedRequest,
    ChatFields,
    ChatModelConfigRequest,
    CompletionDeployedRequest,
    CompletionFields,
    CompletionModelConfigRequest,
    CompletionRequest,
)
from loopgate.schemas.model_configs import ModelConfigCompletionRequest, StoredModelConfig
from loopgate.service import model_configs
from loopgate.service.templates import render_messages, render_text
from loopgate.store.catalog import Catalog
from loopgate.store.model_configs import ConfigRow

ChatBody = ChatRequest | ChatDeployedRequest | ChatModelConfigRequest
CompletionBody = CompletionRequest | CompletionDeployedRequest | CompletionModelConfigRequest
GenerationBody = ChatBody | CompletionBody
ModelConfig = ModelConfigChatRequest | ModelConfigCompletionRequest | StoredModelConfig


@dataclass(slots=True)
class Prepared:
    org_id: str
    request: GenerationRequest
    provider: Provider
    call: GenerationCall
    messages: list[dict[str, Any]]
    project_id: str
    config_id: str
    session_id: str | None
    parent_id: str | None
    tool_choice: Any
    # The environment whose deployed config ran (logged with each sample), for ``*-deployed`` requests.
    environment: str | None = None
    # Completion requests answer in the CompletionResponse shape and echo logprobs / suffix.
    completion: bool = False
    logprobs: int | None = None
    suffix: str | None = None
    # The log's caller-chosen reference id: v4 generation requests cannot set one (only POST /logs can);
    # the OpenAI-compatible door takes one from a header for its single log.
    reference_id: str | None = None


@dataclass(slots=True)
class _Source:
    """The config a request runs. ``stored`` is None for an inline config (registered later, once the
    request has passed every check); ``project_id`` is known up front only for stored configs."""

    config: ModelConfig
    stored: ConfigRow | None = None
    project_id: str | None = None
    environment: str | None = None


def _check_pairs(request: GenerationBody) -> None:
    if request.project is not None and request.project_id is not None:
        raise RequestInvalid(["body", "project_id"], "Give either project or project_id, not both")
    # A stored config knows its project; everything else needs one named.
    needs_project = not isinstance(request, ChatModelConfigRequest | CompletionModelConfigRequest)
    if needs_project and request.project is None and request.project_id is None:
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
        if not tool.name:  # a stored config's (a request's own tools are checked by its schema)
            raise RequestInvalid(
                ["body", "model_config", "tools", position, "name"], LINKED_TOOLS_UNAVAILABLE
            )
        function: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            function["description"] = tool.description
        function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
        if tool.strict is not None:
            function["strict"] = tool.strict
        converted.append({"type": "function", "function": function})
    return converted


def _tool_choice(request: ChatRequest | ChatFields) -> Any:
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


def sampling(config: ModelParameters) -> dict[str, Any]:
    """The config's sampling parameters as a GenerationCall takes them (``max_tokens`` -1: no limit)."""
    return {
        "temperature": config.temperature,
        "top_p": config.top_p,
        "max_tokens": config.max_tokens if config.max_tokens > 0 else None,
        "stop": config.stop,
        "presence_penalty": config.presence_penalty,
        "frequency_penalty": config.frequency_penalty,
    }


def credentials(provider: Provider, keys: ProviderApiKeys | None) -> tuple[str | None, str | None]:
    """The request's key for the provider, and its endpoint for providers that take one (Azure)."""
    if keys is None:
        return None, None
    endpoint_field = getattr(provider, "endpoint_field", None)
    api_key = getattr(keys, provider.key_field) if provider.key_field else None
    return api_key, getattr(keys, endpoint_field) if endpoint_field else None


def _config_loc(request: GenerationBody) -> list[str | int]:
    if isinstance(request, ChatRequest | CompletionRequest):
        return ["body", "model_config"]
    if isinstance(request, ChatDeployedRequest | CompletionDeployedRequest):
        return ["body", "environment"]
    return ["body", "model_config_id"]


class Preparer:
    def __init__(self, catalog: Catalog, providers: ProviderRegistry) -> None:
        self._catalog = catalog
        self._store = catalog.store
        self._providers = providers

    async def prepare(self, org_id: str, request: GenerationBody) -> Prepared:
        _check_pairs(request)
        source = await self._source(org_id, request)
        config = source.config
        provider = self._providers.get(config.provider.value)
        completion = isinstance(request, CompletionFields)
        tools: list[dict[str, Any]] | None = None
        tool_choice: Any = None
        response_format = config.response_format
        if isinstance(request, CompletionFields):
            prompt_template = getattr(config, "prompt_template", None)
            if prompt_template is None:
                raise RequestInvalid(
                    [*_config_loc(request), "prompt_template"],
                    "A completion needs a model config with a prompt_template",
                    "value_error.missing",
                )
            messages = [{"role": "user", "content": render_text(prompt_template, request.inputs)}]
        else:
            chat_template = getattr(config, "chat_template", None)
            template = [m.model_dump(mode="json", exclude_none=True) for m in chat_template or ()]
            messages = render_messages(template, request.inputs) + [
                m.model_dump(mode="json", exclude_none=True) for m in request.messages
            ]
            tools = _tools(getattr(config, "tools", None))
            tool_choice = _tool_choice(request)
            response_format = request.response_format or response_format

        project_id, config_id, seed = await self._register(org_id, request, source)
        session_id, parent_id = await self._session_and_parent(org_id, request)

        api_key, api_endpoint = credentials(provider, request.provider_api_keys)
        other = config.other
        logprobs = request.logprobs if isinstance(request, CompletionFields) else None
        if logprobs is not None:
            # The chat API's form of a completion's ``logprobs=N`` (top-N alternatives per token).
            other = {**other, "logprobs": True, "top_logprobs": logprobs}
        call = GenerationCall(
            model=config.model,
            messages=messages,
            n=request.num_samples,
            **sampling(config),
            seed=seed,
            user=request.user,
            tools=tools,
            tool_choice=tool_choice if tool_choice is not None else ("auto" if tools else None),
            response_format=response_format.model_dump(exclude_none=True) if response_format else None,
            other=other,
            api_key=api_key,
            api_endpoint=api_endpoint,
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
            environment=source.environment,
            completion=completion,
            logprobs=logprobs,
            suffix=request.suffix if isinstance(request, CompletionFields) else None,
        )

    # -- where the config comes from ----------------------------------------------------------------------

    async def _source(self, org_id: str, request: GenerationBody) -> _Source:
        if isinstance(request, ChatRequest | CompletionRequest):
            return _Source(request.config)
        if isinstance(request, ChatDeployedRequest | CompletionDeployedRequest):
            return await self._deployed(org_id, request)
        row = await self._catalog.configs.get(org_id, request.model_config_id)
        if row is None:
            raise NotFoundError(f"Model config '{request.model_config_id}' not found")
        return _Source(_runnable(row, ["body", "model_config_id"]), stored=row, project_id=row.project_id)

    async def _deployed(
        self, org_id: str, request: ChatDeployedRequest | CompletionDeployedRequest
    ) -> _Source:
        # Nothing can be deployed in a project that does not exist yet, so a new name is not created here.
        if request.project_id is not None:
            project = await self._catalog.projects.get(org_id, request.project_id)
            label = request.project_id
        else:
            assert request.project is not None
            project = await self._catalog.projects.by_name(org_id, request.project)
            label = request.project
        if project is None:
            raise NotFoundError(f"Project '{label}' not found")
        deployments = self._catalog.deployments
        environment = await deployments.by_name(org_id, request.environment)
        if environment is None:
            raise NotFoundError(f"Environment '{request.environment}' not found")
        config_id = await deployments.deployed_config(project.id, environment.id)
        row = await self._catalog.configs.get(org_id, config_id) if config_id else None
        if row is None:
            raise NotFoundError(
                f"No model config is deployed to environment '{environment.name}' of project "
                f"'{project.name}': deploy one with PATCH /projects/{{id}}/deploy-config "
                "or register one with POST /model-configs"
            )
        config = _runnable(row, ["body", "environment"])
        return _Source(config, stored=row, project_id=project.id, environment=environment.name)

    async def _register(
        self, org_id: str, request: GenerationBody, source: _Source
    ) -> tuple[str, str, int | None]:
        """(project id, config version id, seed) -- creating the project and the version when needed."""
        stored = source.stored
        if stored is None:
            assert isinstance(source.config, ModelConfigChatRequest | ModelConfigCompletionRequest)
            project_id = await self._project(org_id, request)
            body, config_hash = model_configs.identity(source.config, seed=request.seed)
            config_id = await self._store.model_config_id(org_id, project_id, config_hash, body)
            return project_id, config_id, body.get("seed")
        seed = source.config.seed if source.config.seed is not None else request.seed
        assert source.project_id is not None
        if request.project is None and request.project_id is None:
            return source.project_id, stored.id, seed
        project_id = await self._project(org_id, request)
        if project_id == source.project_id:
            return project_id, stored.id, seed
        # A stored version run in another project becomes (or finds) the same version of that project.
        config_id = await self._store.model_config_id(org_id, project_id, stored.config_hash, stored.body)
        return project_id, config_id, seed

    async def _project(self, org_id: str, request: GenerationBody) -> str:
        if request.project_id is not None:
            if not await self._store.project_exists(org_id, request.project_id):
                raise NotFoundError(f"Project '{request.project_id}' not found")
            return request.project_id
        assert request.project is not None
        if not request.project.strip():
            raise RequestInvalid(["body", "project"], "Project name must not be empty")
        return await self._store.project_by_name(org_id, request.project)

    async def _session_and_parent(
        self, org_id: str, request: GenerationBody
    ) -> tuple[str | None, str | None]:
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


def _runnable(row: ConfigRow, loc: list[str | int]) -> StoredModelConfig:
    if row.config_type != "model":
        raise RequestInvalid(loc, f"Config '{row.id}' is a {row.config_type} config, not a model config")
    return StoredModelConfig.model_validate(row.body)
