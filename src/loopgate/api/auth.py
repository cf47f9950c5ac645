"""``X-API-KEY`` -> organization id, for every /v4 route."""

from typing import Annotated

from fastapi import Depends, Header, Request

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


async def organization(
    request: Request, x_api_key: Annotated[str | None, Header(alias="X-API-KEY")] = None
) -> str:
    return await authenticate(request.app.state.store, x_api_key)


Organization = Annotated[str, Depends(organization)]
