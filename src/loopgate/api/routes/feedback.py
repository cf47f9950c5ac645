"""v4 routes: feedback (``POST /feedback``, one FeedbackRequest or a list; the answer mirrors it)."""

from fastapi import APIRouter, Request
from starlette.responses import Response

from loopgate.api.auth import Organization
from loopgate.api.responses import JSONBytes
from loopgate.api.routes.logs import one_or_many
from loopgate.api.routing import V4Route
from loopgate.schemas.feedback import FeedbackRequest
from loopgate.service.feedback import FeedbackService
from loopgate.store.feedback import FeedbackStore

router = APIRouter(route_class=V4Route)


@router.post("/feedback", response_class=JSONBytes)
async def submit_feedback(request: Request, org_id: Organization) -> Response:
    """Body: one FeedbackRequest or a list of them."""
    items, batch = await one_or_many(request, FeedbackRequest)
    service = FeedbackService(FeedbackStore(request.app.state.store.engine))
    recorded = await service.submit(org_id, items, batch=batch) if items else []
    return JSONBytes(recorded if batch else recorded[0])
