"""One log (its conversation, payloads and feedback form) and one session (its tree of logs)."""

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from loopgate.schemas.feedback import FeedbackRequest
from loopgate.service import feedback_types
from loopgate.service.feedback import FeedbackService
from loopgate.service.logs import LogService
from loopgate.service.sessions import SessionService
from loopgate.store.feedback import FeedbackStore
from loopgate.store.projects import ProjectStore
from loopgate.ui import queries, views
from loopgate.ui.project_pages import latest_feedback, list_state, project_context
from loopgate.ui.render import page
from loopgate.ui.routing import PageRoute, first, read_form, see_other
from loopgate.ui.session import SignedIn, check_form

router = APIRouter(route_class=PageRoute)

NOTICES = {
    "saved": "Feedback saved.",
    "empty": "Nothing to save: choose a rating, a label or write a comment first.",
    "unchanged": "Nothing to save: every value is the one already recorded.",
}
# The log table's filters, carried from the list to a log and back (see project_pages.list_state).
ListState = Annotated[str, Query(alias="list")]


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


def _values(value: Any) -> list[str]:
    """A feedback value as the form's controls hold it: the labels chosen, or the one text."""
    if value is None:
        return []
    return [str(item).strip() for item in value] if isinstance(value, list) else [str(value).strip()]


def _log_url(log_id: str, back: str, **params: str) -> str:
    query = urlencode({**params, **({"list": back} if back else {})})
    return f"/ui/logs/{log_id}" + (f"?{query}" if query else "")


@router.get("/ui/logs/{log_id}")
async def log_detail(
    request: Request, viewer: SignedIn, log_id: str, notice: str = "", back: ListState = ""
) -> Response:
    log = await LogService(request.app.state.store).get(viewer.org_id, log_id)
    context = await project_context(request, viewer, log["project_id"], "logs")
    state = list_state(back)
    if state:  # back to the filtered page of the table the log was opened from
        name, url = context["crumbs"][-1]
        context["crumbs"][-1] = (name, f"{url}?{state}")
    context["crumbs"].append((f"Log {log_id}", _log_url(log_id, state)))
    project = context["project"]
    latest = latest_feedback(log)
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
        latest=latest,
        current={type_: _values(value) for type_, value in latest.items()},
        fields=feedback_fields(project.feedback_types),
        notice=NOTICES.get(notice),
        list_state=state,
    )


def _feedback_requests(
    fields: list[FeedbackField], form: dict[str, list[str]], log: dict[str, Any], user: str | None
) -> tuple[list[FeedbackRequest], bool]:
    """The feedback to record: one item per type whose value the form changed. The form shows every
    type's latest value, so a type left alone comes back as it was and is not recorded again; the
    comparison is made here, against what is stored now, so a stale or replayed form cannot repeat a
    value either. An empty control records nothing (the form cannot clear a value). Also says whether
    the form held any value at all."""
    latest = latest_feedback(log)
    requests, any_value = [], False
    for field in fields:
        chosen = [value.strip() for value in form.get(field.name, []) if value.strip()]
        if not chosen:
            continue
        any_value = True
        value: str | list[str] = list(dict.fromkeys(chosen)) if field.kind == "labels" else chosen[0]
        before = _values(latest.get(field.type))
        if field.type in latest and (
            set(before) == set(chosen) if field.kind == "labels" else before == [value]
        ):
            continue
        requests.append(FeedbackRequest(type=field.type, value=value, data_id=log["id"], user=user))
    return requests, any_value


@router.post("/ui/logs/{log_id}/feedback")
async def add_feedback(request: Request, viewer: SignedIn, log_id: str) -> Response:
    form = await read_form(request)
    check_form(request, viewer, form)
    log = await LogService(request.app.state.store).get(viewer.org_id, log_id)  # 404 before anything else
    fields = feedback_fields(await _custom_types(request, viewer.org_id, log["project_id"]))
    items, any_value = _feedback_requests(fields, form, log, viewer.key_name)
    state = list_state(first(form, "list"))
    if not items:
        notice = "unchanged" if any_value else "empty"
        return see_other(_log_url(log_id, state, notice=notice) + "#feedback")
    service = FeedbackService(FeedbackStore(request.app.state.store.engine))
    # One batch: the labels and the comment are recorded together or not at all.
    await service.submit(viewer.org_id, items, batch=True)
    return see_other(_log_url(log_id, state, notice="saved") + "#feedback")


@router.get("/ui/sessions/{session_id}")
async def session_tree(
    request: Request, viewer: SignedIn, session_id: str, log: str = "", project: str = ""
) -> Response:
    session = await SessionService(request.app.state.store).get(viewer.org_id, session_id)
    datapoints = session["datapoints"]
    project_ids = sorted({point["project_id"] for point in datapoints if point["project_id"]})
    versions = await queries.version_numbers(request.app.state.store.engine, project_ids)
    crumbs: list[tuple[str, str]] = [("Projects", "/ui/projects")]
    if session["projects"]:
        # The project the reader came from (its Sessions tab or one of its logs passes ?project=), when
        # the session has logs in it; else the first of the session's projects.
        came_from = [item for item in session["projects"] if item["id"] == project]
        shown = (came_from or session["projects"])[0]
        crumbs.append((shown["name"], f"/ui/projects/{shown['id']}/sessions"))
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
