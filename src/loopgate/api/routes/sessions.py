"""v4 routes: sessions (``GET|POST /sessions``, ``GET /sessions/{id}``)."""

from fastapi import APIRouter, Request
from starlette.responses import Response

from loopgate.api.auth import Organization
from loopgate.api.paging import PageFromOne, PageSize
from loopgate.api.responses import JSONBytes
from loopgate.api.routing import V4Route
from loopgate.service.sessions import SessionService

router = APIRouter(route_class=V4Route)


def _service(request: Request) -> SessionService:
    return SessionService(request.app.state.store)


@router.get("/sessions", response_class=JSONBytes)
async def list_sessions(
    request: Request,
    org_id: Organization,
    project_id: str,
    page: PageFromOne = 1,
    size: PageSize = 10,
) -> Response:
    """Sessions holding at least one log of the project, newest first."""
    return JSONBytes(await _service(request).page(org_id, project_id, page=page, size=size))


@router.post("/sessions", response_class=JSONBytes, status_code=201)
async def create_session(request: Request, org_id: Organization) -> Response:
    return JSONBytes(await _service(request).create(org_id), status_code=201)


@router.get("/sessions/{id}", response_class=JSONBytes)
async def get_session(request: Request, org_id: Organization, id: str) -> Response:
    """SessionResponse plus ``datapoints``: the session's logs (LogResponse), oldest first."""
    return JSONBytes(await _service(request).get(org_id, id))
