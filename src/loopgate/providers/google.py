"""Google: the Gemini API at ``LOOPGATE_GOOGLE_BASE_URL``, key in the ``x-goog-api-key`` header.

The v4 ProviderApiKeys object has no ``google`` member, so the key comes only from
``LOOPGATE_GOOGLE_API_KEY``.
"""

from loopgate.config import Settings
from loopgate.providers.gemini import GeminiAdapter
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.retry import RetryPolicy


def build(settings: Settings, http: UpstreamHTTP) -> GeminiAdapter:
    return GeminiAdapter(
        name="google",
        display_name="Google",
        key_variable="LOOPGATE_GOOGLE_API_KEY",
        base_url=settings.google_base_url,
        default_api_key=settings.google_api_key,
        http=http,
        retry=RetryPolicy.from_settings(settings),
    )
