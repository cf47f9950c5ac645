"""Credentials kept out of provider errors.

An upstream may repeat what it was sent in its error: a proxy or a self-hosted server that quotes the
``Authorization`` header it refused, an API that names the key it rejected. Provider errors are answered
to the client and stored as the log's error, so a request's key would be stored after all, and a server
key (``LOOPGATE_*_API_KEY``, ``LOOPGATE_UPSTREAMS``) handed to anyone holding a loopgate key. Every provider
is wrapped in ``Redacting``: an error it raises has each credential of the call, the request's and the
server's, replaced by ``[redacted]`` in its message and in the upstream's body.
"""

from collections.abc import AsyncGenerator, Iterable
from typing import Any

from loopgate.config import Settings
from loopgate.errors import ProviderError, UpstreamStatusError
from loopgate.providers.base import GenerationCall, InFront, Provider, ProviderResult, StreamEvent

REDACTED = "[redacted]"
# Shorter values are not looked for: no real key is this short, and replacing a common word would garble
# the message for nothing.
_MIN_LENGTH = 8


def secrets_of(values: Iterable[str | None]) -> tuple[str, ...]:
    """The strings to look for: each value, and each part of a ``:``-joined one (bedrock's
    ``ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]``), longest first so that no part is replaced before
    the whole."""
    found: set[str] = set()
    for value in values:
        if value:
            found.update(part for part in (value, *value.split(":")) if len(part) >= _MIN_LENGTH)
    return tuple(sorted(found, key=len, reverse=True))


def server_secrets(settings: Settings) -> tuple[str, ...]:
    """Every provider credential the server holds."""
    return secrets_of(
        [
            settings.openai_api_key,
            settings.groq_api_key,
            settings.google_api_key,
            settings.cohere_api_key,
            settings.anthropic_api_key,
            settings.openai_azure_api_key,
            settings.replicate_api_key,
            settings.bedrock_access_key_id,
            settings.bedrock_secret_access_key,
            settings.bedrock_session_token,
            *(upstream.api_key for upstream in settings.upstreams.values()),
        ]
    )


def scrub(error: ProviderError, secrets: tuple[str, ...]) -> ProviderError:
    """``error`` with the secrets replaced in its message and the upstream body it carries (in place)."""
    error.message = _text(error.message, secrets)
    error.args = (error.message,)
    if isinstance(error, UpstreamStatusError):
        error.upstream_body = _walk(error.upstream_body, secrets)
    return error


def _text(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _walk(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return _text(value, secrets)
    if isinstance(value, dict):
        return {_walk(key, secrets): _walk(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_walk(item, secrets) for item in value]
    return value


class Redacting(InFront):
    """A provider whose errors never carry the call's credentials (see the module's docstring)."""

    def __init__(self, provider: Provider, secrets: tuple[str, ...]) -> None:
        super().__init__(provider)
        self._provider = provider
        self._secrets = secrets

    def _of(self, call: GenerationCall) -> tuple[str, ...]:
        if not call.api_key:
            return self._secrets
        return tuple(sorted({*self._secrets, *secrets_of([call.api_key])}, key=len, reverse=True))

    async def generate(self, call: GenerationCall) -> ProviderResult:
        try:
            return await self._provider.generate(call)
        except ProviderError as error:
            scrub(error, self._of(call))
            raise

    async def stream(self, call: GenerationCall) -> AsyncGenerator[StreamEvent, None]:
        events = self._provider.stream(call)
        try:
            async for event in events:
                yield event
        except ProviderError as error:
            scrub(error, self._of(call))
            raise
        finally:
            await events.aclose()
