"""The ``X-API-KEY`` dependency of the FastAPI routes (the check itself is ``api/keys.py``)."""

from typing import Annotated

from fastapi import Depends, Header, Request

from loopgate.api.keys import authenticate


async def organization(
    request: Request, x_api_key: Annotated[str | None, Header(alias="X-API-KEY")] = None
) -> str:
    return await authenticate(request.app.state.store, x_api_key)


Organization = Annotated[str, Depends(organization)]
