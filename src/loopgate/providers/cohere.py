"""Cohere: the v2 Chat API at ``LOOPGATE_COHERE_BASE_URL``, key per request (``provider_api_keys.cohere``)
or from ``LOOPGATE_COHERE_API_KEY``."""

from loopgate.config import Settings
from loopgate.providers.cohere_chat import CohereChatAdapter
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.retry import RetryPolicy


def build(settings: Settings, http: UpstreamHTTP) -> CohereChatAdapter:
    return CohereChatAdapter(
        name="cohere",
        display_name="Cohere",
        key_field="cohere",
        key_variable="LOOPGATE_COHERE_API_KEY",
        base_url=settings.cohere_base_url,
        default_api_key=settings.cohere_api_key,
        http=http,
        retry=RetryPolicy.from_settings(settings),
    )
