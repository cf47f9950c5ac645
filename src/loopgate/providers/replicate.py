"""Replicate: the predictions API at ``LOOPGATE_REPLICATE_BASE_URL`` for text models.

The v4 ProviderApiKeys object has no ``replicate`` member, so the key comes only from
``LOOPGATE_REPLICATE_API_KEY``.
"""

from loopgate.config import Settings
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.replicate_predictions import ReplicatePredictionsAdapter
from loopgate.providers.retry import RetryPolicy


def build(settings: Settings, http: UpstreamHTTP) -> ReplicatePredictionsAdapter:
    return ReplicatePredictionsAdapter(
        name="replicate",
        display_name="Replicate",
        key_variable="LOOPGATE_REPLICATE_API_KEY",
        base_url=settings.replicate_base_url,
        default_api_key=settings.replicate_api_key,
        http=http,
        retry=RetryPolicy.from_settings(settings),
        poll_interval=settings.replicate_poll_interval,
        max_wait=settings.timeouts("replicate")[1],
    )
