"""Sessions: create, read one (with its logs, so a client can rebuild the tree), list a project's.

v4's SessionResponse has no field for a session's logs and no endpoint lists them, so ``GET
/sessions/{id}`` adds ``datapoints``: the session's logs as LogResponses, oldest first, each with its
``parent_id`` / ``parent_reference_id``. Clients that do not know the field ignore it (the SDK does).
"""

from typing import Any

from loopgate.errors import NotFoundError
from loopgate.service.log_views import log_response, paginated, timestamp
from loopgate.store.logs import LogStore, utc
from loopgate.store.repository import Store
from loopgate.store.sessions import SessionStore, SessionSummary


def _session_response(
    session: dict[str, Any], summary: SessionSummary, first_inputs: dict[str, Any] | None
) -> dict[str, Any]:
    updated_at = utc(session["updated_at"])
    if summary.last_activity is not None:
        updated_at = max(updated_at, utc(summary.last_activity))
    return {
        "id": session["id"],
        "reference_id": session["reference_id"],
        "projects": [{"id": pid, "name": name, "type": "prompt"} for pid, name in summary.projects],
        "datapoints_count": summary.datapoints_count,
        "first_inputs": first_inputs,
        "last_output": summary.last_output,
        "created_at": timestamp(session["created_at"]),
        "updated_at": timestamp(updated_at),
    }


class SessionService:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._sessions = SessionStore(store.engine)
        self._logs = LogStore(store.engine)

    async def create(self, org_id: str) -> dict[str, Any]:
        return {"id": await self._sessions.create(org_id)}

    async def get(self, org_id: str, session_id: str) -> dict[str, Any]:
        session = await self._sessions.get(org_id, session_id)
        if session is None:
            raise NotFoundError(f"Session '{session_id}' not found")
        summary = (await self._sessions.summaries(org_id, [session_id]))[session_id]
        logs = await self._logs.fetch(org_id, await self._sessions.log_ids(org_id, session_id))
        datapoints = [log_response(row) for row in logs]
        first_inputs = datapoints[0]["inputs"] if datapoints else None
        return {**_session_response(session, summary, first_inputs), "datapoints": datapoints}

    async def page(self, org_id: str, project_id: str, *, page: int, size: int) -> dict[str, Any]:
        if not await self._store.project_exists(org_id, project_id):
            raise NotFoundError(f"Project '{project_id}' not found")
        sessions, total = await self._sessions.page_for_project(org_id, project_id, page=page, size=size)
        summaries = await self._sessions.summaries(org_id, [session["id"] for session in sessions])
        first_ids = [s.first_log_id for s in summaries.values() if s.first_log_id is not None]
        first_inputs = {
            row["id"]: (row["payload"] or {}).get("inputs") or {}
            for row in await self._logs.fetch(org_id, first_ids)
        }
        records = [
            _session_response(
                session,
                summaries[session["id"]],
                first_inputs.get(summaries[session["id"]].first_log_id or ""),
            )
            for session in sessions
        ]
        return paginated(records, page=page, size=size, total=total)
