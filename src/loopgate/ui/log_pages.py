"""One log (its conversation, payloads and feedback form) and one session (its tree of logs)."""

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from loopgate.schemas.feedback import FeedbackRequest
from loopgate.service import feedback_types
from loopgate.service.feedback import FeedbackService
from loopgate.service.logs import LogService
from loopgate.service.sessions import SessionService
from loopgate.store.feedback import FeedbackStore
from loopgate.store.projects import ProjectStore
from loopgate.ui import queries, views
from loopgate.ui.project_pages import latest_feedback, project_context
from loopgate.ui.render import page
from loopgate.ui.routing import PageRoute, read_form, see_other
from loopgate.ui.session import SignedIn, check_form

router = APIRouter(route_class=PageRoute)

NOTICES = {
    "saved": "Feedback saved.",
    "empty": "Nothing to save: choose a rating, a label or write a comment first.",
}


@dataclass(frozen=True, slots=True)
class FeedbackField:
    """One control of the feedback form: ``choice`` (one label), ``labels`` (several) or ``text``."""

    type: str
    kind: str
    labels: list[str]

    @property
    def name(self) -> str:
        return f"fb:{self.type}"


def feedback_fields(custom: list[dict[str, Any]]) -> list[FeedbackField]:
    """The rating, the project's labelled types and the comment. Types taking any label (``issue``),
    free-text corrections and numbers are left to the API: the form stays short."""
    fields = []
    for definition in feedback_types.effective(custom):
        labels = [str(label["value"]) for label in definition.get("values") or []]
        kind = definition.get("class")
        if kind in ("select", "multi_select") and labels:
            fields.append(
                FeedbackField(definition["type"], "choice" if kind == "select" else "labels", labels)
            )
        elif kind == "text" and definition["type"] == "comment":
            fields.append(FeedbackField("comment", "text", []))
    # The comment box goes last, under every label choice, where a reader ends the form.
    return sorted(fields, key=lambda field: field.kind == "text")


async def _custom_types(request: Request, org_id: str, project_id: str) -> list[dict[str, Any]]:
    project = await ProjectStore(request.app.state.store.engine).get(org_id, project_id)
    return project.feedback_types if project else []


@router.get("/ui/logs/{log_id}")
async def log_detail(request: Request, viewer: SignedIn, log_id: str, notice: str = "") -> Response:
    log = await LogService(request.app.state.store).get(viewer.org_id, log_id)
    context = await project_context(request, viewer, log["project_id"], "logs")
    context["crumbs"].append((f"Log {log_id}", f"/ui/logs/{log_id}"))
    project = context["project"]
    # The results on the log name their evaluators by id; the page shows their names.
    names = await request.app.state.evaluators.names(viewer.org_id) if log["evaluation_results"] else {}
    return page(
        "log.html",
        title=f"Log {log_id}",
        **context,
        log=log,
        evaluator_names=names,
        version=project.versions.get(log["config_id"] or ""),
        messages=views.conversation(log),
        answer=views.output_view(log),
        latest=latest_feedback(log),
        fields=feedback_fields(project.feedback_types),
        notice=NOTICES.get(notice),
    )


def _feedback_requests(
    fields: list[FeedbackField], form: dict[str, list[str]], log_id: str, user: str | None
) -> list[FeedbackRequest]:
    requests = []
    for field in fields:
        chosen = [value.strip() for value in form.get(field.name, []) if value.strip()]
        if not chosen:
            continue
        value: str | list[str] = chosen if field.kind == "labels" else chosen[0]
        requests.append(FeedbackRequest(type=field.type, value=value, data_id=log_id, user=user))
    return requests


@router.post("/ui/logs/{log_id}/feedback")
async def add_feedback(request: Request, viewer: SignedIn, log_id: str) -> Response:
    form = await read_form(request)
    check_form(request, viewer, form)
    log = await LogService(request.app.state.store).get(viewer.org_id, log_id)  # 404 before anything else
    fields = feedback_fields(await _custom_types(request, viewer.org_id, log["project_id"]))
    items = _feedback_requests(fields, form, log_id, viewer.key_name)
    if not items:
        return see_other(f"/ui/logs/{log_id}?notice=empty#feedback")
    service = FeedbackService(FeedbackStore(request.app.state.store.engine))
    # One batch: the labels and the comment are recorded together or not at all.
    await service.submit(viewer.org_id, items, batch=True)
    return see_other(f"/ui/logs/{log_id}?notice=saved#feedback")


@router.get("/ui/sessions/{session_id}")
async def session_tree(request: Request, viewer: SignedIn, session_id: str, log: str = "") -> Response:
    session = await SessionService(request.app.state.store).get(viewer.org_id, session_id)
    datapoints = session["datapoints"]
    project_ids = sorted({point["project_id"] for point in datapoints if point["project_id"]})
    versions = await queries.version_numbers(request.app.state.store.engine, project_ids)
    crumbs: list[tuple[str, str]] = [("Projects", "/ui/projects")]
    if session["projects"]:
        first = session["projects"][0]
        crumbs.append((first["name"], f"/ui/projects/{first['id']}/sessions"))
    crumbs.append((f"Session {session_id}", f"/ui/sessions/{session_id}"))
    return page(
        "session.html",
        title=f"Session {session_id}",
        viewer=viewer,
        crumbs=crumbs,
        session=session,
        roots=views.session_tree(datapoints),
        versions=versions,
        focus=log,
        conversation=views.conversation,
        output_view=views.output_view,
        latest_feedback=latest_feedback,
    )
