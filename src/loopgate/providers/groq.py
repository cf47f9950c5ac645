"""groq: the OpenAI Chat Completions API at ``LOOPGATE_GROQ_BASE_URL``.

The v4 ProviderApiKeys object has no ``groq`` member, so the key comes only from ``LOOPGATE_GROQ_API_KEY``.
"""

from loopgate.config import Settings
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.openai_chat import OpenAIChatAdapter
from loopgate.providers.retry import RetryPolicy


def build(settings: Settings, http: UpstreamHTTP) -> OpenAIChatAdapter:
    return OpenAIChatAdapter(
        name="groq",
        display_name="Groq",
        key_field=None,  # the missing-key message then says the server variable is the only way
        key_variable="LOOPGATE_GROQ_API_KEY",
        base_url=settings.groq_base_url,
        default_api_key=settings.groq_api_key,
        http=http,
        retry=RetryPolicy.from_settings(settings),
    )
