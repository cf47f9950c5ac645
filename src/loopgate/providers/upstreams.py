"""Declared upstreams: OpenAI-compatible servers named in ``LOOPGATE_UPSTREAMS`` and chosen by model prefix.

v4 clients can only name one of the ModelProviders, so a declared upstream is selected by the model: with
``{"local": {"base_url": "http://127.0.0.1:8080/v1"}}`` a request for provider ``openai`` and model
``local/llama3`` goes to that server with model ``llama3``. Only a prefix that names a declared upstream
routes; every other model (``meta-llama/Llama-3-8B`` included) goes to the built-in provider untouched.

Keys: an upstream gets only its own declared ``api_key``, or no ``Authorization`` header when it declares
none. A request's ``provider_api_keys`` value is never forwarded, so a client's OpenAI key cannot reach a
host the client did not choose.
"""

from collections.abc import AsyncGenerator
from dataclasses import replace

from loopgate.config import DeclaredUpstream, Settings
from loopgate.providers.base import GenerationCall, InFront, Provider, ProviderResult, StreamEvent
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.openai_chat import OpenAIChatAdapter
from loopgate.providers.retry import RetryPolicy


class DeclaredUpstreamAdapter(OpenAIChatAdapter):
    """The OpenAI Chat Completions adapter with the upstream's declared key as its only credential."""

    def _headers(self, call: GenerationCall) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._default_api_key:
            headers["Authorization"] = f"Bearer {self._default_api_key}"
        return headers


class UpstreamRouter(InFront):
    """A built-in provider with declared upstreams in front of it, chosen by the model's prefix."""

    def __init__(self, default: Provider, routes: dict[str, Provider]) -> None:
        super().__init__(default)
        self._default = default
        self._routes = routes

    def _route(self, call: GenerationCall) -> tuple[Provider, GenerationCall]:
        prefix, slash, model = call.model.partition("/")
        upstream = self._routes.get(prefix) if slash else None
        if upstream is None:
            return self._default, call
        return upstream, replace(call, model=model, api_key=None, api_endpoint=None)

    async def generate(self, call: GenerationCall) -> ProviderResult:
        provider, routed = self._route(call)
        return await provider.generate(routed)

    def stream(self, call: GenerationCall) -> AsyncGenerator[StreamEvent, None]:
        provider, routed = self._route(call)
        return provider.stream(routed)


def build(name: str, upstream: DeclaredUpstream, settings: Settings, http: UpstreamHTTP) -> Provider:
    return DeclaredUpstreamAdapter(
        name=upstream.provider.value,
        display_name=name,
        key_variable="LOOPGATE_UPSTREAMS",
        base_url=str(upstream.base_url),
        default_api_key=upstream.api_key,
        http=http,
        retry=RetryPolicy.from_settings(settings),
    )


def route(providers: dict[str, Provider], settings: Settings, http: UpstreamHTTP) -> dict[str, Provider]:
    """``providers`` with each one that has declared upstreams wrapped in an ``UpstreamRouter``; one adapter
    per upstream, built once, with its provider."""
    routes: dict[str, dict[str, Provider]] = {}
    for name, upstream in settings.upstreams.items():
        if upstream.provider.value in providers:
            routes.setdefault(upstream.provider.value, {})[name] = build(name, upstream, settings, http)
    return {
        name: UpstreamRouter(provider, routes[name]) if name in routes else provider
        for name, provider in providers.items()
    }
