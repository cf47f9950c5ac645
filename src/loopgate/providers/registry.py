"""The provider registry: adding a provider is one module with a ``build`` function plus one line here.

Adapters are imported and built on first use, not at start: most servers use one or two providers, and
importing all of them (botocore alone is ~100 ms) was a fifth of the time from ``loopgate serve`` to ready.
"""

import importlib
from collections.abc import Callable

from loopgate.config import Settings
from loopgate.errors import RequestInvalid
from loopgate.providers import upstreams
from loopgate.providers.base import Provider
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.redact import Redacting, server_secrets

# Provider name -> the module (under loopgate.providers) whose ``build(settings, http)`` makes it.
_MODULES: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "mock": "mock",
    "groq": "groq",
    "google": "google",
    "cohere": "cohere",
    "openai_azure": "openai_azure",
    "replicate": "replicate",
    "bedrock": "bedrock",
}


def names() -> tuple[str, ...]:
    """Every provider this server can build, by name."""
    return tuple(_MODULES)


def _builder(name: str) -> Callable[[Settings, UpstreamHTTP], Provider]:
    module = importlib.import_module(f"loopgate.providers.{_MODULES[name]}")
    build: Callable[[Settings, UpstreamHTTP], Provider] = module.build
    return build


class ProviderRegistry:
    def __init__(self, settings: Settings, http: UpstreamHTTP) -> None:
        self._settings = settings
        self._http = http
        self._providers: dict[str, Provider] = {}
        self._secrets = server_secrets(settings)

    def get(self, name: str) -> Provider:
        provider = self._providers.get(name)
        if provider is not None:
            return provider
        if name not in _MODULES:
            available = ", ".join(sorted(_MODULES))
            raise RequestInvalid(
                ["body", "model_config", "provider"],
                f"Provider '{name}' is not available on this server (available: {available})",
            )
        built = {name: _builder(name)(self._settings, self._http)}
        # LOOPGATE_UPSTREAMS, by model prefix: only the declared upstreams of this provider are built.
        provider = Redacting(upstreams.route(built, self._settings, self._http)[name], self._secrets)
        self._providers[name] = provider
        return provider
