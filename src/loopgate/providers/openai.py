"""OpenAI, or any server that speaks its Chat Completions API at ``LOOPGATE_OPENAI_BASE_URL``."""

from loopgate.config import Settings
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.openai_chat import OpenAIChatAdapter
from loopgate.providers.retry import RetryPolicy


def build(settings: Settings, http: UpstreamHTTP) -> OpenAIChatAdapter:
    return OpenAIChatAdapter(
        name="openai",
        display_name="OpenAI",
        key_field="openai",
        key_variable="LOOPGATE_OPENAI_API_KEY",
        base_url=settings.openai_base_url,
        default_api_key=settings.openai_api_key,
        http=http,
        retry=RetryPolicy.from_settings(settings),
    )
