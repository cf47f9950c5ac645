"""Evaluators: EvaluatorResponse and create / list / get / update / delete.

Every evaluator type is stored, ``code`` included. loopgate runs ``llm`` evaluators in the evaluations it
generates (``service/evaluation_runner.py``), and ``python`` ones there too where the operator allows
running code (``service/code_evaluators.py``); ``external`` and ``human`` results come from the client
(``service/evaluations.py``). An evaluator an
evaluation uses cannot be deleted (409).
"""

from typing import Any

from loopgate.errors import ConflictError, NotFoundError
from loopgate.schemas.evaluators import CreateEvaluatorRequest, UpdateEvaluatorRequest
from loopgate.service.log_views import timestamp
from loopgate.service.project_views import model_config_view
from loopgate.service.projects import ProjectService
from loopgate.store.catalog import Catalog
from loopgate.store.evaluators import EvaluatorRow, InUse, NewEvaluator


def evaluator_response(row: EvaluatorRow) -> dict[str, Any]:
    response: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "arguments_type": row.arguments_type,
        "return_type": row.return_type,
        "type": row.type,
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
    }
    if row.code is not None:
        response["code"] = row.code
    if row.model_config is not None:
        # The config is the evaluator's own, not one of a project's versions: it is named by the evaluator
        # version it belongs to, which changes whenever the config does.
        response["model_config"] = model_config_view(row.version_id, None, row.model_config)
    return response


class EvaluatorService:
    def __init__(self, catalog: Catalog) -> None:
        self._evaluators = catalog.evaluators
        self._projects = ProjectService(catalog)

    async def _responses(self, org_id: str, rows: list[EvaluatorRow]) -> list[dict[str, Any]]:
        """EvaluatorResponses with ``logging_project``: the project the evaluator's judgments are logged in
        (``service/evaluator_logs.py``), null until its first. Only these endpoints look it up; the
        evaluators listed in an EvaluationResponse leave it out."""
        projects = await self._projects.views(
            org_id, [row.logging_project_id for row in rows if row.logging_project_id]
        )
        return [
            {
                **evaluator_response(row),
                "logging_project": projects.get(row.logging_project_id) if row.logging_project_id else None,
            }
            for row in rows
        ]

    async def row(self, org_id: str, evaluator_id: str) -> EvaluatorRow:
        found = await self._evaluators.get(org_id, evaluator_id)
        if found is None:
            raise NotFoundError(f"Evaluator '{evaluator_id}' not found")
        return found

    async def create(self, org_id: str, request: CreateEvaluatorRequest) -> dict[str, Any]:
        config = request.config
        item = NewEvaluator(
            name=request.name,
            description=request.description,
            type=request.type.value,
            arguments_type=request.arguments_type.value,
            return_type=request.return_type.value,
            code=request.code,
            model_config=config.model_dump(mode="json", exclude_none=True) if config is not None else None,
        )
        (response,) = await self._responses(org_id, [await self._evaluators.create(org_id, item)])
        return response

    async def all(self, org_id: str) -> list[dict[str, Any]]:
        return await self._responses(org_id, await self._evaluators.of_org(org_id))

    async def names(self, org_id: str, *, return_type: str | None = None) -> dict[str, str]:
        """The organization's evaluators' names (of one return type, if given), by id, oldest first."""
        rows = await self._evaluators.of_org(org_id)
        return {row.id: row.name for row in rows if return_type in (None, row.return_type)}

    async def get(self, org_id: str, evaluator_id: str) -> dict[str, Any]:
        (response,) = await self._responses(org_id, [await self.row(org_id, evaluator_id)])
        return response

    async def update(self, org_id: str, evaluator_id: str, request: UpdateEvaluatorRequest) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for name in ("name", "description", "arguments_type", "return_type", "code"):
            value = getattr(request, name)
            if value is not None:
                fields[name] = value.value if hasattr(value, "value") else value
        if request.config is not None:
            fields["model_config"] = request.config.model_dump(mode="json", exclude_none=True)
        if not await self._evaluators.update(org_id, evaluator_id, **fields):
            raise NotFoundError(f"Evaluator '{evaluator_id}' not found")
        return await self.get(org_id, evaluator_id)

    async def delete(self, org_id: str, evaluator_id: str) -> None:
        try:
            deleted = await self._evaluators.delete(org_id, evaluator_id)
        except InUse:
            raise ConflictError(
                f"Evaluator '{evaluator_id}' is used by an evaluation (its results name it); "
                "delete the evaluation's project first"
            ) from None
        if not deleted:
            raise NotFoundError(f"Evaluator '{evaluator_id}' not found")
