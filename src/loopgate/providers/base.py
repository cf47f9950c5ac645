"""The provider interface: what the generation service asks of a model provider, and what it gets back.

Messages, tools and tool_choice reach a provider in the OpenAI chat shape (the shape the v4 API itself
uses); each adapter translates to its upstream's wire format and back. ``provider_request`` is the exact
body sent upstream and ``provider_responses`` the raw upstream bodies, kept as parsed JSON so nothing is
re-serialised through typed models on the hot path.
"""

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Protocol

JSON = dict[str, Any]


@dataclass(slots=True)
class GenerationCall:
    model: str
    messages: list[JSON]
    n: int = 1
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    user: str | None = None
    tools: list[JSON] | None = None
    tool_choice: str | JSON | None = None
    response_format: JSON | None = None
    other: JSON = field(default_factory=dict)
    api_key: str | None = None
    # A per-request endpoint from provider_api_keys (Azure's ``openai_azure_endpoint``), for providers that
    # declare an ``endpoint_field``.
    api_endpoint: str | None = None


@dataclass(slots=True)
class Generation:
    index: int
    raw_output: str
    finish_reason: str | None
    tool_calls: list[JSON] | None = None
    logprobs: Any = None


@dataclass(slots=True)
class Usage:
    prompt_tokens: int
    generation_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.generation_tokens


@dataclass(slots=True)
class ProviderResult:
    generations: list[Generation]
    request: JSON
    responses: list[Any]
    # None when the upstream did not report usage; the service then counts tokens itself.
    usage: Usage | None = None


@dataclass(slots=True)
class ToolCallDelta:
    position: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class StreamDelta:
    """A piece of one sample's output. ``finish_reason`` is set on the sample's last delta."""

    index: int
    text: str = ""
    tool_calls: list[ToolCallDelta] | None = None
    finish_reason: str | None = None


@dataclass(slots=True)
class StreamEnd:
    """Sent once after every delta: what was sent upstream and what came back."""

    request: JSON
    responses: list[Any]
    usage: Usage | None = None


StreamEvent = StreamDelta | StreamEnd


class Provider(Protocol):
    """A model provider. ``name`` is its ModelProviders value; ``display_name`` is the ``origin`` in errors;
    ``key_field`` names its member of ProviderApiKeys (None when it needs no key)."""

    name: str
    display_name: str
    key_field: str | None

    async def generate(self, call: GenerationCall) -> ProviderResult: ...

    def stream(self, call: GenerationCall) -> AsyncGenerator[StreamEvent, None]: ...


class InFront:
    """The base of a provider that stands in front of another (routing, redaction): it answers to the same
    names and key fields, so a request's keys are looked up as the provider behind it needs them."""

    def __init__(self, provider: Provider) -> None:
        self.name = provider.name
        self.display_name = provider.display_name
        self.key_field = provider.key_field
        self.endpoint_field: str | None = getattr(provider, "endpoint_field", None)


def normalise_finish_reason(reason: str | None) -> str | None:
    """v4 reports stop / length / tool_call whatever the upstream called them."""
    if reason is None:
        return None
    return _FINISH_REASONS.get(reason, reason)


_FINISH_REASONS = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "eos": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_call",
    "function_call": "tool_call",
    "tool_use": "tool_call",
    "tool_call": "tool_call",
    "STOP": "stop",  # Google
    "MAX_TOKENS": "length",  # Google, Cohere
    "COMPLETE": "stop",  # Cohere
    "STOP_SEQUENCE": "stop",  # Cohere
    "TOOL_CALL": "tool_call",  # Cohere
}
