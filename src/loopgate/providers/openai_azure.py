"""Azure OpenAI: the OpenAI Chat Completions wire format at
``POST {endpoint}/openai/deployments/{model}/chat/completions?api-version=V``, key in the ``api-key`` header.

The model config's ``model`` is the deployment name. The key comes from ``provider_api_keys.openai_azure``
else ``LOOPGATE_OPENAI_AZURE_API_KEY``; the endpoint from ``provider_api_keys.openai_azure_endpoint`` else
``LOOPGATE_OPENAI_AZURE_ENDPOINT``. A request's endpoint counts only when the request brings its own key
too, so the server's key is never sent to an endpoint a client chose; with
``LOOPGATE_OPENAI_AZURE_ENDPOINT_HOSTS`` set, a request's endpoint must name one of those hosts.
"""

from fnmatch import fnmatchcase
from urllib.parse import quote, urlsplit

from loopgate.config import Settings
from loopgate.errors import ProviderKeyMissing, RequestInvalid
from loopgate.providers.base import GenerationCall
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.openai_chat import OpenAIChatAdapter
from loopgate.providers.retry import RetryPolicy

KEY_VARIABLE = "LOOPGATE_OPENAI_AZURE_API_KEY"
ENDPOINT_VARIABLE = "LOOPGATE_OPENAI_AZURE_ENDPOINT"


class AzureOpenAIAdapter(OpenAIChatAdapter):
    endpoint_field = "openai_azure_endpoint"

    def __init__(
        self,
        *,
        endpoint: str | None,
        api_version: str,
        http: UpstreamHTTP,
        retry: RetryPolicy,
        api_key: str | None,
        endpoint_hosts: tuple[str, ...] = (),
    ) -> None:
        super().__init__(
            name="openai_azure",
            display_name="Azure OpenAI",
            key_field="openai_azure",
            key_variable=KEY_VARIABLE,
            base_url=endpoint or "",
            default_api_key=api_key,
            http=http,
            retry=retry,
        )
        self._endpoint = endpoint
        self._api_version = api_version
        self._endpoint_hosts = endpoint_hosts

    def _target(self, call: GenerationCall) -> tuple[str, dict[str, str]]:
        key: str | None = call.api_key or self._default_api_key
        requested = call.api_endpoint if call.api_key else None
        if requested:
            self._check_host(requested)
        endpoint = requested or self._endpoint
        if not key or not endpoint:
            missing = " and ".join(
                what
                for what, found in (
                    (f"a key (provider_api_keys.openai_azure or {KEY_VARIABLE})", key),
                    (
                        f"an endpoint (provider_api_keys.openai_azure_endpoint or {ENDPOINT_VARIABLE})",
                        endpoint,
                    ),
                )
                if not found
            )
            raise ProviderKeyMissing(
                f"Provider 'openai_azure' needs {missing}: pass them in the request's provider_api_keys, "
                f"or set the variables on the server (then restart `loopgate serve`).",
                origin=self.display_name,
                provider="openai_azure",
                variable="" if key else KEY_VARIABLE,
                server_only=() if endpoint else (ENDPOINT_VARIABLE,),
            )
        url = (
            f"{endpoint.rstrip('/')}/openai/deployments/{quote(call.model, safe='')}/chat/completions"
            f"?api-version={quote(self._api_version, safe='')}"
        )
        return url, {"api-key": key, "Content-Type": "application/json"}

    def _check_host(self, endpoint: str) -> None:
        """A request's endpoint is an http(s) URL, on one of the allowed hosts when the server names some."""
        try:
            parts = urlsplit(endpoint)
            scheme, host = parts.scheme, (parts.hostname or "").lower()
        except ValueError:
            scheme, host = "", ""
        if scheme not in ("http", "https") or not host:
            raise RequestInvalid(_ENDPOINT_LOC, "The Azure endpoint must be an http:// or https:// URL")
        if self._endpoint_hosts and not any(fnmatchcase(host, allowed) for allowed in self._endpoint_hosts):
            allowed = ", ".join(self._endpoint_hosts)
            raise RequestInvalid(_ENDPOINT_LOC, f"This server calls Azure endpoints on {allowed} only")


_ENDPOINT_LOC: list[str | int] = ["body", "provider_api_keys", "openai_azure_endpoint"]


def build(settings: Settings, http: UpstreamHTTP) -> OpenAIChatAdapter:
    return AzureOpenAIAdapter(
        endpoint=settings.openai_azure_endpoint,
        api_version=settings.openai_azure_api_version,
        api_key=settings.openai_azure_api_key,
        endpoint_hosts=tuple(
            host.strip().lower() for host in settings.openai_azure_endpoint_hosts.split(",") if host.strip()
        ),
        http=http,
        retry=RetryPolicy.from_settings(settings),
    )
