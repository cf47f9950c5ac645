"""v4 routes: logs (``/logs``, ``/logs/{id}``) and the project export (``POST /projects/{id}/export``).

``GET /logs`` also takes the filters and sorts the spec describes in prose only (the SDK never sends
them): ``sort=<timestamp|source|model|feedback-NAME>.<asc|desc>`` (repeatable), ``source_filter``,
``model_filter``, ``feedback-NAME_filter`` and ``evaluator-ID_filter`` (each repeatable = any of; a log
matches an evaluator's filter when one of its results by that evaluator, in any evaluation, is one of the
values: ``true``/``false``, a number, a label, or one of a ``multi_select`` result's labels).
"""

from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, TypeVar

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.responses import Response

from loopgate.api.auth import Organization
from loopgate.api.paging import PageFromZero, PageSize, sort_keys
from loopgate.api.responses import JSONBytes
from loopgate.api.routing import V4Route
from loopgate.errors import RequestInvalid
from loopgate.schemas.logs import LogRequest, UpdateLogRequest
from loopgate.service.logs import LogService
from loopgate.store.logs import LogFilter, LogSort, utc

router = APIRouter(route_class=V4Route)

M = TypeVar("M", bound=BaseModel)
_SORTABLE = ("timestamp", "source", "model")


class VersionStatus(StrEnum):
    UNCOMMITTED = "uncommitted"
    COMMITTED = "committed"
    DELETED = "deleted"


async def one_or_many(request: Request, model: type[M]) -> tuple[list[M], bool]:
    """A body that is one object or a list of them (POST /logs, POST /feedback): the items, and whether it
    was a list. Parsed by hand so a 422 points at ``["body", index, field]``, not at a union branch."""
    try:
        document = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise RequestValidationError(
            [{"loc": ("body",), "msg": "Request body is not valid JSON", "type": "json_invalid"}]
        ) from None
    try:
        if isinstance(document, list):
            return TypeAdapter(list[model]).validate_python(document), True  # type: ignore[valid-type]
        return [model.model_validate(document)], False
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None


def _service(request: Request) -> LogService:
    return LogService(request.app.state.store)


def _moment(name: str, value: str | None, *, end: bool) -> datetime | None:
    """``YYYY-MM-DD`` or an ISO datetime. A date-only end covers its whole day; ends are returned
    exclusive, so a datetime end is moved one microsecond on (inclusive, as given)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if "T" in text and " " in text:
        text = text.replace(" ", "+")  # an unescaped "+02:00" offset arrives as " 02:00"
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time(), tzinfo=UTC)
            return moment + timedelta(days=1) if end else moment
        moment = utc(datetime.fromisoformat(text))
    except ValueError:
        raise RequestInvalid(
            ["query", name], f"{name} must be YYYY-MM-DD or an ISO 8601 datetime, not {value!r}"
        ) from None
    return moment + timedelta(microseconds=1) if end else moment


def _sorts(values: list[str]) -> list[LogSort]:
    return [
        LogSort(column, descending) for column, descending in sort_keys(values, _SORTABLE, "feedback-<type>")
    ]


def _named_filters(request: Request, prefix: str) -> dict[str, list[str]]:
    """``<prefix>NAME_filter`` query params: NAME -> the values given for it."""
    filters: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        if key.startswith(prefix) and key.endswith("_filter"):
            filters.setdefault(key.removeprefix(prefix).removesuffix("_filter"), []).append(value)
    return filters


@router.get("/logs", response_class=JSONBytes)
async def list_logs(
    request: Request,
    org_id: Organization,
    project_id: str,
    search: str | None = None,
    metadata_search: str | None = None,
    version_status: VersionStatus | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    size: PageSize = 50,
    page: PageFromZero = 0,
    sort: Annotated[list[str] | None, Query()] = None,
    source_filter: Annotated[list[str] | None, Query()] = None,
    model_filter: Annotated[list[str] | None, Query()] = None,
) -> Response:
    where = LogFilter(
        project_id=project_id,
        version_status=version_status.value if version_status else None,
        search=search or None,
        metadata_search=metadata_search or None,
        start=_moment("start_date", start_date, end=False),
        end=_moment("end_date", end_date, end=True),
        sources=source_filter or [],
        models=model_filter or [],
        feedback=_named_filters(request, "feedback-"),
        evaluators=_named_filters(request, "evaluator-"),
    )
    result = await _service(request).page(org_id, where, _sorts(sort or []), page=page, size=size)
    return JSONBytes(result)


@router.post("/logs", response_class=JSONBytes)
async def create_logs(request: Request, org_id: Organization) -> Response:
    """Body: one LogRequest or a list of them; the answer mirrors it (CreateLogResponse or a list)."""
    items, batch = await one_or_many(request, LogRequest)
    created = await _service(request).create(org_id, items, batch=batch) if items else []
    return JSONBytes(created if batch else created[0])


@router.patch("/logs", response_class=JSONBytes)
async def update_log_by_reference(
    request: Request, org_id: Organization, reference_id: str, body: UpdateLogRequest
) -> Response:
    return JSONBytes(await _service(request).update(org_id, body, reference_id=reference_id))


@router.delete("/logs", status_code=204)
async def delete_logs(
    request: Request, org_id: Organization, id: Annotated[list[str] | None, Query()] = None
) -> Response:
    if id:
        await _service(request).delete(org_id, id)
    return Response(status_code=204)


@router.get("/logs/{id}", response_class=JSONBytes)
async def get_log(request: Request, org_id: Organization, id: str) -> Response:
    return JSONBytes(await _service(request).get(org_id, id))


@router.patch("/logs/{id}", response_class=JSONBytes)
async def update_log(request: Request, org_id: Organization, id: str, body: UpdateLogRequest) -> Response:
    return JSONBytes(await _service(request).update(org_id, body, log_id=id))


@router.post("/projects/{id}/export", response_class=JSONBytes)
async def export_project_logs(
    request: Request,
    org_id: Organization,
    id: str,
    page: PageFromZero = 0,
    size: PageSize = 10,
) -> Response:
    """The project's logs, newest first (``created_at`` descending)."""
    return JSONBytes(await _service(request).page(org_id, LogFilter(project_id=id), [], page=page, size=size))
