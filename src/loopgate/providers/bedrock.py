"""Amazon Bedrock: the Converse API in ``LOOPGATE_BEDROCK_REGION`` (or at ``LOOPGATE_BEDROCK_BASE_URL``),
signed with AWS SigV4. Credentials per request (``provider_api_keys.bedrock`` as
``ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]``) or from ``LOOPGATE_BEDROCK_ACCESS_KEY_ID`` /
``LOOPGATE_BEDROCK_SECRET_ACCESS_KEY`` / ``LOOPGATE_BEDROCK_SESSION_TOKEN``."""

from loopgate.config import Settings
from loopgate.providers.bedrock_converse import AwsCredentials, BedrockConverseAdapter
from loopgate.providers.http import UpstreamHTTP
from loopgate.providers.retry import RetryPolicy


def build(settings: Settings, http: UpstreamHTTP) -> BedrockConverseAdapter:
    credentials = None
    if settings.bedrock_access_key_id and settings.bedrock_secret_access_key:
        credentials = AwsCredentials(
            settings.bedrock_access_key_id, settings.bedrock_secret_access_key, settings.bedrock_session_token
        )
    return BedrockConverseAdapter(
        name="bedrock",
        display_name="Bedrock",
        key_field="bedrock",
        region=settings.bedrock_region,
        base_url=settings.bedrock_base_url,
        default_credentials=credentials,
        http=http,
        retry=RetryPolicy.from_settings(settings),
    )
