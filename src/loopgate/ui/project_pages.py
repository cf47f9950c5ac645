"""Projects: the list, and each project's log table and sessions."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from loopgate.errors import NotFoundError
from loopgate.service import feedback_types
from loopgate.service.log_views import log_response
from loopgate.service.projects import ProjectService
from loopgate.service.sessions import SessionService
from loopgate.store.logs import LogFilter, LogSort
from loopgate.store.model_configs import ConfigStore
from loopgate.store.projects import ProjectRow, ProjectStore
from loopgate.ui import queries, views
from loopgate.ui.render import page
from loopgate.ui.routing import PageRoute, page_links, see_other, with_query
from loopgate.ui.session import SignedIn

router = APIRouter(route_class=PageRoute)

PAGE_SIZE = 50
_MAX_PAGE = 100_000
# sort parameter -> (LogSort column, descending); the first is the default: newest first.
SORTS = {
    "newest": ("timestamp", True),
    "oldest": ("timestamp", False),
    "model": ("model", False),
    "model-desc": ("model", True),
}
PageNumber = Annotated[int, Query(alias="page", ge=1, le=_MAX_PAGE)]


def projects_service(request: Request) -> ProjectService:
    service: ProjectService = request.app.state.projects
    return service


@dataclass(frozen=True, slots=True)
class ProjectSummary:
    """A project as the pages show it. Built from the stores rather than ProjectService.get, whose
    active config carries a usage count: an aggregate over every log of that config, which a header
    shown on every page cannot afford on a million logs."""

    id: str
    name: str
    data_count: int
    feedback_types: list[dict[str, Any]]  # the project's own (custom) types
    deployments: list[dict[str, Any]]  # EnvironmentProjectConfigResponse per environment
    versions: dict[str, int]  # config id -> version number


async def summaries(request: Request, org_id: str, projects: list[ProjectRow]) -> list[ProjectSummary]:
    engine = request.app.state.store.engine
    ids = [project.id for project in projects]
    counts = await ProjectStore(engine).log_counts(ids)
    versions = await queries.version_numbers(engine, ids)
    deployments = projects_service(request).deployments
    return [
        ProjectSummary(
            id=project.id,
            name=project.name,
            data_count=counts.get(project.id, 0),
            feedback_types=project.feedback_types,
            deployments=await deployments.deployed_configs(org_id, project.id),
            versions=versions,
        )
        for project in projects
    ]


async def project_context(request: Request, viewer: SignedIn, project_id: str, tab: str) -> dict[str, Any]:
    """What every project page's header shows (404 for a project of another organization)."""
    row = await ProjectStore(request.app.state.store.engine).get(viewer.org_id, project_id)
    if row is None:
        raise NotFoundError(f"Project '{project_id}' not found")
    (project,) = await summaries(request, viewer.org_id, [row])
    return {
        "viewer": viewer,
        "project": project,
        "tab": tab,
        "crumbs": [("Projects", "/ui/projects"), (project.name, f"/ui/projects/{project_id}/logs")],
    }


@router.get("/ui/projects")
async def project_list(
    request: Request, viewer: SignedIn, q: str = "", page_number: PageNumber = 1
) -> Response:
    engine = request.app.state.store.engine
    rows, total = await ProjectStore(engine).page(
        viewer.org_id,
        name_filter=q or None,
        sort_by="name",
        descending=False,
        page=page_number - 1,
        size=PAGE_SIZE,
    )
    projects = await summaries(request, viewer.org_id, rows)
    return page(
        "projects.html",
        title="Projects",
        viewer=viewer,
        crumbs=[("Projects", "/ui/projects")],
        projects=projects,
        activity=await queries.last_activity(engine, [row.id for row in rows]),
        q=q,
        total=total,
        **page_links(
            request, page_number, has_next=page_number * PAGE_SIZE < total, size=PAGE_SIZE, total=total
        ),
    )


@router.get("/ui/projects/{project_id}")
async def project_home(viewer: SignedIn, project_id: str) -> RedirectResponse:
    return see_other(f"/ui/projects/{project_id}/logs")


def _day(value: str, *, end: bool) -> datetime | None:
    """A ``YYYY-MM-DD`` from a date input, as a UTC bound (an end date covers its whole day)."""
    if not value:
        return None
    try:
        moment = datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
    except ValueError:
        return None
    return moment + timedelta(days=1) if end else moment


@dataclass(frozen=True, slots=True)
class LogQuery:
    """The log table's query string, as the filter form sends it."""

    q: str = ""
    model: str = ""
    config: str = ""
    feedback: str = ""  # "<type>:<label>"
    start: str = ""
    end: str = ""
    session: str = ""
    sort: str = "newest"
    evaluation: str = ""  # "<evaluator id>:<value>"

    def filter(self, project_id: str) -> queries.BrowserFilter:
        logs = LogFilter(
            project_id=project_id,
            search=self.q.strip() or None,
            start=_day(self.start, end=False),
            end=_day(self.end, end=True),
            models=[self.model] if self.model else [],
            feedback=_pair(self.feedback),
            evaluators=_pair(self.evaluation),
        )
        return queries.BrowserFilter(logs, config_id=self.config or None, session_id=self.session or None)

    def log_sort(self) -> LogSort:
        column, descending = SORTS.get(self.sort, SORTS["newest"])
        return LogSort(column, descending)

    @property
    def narrowed(self) -> bool:
        fields = (self.q, self.model, self.config, self.feedback, self.start, self.end, self.session)
        return any((*fields, self.evaluation))


_LIST_KEYS = ("q", "model", "config", "feedback", "start", "end", "session", "sort", "evaluation", "page")
_MAX_LIST_VALUE = 500


def list_state(raw: str) -> str:
    """The log table's query string as a log page carries it (``/ui/logs/{id}?list=...``) to link back to
    the same filtered page: only the table's own parameters, each once and of bounded length, re-encoded.
    It is never a path: the link back is always ``/ui/projects/<the log's project>/logs?<this>``, so a
    crafted value can change the filters shown and nothing else."""
    if len(raw) > 8 * _MAX_LIST_VALUE:
        return ""
    params = parse_qs(raw)
    kept = {}
    for key in _LIST_KEYS:
        value = (params.get(key) or [""])[0]
        if not value or len(value) > _MAX_LIST_VALUE:
            continue
        if key == "page" and not (value.isdigit() and 1 < int(value) <= _MAX_PAGE):
            continue
        kept[key] = value
    return urlencode(kept)


def _pair(chosen: str) -> dict[str, list[str]]:
    """A ``<name>:<value>`` choice of the form as the LogFilter's {name: [value]}."""
    if ":" not in chosen:
        return {}
    name, value = chosen.split(":", 1)
    return {name: [value]}


def feedback_choices(custom: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(value, label) of every labelled feedback type of a project, for the filter's select."""
    choices = []
    for definition in feedback_types.effective(custom):
        for label in definition.get("values") or []:
            choices.append(
                (f"{definition['type']}:{label['value']}", f"{definition['type']}: {label['value']}")
            )
    return choices


async def evaluation_choices(request: Request, org_id: str) -> list[tuple[str, str]]:
    """(value, label) of each verdict of the organization's boolean evaluators, for the filter's select:
    the logs a judge passed or failed."""
    judges = await request.app.state.evaluators.names(org_id, return_type="boolean")
    return [
        (f"{evaluator_id}:{verdict}", f"{name}: {verdict}")
        for evaluator_id, name in judges.items()
        for verdict in ("true", "false")
    ]


def latest_feedback(log: dict[str, Any]) -> dict[str, Any]:
    """type -> the latest value (the log's feedback is oldest first)."""
    latest: dict[str, Any] = {}
    for item in log["feedback"]:
        latest[item["type"]] = item["value"]
    return latest


@router.get("/ui/projects/{project_id}/logs")
async def log_table(
    request: Request,
    viewer: SignedIn,
    project_id: str,
    q: str = "",
    model: str = "",
    config: str = "",
    feedback: str = "",
    start: str = "",
    end: str = "",
    session: str = "",
    sort: str = "newest",
    evaluation: str = "",
    page_number: PageNumber = 1,
) -> Response:
    context = await project_context(request, viewer, project_id, "logs")
    query = LogQuery(q, model, config, feedback, start, end, session, sort, evaluation)
    store = request.app.state.store
    rows, has_next = await queries.BrowserLogStore(store.engine).window(
        viewer.org_id,
        query.filter(project_id),
        query.log_sort(),
        offset=(page_number - 1) * PAGE_SIZE,
        size=PAGE_SIZE,
    )
    logs = [log_response(row) for row in rows]
    configs = await ConfigStore(store.engine).for_project(project_id)
    back = list_state(request.url.query)
    # Without filters the project's tally says where the last page is; with them nothing is counted.
    total = None if query.narrowed else context["project"].data_count
    return page(
        "logs.html",
        title=f"{context['project'].name} · Logs",
        **context,
        logs=logs,
        latest_feedback=latest_feedback,
        tool_names=views.tool_names,
        input_excerpt=input_excerpt,
        versions=context["project"].versions,
        configs=configs,
        models=sorted({str(row.body["model"]) for row in configs if row.body.get("model")}),
        feedback_choices=feedback_choices(context["project"].feedback_types),
        evaluation_choices=await evaluation_choices(request, viewer.org_id),
        query=query,
        sorts=SORTS,
        first_row=(page_number - 1) * PAGE_SIZE + 1,
        **page_links(request, page_number, has_next=has_next, size=PAGE_SIZE, total=total),
        link=lambda **changes: with_query(request, page=None, **changes),
        log_url=lambda log_id: f"/ui/logs/{log_id}" + (f"?{urlencode({'list': back})}" if back else ""),
    )


def input_excerpt(log: dict[str, Any]) -> str:
    """The last user message, else the inputs: what a reader scans the table for."""
    for message in reversed(log.get("messages") or []):
        if message.get("role") == "user":
            return views.message_view(message).text
    return " ".join(f"{key}={value}" for key, value in (log.get("inputs") or {}).items())


@router.get("/ui/projects/{project_id}/sessions")
async def session_list(
    request: Request, viewer: SignedIn, project_id: str, page_number: PageNumber = 1
) -> Response:
    context = await project_context(request, viewer, project_id, "sessions")
    service = SessionService(request.app.state.store)
    result = await service.page(viewer.org_id, project_id, page=page_number, size=PAGE_SIZE)
    return page(
        "sessions.html",
        title=f"{context['project'].name} · Sessions",
        **context,
        sessions=result["records"],
        total=result["total"],
        **page_links(
            request,
            page_number,
            has_next=page_number * PAGE_SIZE < result["total"],
            size=PAGE_SIZE,
            total=result["total"],
        ),
    )
