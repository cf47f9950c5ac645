"""``X-API-KEY`` -> organization id: the check every /v4 route and the log browser's sign-in apply.

Kept free of FastAPI (``api/auth.py`` wraps it in a dependency) because the fast lane checks keys before
FastAPI is imported.
"""

from loopgate.errors import AuthenticationError
from loopgate.store.repository import Store


async def authenticate(store: Store, x_api_key: str | None) -> str:
    """The organization of a key; a ``Bearer `` prefix (the SDK's api_key_prefix option) is tolerated."""
    if not x_api_key:
        raise AuthenticationError("Missing X-API-KEY header: create a key with `loopgate keys create`")
    key = x_api_key.removeprefix("Bearer ").strip()
    org_id = await store.organization_for_key(key)
    if org_id is None:
        raise AuthenticationError("Invalid API key")
    return org_id
