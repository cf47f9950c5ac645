"""The provider registry: adding a provider is one module with a ``build`` function plus one line here."""

from collections.abc import Callable

from loopgate.config import Settings
from loopgate.errors import RequestInvalid
from loopgate.providers import (
    anthropic,
    bedrock,
    cohere,
    google,
    groq,
    mock,
    openai,
    openai_azure,
    replicate,
    upstreams,
)
from loopgate.providers.base import Provider
from loopgate.providers.http import UpstreamHTTP

_BUILDERS: dict[str, Callable[[Settings, UpstreamHTTP], Provider]] = {
    "openai": openai.build,
    "anthropic": anthropic.build,
    "mock": mock.build,
    "groq": groq.build,
    "google": google.build,
    "cohere": cohere.build,
    "openai_azure": openai_azure.build,
    "replicate": replicate.build,
    "bedrock": bedrock.build,
}


class ProviderRegistry:
    def __init__(self, settings: Settings, http: UpstreamHTTP) -> None:
        built = {name: build(settings, http) for name, build in _BUILDERS.items()}
        self._providers = upstreams.route(built, settings, http)  # LOOPGATE_UPSTREAMS, by model prefix

    def get(self, name: str) -> Provider:
        provider = self._providers.get(name)
        if provider is None:
            available = ", ".join(sorted(self._providers))
            raise RequestInvalid(
                ["body", "model_config", "provider"],
                f"Provider '{name}' is not available on this server (available: {available})",
            )
        return provider
