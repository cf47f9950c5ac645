"""groq: the OpenAI Chat Completions API at ``LOOPGATE_GROQ_BASE_URL``.

The v4 ProviderApiKeys object has no ``groq`` member, so the key comes only from ``LOOPGATE_GROQ_API_KEY``.
"""

from loopgate.config import Settings
from loopgate.errors import ProviderKeyMissing
from loopgate.providers.base import GenerationCall
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.openai_chat import OpenAIChatAdapter
from loopgate.providers.retry import RetryPolicy

KEY_VARIABLE = "LOOPGATE_GROQ_API_KEY"


class GroqAdapter(OpenAIChatAdapter):
    def _headers(self, call: GenerationCall) -> dict[str, str]:
        if not (call.api_key or self._default_api_key):
            raise ProviderKeyMissing(
                f"No API key for provider 'groq': the v4 request has no provider_api_keys.groq, "
                f"so set {KEY_VARIABLE} on the server (then restart `loopgate serve`).",
                origin=self.display_name,
            )
        return super()._headers(call)


def build(settings: Settings, http: UpstreamHTTP) -> OpenAIChatAdapter:
    return GroqAdapter(
        name="groq",
        display_name="Groq",
        key_field=None,
        key_variable=KEY_VARIABLE,
        base_url=settings.groq_base_url,
        default_api_key=settings.groq_api_key,
        http=http,
        retry=RetryPolicy.from_settings(settings),
    )
