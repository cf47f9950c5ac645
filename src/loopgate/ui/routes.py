"""The log browser, mounted at ``/ui`` (and ``/`` redirects there); kept out of the OpenAPI schema."""

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Match

from loopgate.errors import NotFoundError
from loopgate.ui import auth_pages, config_pages, evaluation_pages, log_pages, project_pages, session
from loopgate.ui.routing import PageRoute

_PAGES = (auth_pages, project_pages, log_pages, config_pages, evaluation_pages)
router = APIRouter(include_in_schema=False)
for pages in _PAGES:
    router.include_router(pages.router)

_fallback = APIRouter(route_class=PageRoute)
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


def _best_match(request: Request, path: str) -> Match:
    """How well a page of the browser matches ``path`` with this request's method: FULL, PARTIAL (the
    address exists for another method) or NONE. Every /ui route is declared in one of ``_PAGES``."""
    scope = {**request.scope, "path": path}
    best = Match.NONE
    for route in (route for pages in _PAGES for route in pages.router.routes):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return match
        if match is Match.PARTIAL:
            best = match
    return best


@_fallback.api_route("/ui/{rest:path}", methods=_METHODS)
async def unknown_page(request: Request, rest: str) -> Response:
    """Any other address under /ui: the browser's own "Not found" page, not the API's JSON. Registered
    after every page (routes match in order); /v4 and /v1 keep their JSON errors."""
    path = request.url.path
    if path.endswith("/") and _best_match(request, path.rstrip("/")) is Match.FULL:
        # What Starlette's redirect_slashes did before this route caught every /ui address.
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(path.rstrip("/") + query, status_code=307)
    await session.optional_viewer(request)
    if _best_match(request, path) is Match.PARTIAL:
        raise HTTPException(status_code=405, detail=f"This address does not take a {request.method}.")
    raise NotFoundError("There is no page at this address.")


router.include_router(_fallback)
