"""Anthropic: the Messages API at ``LOOPGATE_ANTHROPIC_BASE_URL``."""

from loopgate.config import Settings
from loopgate.providers.anthropic_messages import AnthropicMessagesAdapter
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.retry import RetryPolicy


def build(settings: Settings, http: UpstreamHTTP) -> AnthropicMessagesAdapter:
    return AnthropicMessagesAdapter(
        name="anthropic",
        display_name="Anthropic",
        key_field="anthropic",
        key_variable="LOOPGATE_ANTHROPIC_API_KEY",
        base_url=settings.anthropic_base_url,
        default_api_key=settings.anthropic_api_key,
        http=http,
        retry=RetryPolicy.from_settings(settings),
    )
