"""The OpenAI-compatible door: a Chat Completions request becomes a v4 ChatRequest with an inline model
config, and goes through the v4 generation path (``service/prepare.py``, ``service/generation.py``,
``service/streaming.py``): the same project / config version / session / parent resolution, the same log
rows, the same commit before the answer. Only the answer's shape differs (``service/openai_shapes.py``).

Routing: ``model`` is ``<provider>/<model>`` for any provider of ``providers/registry.py``, or
``<upstream>/<model>`` for an upstream declared in ``LOOPGATE_UPSTREAMS`` (which then routes it as it routes
v4 requests); a name without ``/`` goes to ``openai``. Any other prefix is refused (404
``model_not_found``, as OpenAI answers for a model it does not have): a Hugging Face style name meant for
the OpenAI-compatible server at ``LOOPGATE_OPENAI_BASE_URL`` is written ``openai/meta-llama/...``.
"""

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pydantic import ValidationError

from loopgate.config import Settings
from loopgate.errors import ConflictError, NotFoundError, RequestInvalid
from loopgate.providers import registry
from loopgate.schemas.chat import ChatRequest
from loopgate.schemas.openai_compat import ChatCompletionRequest, Message
from loopgate.service.generation import GenerationService
from loopgate.service.openai_shapes import ChunkEvents, CompletionShape
from loopgate.service.prepare import Prepared
from loopgate.store.logs import LogStore
from loopgate.store.repository import Store

DEFAULT_PROJECT = "default"
MOCK_MODEL = "mock/mock-1"

# The ChatRequest field each X-Loopgate-* request header sets.
HEADERS = {
    "project": "X-Loopgate-Project",
    "session_id": "X-Loopgate-Session-Id",
    "session_reference_id": "X-Loopgate-Session-Reference-Id",
    "parent_id": "X-Loopgate-Parent-Id",
    "parent_reference_id": "X-Loopgate-Parent-Reference-Id",
    "reference_id": "X-Loopgate-Reference-Id",
}
PROVIDER_KEY_HEADER = "X-Provider-Api-Key"
_REFERENCE_WIDTH = 255  # logs.reference_id, as POST /logs bounds it (PostgreSQL refuses a longer one)

# Providers whose adapter speaks OpenAI's own wire API: ``max_completion_tokens`` reaches them as named,
# since OpenAI's reasoning models refuse ``max_tokens``. Every other provider gets it as its max_tokens.
_OPENAI_WIRE = frozenset({"openai", "openai_azure", "groq"})
_OPENAI_BASE_URL = Settings.model_fields["openai_base_url"].default

# What makes a provider usable without a per-request key: listed by GET /v1/models.
_CONFIGURED: dict[str, Callable[[Settings], bool]] = {
    "openai": lambda s: bool(s.openai_api_key) or s.openai_base_url != _OPENAI_BASE_URL,
    "anthropic": lambda s: bool(s.anthropic_api_key),
    "groq": lambda s: bool(s.groq_api_key),
    "google": lambda s: bool(s.google_api_key),
    "cohere": lambda s: bool(s.cohere_api_key),
    "replicate": lambda s: bool(s.replicate_api_key),
    "openai_azure": lambda s: bool(s.openai_azure_api_key and s.openai_azure_endpoint),
    "bedrock": lambda s: bool(s.bedrock_access_key_id and s.bedrock_secret_access_key),
}


class UnknownModel(NotFoundError):
    """``model`` names no provider or declared upstream this server has."""


@dataclass(frozen=True, slots=True)
class DoorContext:
    """What a request says in headers: where its log goes, and a provider key for this call only."""

    project: str = DEFAULT_PROJECT
    session_id: str | None = None
    session_reference_id: str | None = None
    parent_id: str | None = None
    parent_reference_id: str | None = None
    reference_id: str | None = None
    provider_key: str | None = field(default=None, repr=False)  # never in a repr, log line or traceback


@dataclass(frozen=True, slots=True)
class Answer:
    body: dict[str, Any]
    log_ids: list[str]
    session_id: str | None


@dataclass(frozen=True, slots=True)
class OpenedStream:
    events: AsyncIterator[bytes]
    log_ids: list[str]
    session_id: str | None


def route(model: str, settings: Settings) -> tuple[str, str]:
    """``(provider, model)`` for the provider registry; a declared upstream keeps its prefix, which the
    provider's ``UpstreamRouter`` reads (``providers/upstreams.py``). Declared upstreams come first: the
    operator named them, so ``NAME/...`` means that server even when NAME is also a provider."""
    prefix, slash, rest = model.partition("/")
    if not slash:
        return "openai", model
    upstream = settings.upstreams.get(prefix)
    if upstream is not None:
        return upstream.provider.value, model
    if prefix in registry.names() and rest:
        return prefix, rest
    raise UnknownModel(
        f"The model '{model}' does not exist on this server: name it '<provider>/<model>' with a provider "
        f"of {', '.join(registry.names())}, an upstream declared in LOOPGATE_UPSTREAMS, or no prefix "
        "for openai"
    )


def _message(message: Message) -> dict[str, Any]:
    dumped = message.model_dump(exclude_none=True)
    if message.role == "developer":
        dumped["role"] = "system"
    return dumped


def chat_request(body: ChatCompletionRequest, context: DoorContext, provider: str, model: str) -> ChatRequest:
    """The v4 request this OpenAI request means. Only parameters the client sent go into the model config,
    so it is the config a v4 client would send inline for the same call, and versions dedup alike."""
    config: dict[str, Any] = {"provider": provider, "model": model}
    for name in ("temperature", "top_p", "stop", "presence_penalty", "frequency_penalty", "seed"):
        value = getattr(body, name)
        if value is not None:
            config[name] = value
    other = {key: value for key, value in (body.model_extra or {}).items() if value is not None}
    limit = body.max_completion_tokens
    if limit is not None and provider in _OPENAI_WIRE:
        other["max_completion_tokens"] = limit
        limit = None
    limit = limit if limit is not None else body.max_tokens
    if limit is not None:
        config["max_tokens"] = limit
    if other:
        config["other"] = other
    if body.tools:
        config["tools"] = [tool.function.model_dump(exclude_none=True) for tool in body.tools]
    if body.response_format is not None and body.response_format.type != "text":
        config["response_format"] = body.response_format.model_dump(exclude_none=True)
    fields: dict[str, Any] = {
        "project": context.project,
        "session_id": context.session_id,
        "session_reference_id": context.session_reference_id,
        "parent_id": context.parent_id,
        "parent_reference_id": context.parent_reference_id,
        "model_config": config,
        "messages": [_message(m) for m in body.messages],
        "num_samples": body.n or 1,
        "stream": bool(body.stream),
        "user": body.user,
        "metadata": body.metadata,
        "tool_choice": body.tool_choice,
    }
    try:
        return ChatRequest.model_validate({key: value for key, value in fields.items() if value is not None})
    except ValidationError as exc:
        # The OpenAI schema admitted something the v4 one does not: a 400 at the v4 field's location,
        # which the route renames to the client's parameter.
        first = exc.errors()[0]
        raise RequestInvalid(["body", *first["loc"]], first["msg"], first["type"]) from None


class OpenAIDoor:
    def __init__(self, generation: GenerationService, store: Store, settings: Settings) -> None:
        self._generation = generation
        self._logs = LogStore(store.engine)
        self._settings = settings

    async def complete(self, org_id: str, body: ChatCompletionRequest, context: DoorContext) -> Answer:
        prepared = await self._prepare(org_id, body, context)
        shape = CompletionShape(body.model, int(time.time()))
        answer, log_ids = await self._generation.run(prepared, shape)
        return Answer(answer, log_ids, prepared.session_id)

    async def stream(self, org_id: str, body: ChatCompletionRequest, context: DoorContext) -> OpenedStream:
        prepared = await self._prepare(org_id, body, context)
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        shape = partial(ChunkEvents, model=body.model, created=int(time.time()), include_usage=include_usage)
        stream = await self._generation.open_stream(prepared, shape)
        return OpenedStream(stream.events(), stream.log_ids, prepared.session_id)

    def models(self) -> list[dict[str, Any]]:
        """What ``model`` can name without a per-request key: the mock model, and a ``<prefix>/*`` entry per
        configured provider and declared upstream (which models those serve is the upstream's to say)."""
        entries = [(MOCK_MODEL, "loopgate")]
        settings = self._settings
        entries += [(f"{name}/*", name) for name in registry.names() if _CONFIGURED.get(name, _no)(settings)]
        entries += [(f"{name}/*", name) for name in settings.upstreams]
        return [{"id": id_, "object": "model", "created": 0, "owned_by": owner} for id_, owner in entries]

    async def _prepare(self, org_id: str, body: ChatCompletionRequest, context: DoorContext) -> Prepared:
        provider, model = route(body.model, self._settings)
        request = chat_request(body, context, provider, model)
        reference_id = context.reference_id
        if reference_id is not None:
            if request.num_samples > 1:
                raise RequestInvalid(["body", "reference_id"], "A reference id names one log: use n=1")
            if len(reference_id) > _REFERENCE_WIDTH:
                raise RequestInvalid(
                    ["body", "reference_id"],
                    f"String should have at most {_REFERENCE_WIDTH} characters",
                    "string_too_long",
                )
            # Unique per organization, as for POST /logs; a request racing for the same id gets a 409
            # from the writer (the unique index), never a 500.
            if await self._logs.taken_references(org_id, [reference_id]):
                raise ConflictError(f"reference_id '{reference_id}' is already used by another log")
        prepared = await self._generation.prepare(org_id, request)
        prepared.reference_id = reference_id
        if context.provider_key:
            # Set on the call only: it is not a field of the request, the config or the log row, so
            # nothing that is stored or answered can carry it.
            prepared.call.api_key = context.provider_key
        return prepared


def _no(_settings: Settings) -> bool:
    return False
