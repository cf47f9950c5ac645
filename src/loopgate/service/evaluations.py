"""Evaluations: ``/evaluations`` and ``/projects/{id}/evaluations``.

Two kinds of run, as v4 has them:
- ``hl_generated=true`` (v4's default): loopgate generates each datapoint's log with the evaluated config and
  runs the ``llm`` evaluators (``service/evaluation_runner.py``). The run starts ``pending`` and is
  ``completed`` once that is done, or stays ``running`` when it also has evaluators the client runs
  (``external``, ``human``), whose results the client posts before completing it.
- ``hl_generated=false``: the client posts each datapoint's generation (``POST /evaluations/{id}/log``,
  written as a real log of the evaluation's project by the same path as ``POST /logs``) and each evaluator's
  result (``POST /evaluations/{id}/result``); only client-run evaluators. The run starts ``running``
  (v4 takes logs and results only while running, and the client starts posting at once) and moves between
  ``running`` and ``completed`` as v4 allows.

``python`` evaluators run in generated runs only where the operator allows it (LOOPGATE_PYTHON_EVALUATORS,
``service/code_evaluators.py``); elsewhere an evaluation with one is refused (422). A generated run can be
cancelled while loopgate generates it, and resumed (``running``) from where it stopped; otherwise
``pending`` and ``cancelled`` cannot be set (422). A log or result posted to a run that is not running is a
state conflict (409).
"""

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from loopgate.errors import ConflictError, NotFoundError, RequestInvalid
from loopgate.schemas.common import ProviderApiKeys
from loopgate.schemas.evaluations import (
    AddEvaluatorsRequest,
    CreateEvaluationLogRequest,
    CreateEvaluationRequest,
    CreateEvaluationResultLogRequest,
    EvaluationStatus,
    UpdateEvaluationStatusRequest,
)
from loopgate.service.datasets import datapoint_response
from loopgate.service.evaluation_runner import CLIENT_RUN, EvaluationRunner
from loopgate.service.evaluation_views import evaluation_response
from loopgate.service.judges import fits, runnable_config
from loopgate.service.log_views import log_response, result_response
from loopgate.service.logs import LogService
from loopgate.store.catalog import Catalog
from loopgate.store.evaluations import EvaluationFilter, EvaluationRow, EvaluationSort
from loopgate.store.evaluators import EvaluatorRow
from loopgate.store.logs import LogStore
from loopgate.store.repository import Store

_SETTABLE = (EvaluationStatus.RUNNING, EvaluationStatus.COMPLETED)


def _check_runnable(
    evaluator: EvaluatorRow, loc: list[str | int], *, generated: bool, runs_code: bool
) -> None:
    """Whether the run can have the evaluator: the client's evaluators always; ``llm`` ones when loopgate
    generates the run and the evaluator has a prompt to run; ``python`` ones likewise, and only where the
    server runs code (``runs_code``: LOOPGATE_PYTHON_EVALUATORS)."""
    if evaluator.type in CLIENT_RUN:
        return
    if evaluator.type == "llm" and generated:
        try:
            runnable_config(evaluator)
        except RequestInvalid as exc:
            exc.loc = loc
            raise
        return
    if evaluator.type == "python" and generated and runs_code:
        if not (evaluator.code or "").strip():
            raise RequestInvalid(loc, f"Evaluator '{evaluator.id}' is of type 'python' but has no code")
        return
    if evaluator.type == "python" and not runs_code:
        why = "this server does not run code sent to it (LOOPGATE_PYTHON_EVALUATORS is off)"
    else:
        why = f"loopgate runs {evaluator.type} evaluators only in the runs it generates (hl_generated=true)"
    takes = ", and 'llm'" + (" or 'python'" if runs_code else "") if generated else ""
    raise RequestInvalid(
        loc,
        f"Evaluator '{evaluator.id}' is of type '{evaluator.type}': {why}. This evaluation can take "
        f"evaluators of type 'external' or 'human', whose results the client posts{takes}",
    )


def _check_value(evaluator: EvaluatorRow, value: Any) -> None:
    kind = evaluator.return_type
    if kind in ("boolean", "number") and fits(value, kind):
        return
    if kind in ("boolean", "number"):
        wanted = "true or false" if kind == "boolean" else "a number"
        raise RequestInvalid(
            ["body", "result"], f"Evaluator '{evaluator.id}' returns {kind}: result must be {wanted}"
        )
    raise RequestInvalid(
        ["body", "result"],
        f"Evaluator '{evaluator.id}' returns {kind}, which a result cannot carry (v4's result is a boolean "
        "or a number); send error instead, or use a boolean or number evaluator",
    )


class EvaluationService:
    def __init__(self, catalog: Catalog, store: Store, runner: EvaluationRunner) -> None:
        self._catalog = catalog
        self._evaluations = catalog.evaluations
        self._store = store
        self._logs = LogStore(store.engine)
        self._runner = runner

    async def _evaluation(self, org_id: str, evaluation_id: str) -> EvaluationRow:
        found = await self._evaluations.get(org_id, evaluation_id)
        if found is None:
            raise NotFoundError(f"Evaluation '{evaluation_id}' not found")
        return found

    async def _project(self, org_id: str, project_id: str) -> None:
        if await self._catalog.projects.get(org_id, project_id) is None:
            raise NotFoundError(f"Project '{project_id}' not found")

    async def _evaluator(self, org_id: str, evaluator_id: str) -> EvaluatorRow:
        found = await self._catalog.evaluators.get(org_id, evaluator_id)
        if found is None:
            raise NotFoundError(f"Evaluator '{evaluator_id}' not found")
        return found

    async def _view(self, org_id: str, row: EvaluationRow, *, aggregates: bool = False) -> dict[str, Any]:
        (view,) = await self._views(org_id, [row], aggregates=aggregates)
        return view

    async def _views(
        self, org_id: str, rows: list[EvaluationRow], *, aggregates: bool = False
    ) -> list[dict[str, Any]]:
        """EvaluationResponse of each run. A page of runs mostly shares its config, dataset and evaluators:
        each is read once, and the snapshot sizes and means come in one query each for the whole page."""
        configs = {
            config_id: await self._catalog.configs.get(org_id, config_id)
            for config_id in {r.config_id for r in rows}
        }
        datasets = {
            dataset_id: await self._catalog.datasets.get(org_id, dataset_id)
            for dataset_id in {row.dataset_id for row in rows}
        }
        evaluators = {
            evaluator_id: await self._evaluator(org_id, evaluator_id)
            for evaluator_id in {evaluator_id for row in rows for evaluator_id in row.evaluator_ids}
        }
        counts = await self._evaluations.snapshot_counts(rows)
        means = await self._evaluations.aggregates_of([row.id for row in rows]) if aggregates else {}
        views = []
        for row in rows:
            # The config, dataset and evaluators cannot be gone: deleting one in use is refused (409), and
            # deleting the project deletes its evaluations with its configs.
            config, dataset = configs[row.config_id], datasets[row.dataset_id]
            if config is None or dataset is None:
                raise NotFoundError(f"Evaluation '{row.id}' not found")
            views.append(
                evaluation_response(
                    row,
                    config=config,
                    evaluators=[evaluators[evaluator_id] for evaluator_id in row.evaluator_ids],
                    dataset=dataset,
                    snapshot_count=counts[row.id],
                    aggregates=means.get(row.id, {}) if aggregates else None,
                )
            )
        return views

    # -- evaluations ------------------------------------------------------------------------------------

    async def create(self, org_id: str, project_id: str, request: CreateEvaluationRequest) -> dict[str, Any]:
        await self._project(org_id, project_id)
        keys = None
        if request.hl_generated and request.provider_api_keys:
            try:
                keys = ProviderApiKeys.model_validate(request.provider_api_keys)
            except ValidationError as exc:
                error = exc.errors()[0]
                loc = ["body", "provider_api_keys", *error["loc"]]
                raise RequestInvalid(loc, error["msg"], error["type"]) from None
        config = await self._catalog.configs.get(org_id, request.config_id)
        if config is None:
            raise NotFoundError(f"Config '{request.config_id}' not found")
        if config.config_type != "model":
            raise RequestInvalid(["body", "config_id"], f"Config '{config.id}' is not a model config")
        if config.project_id != project_id:
            raise RequestInvalid(["body", "config_id"], f"Config '{config.id}' belongs to another project")
        if await self._catalog.datasets.get(org_id, request.dataset_id) is None:
            raise NotFoundError(f"Dataset '{request.dataset_id}' not found")
        evaluator_ids = list(dict.fromkeys(request.evaluator_ids))
        for index, evaluator_id in enumerate(evaluator_ids):
            evaluator = await self._evaluator(org_id, evaluator_id)
            _check_runnable(
                evaluator,
                ["body", "evaluator_ids", index],
                generated=request.hl_generated,
                runs_code=self._runner.runs_code,
            )
        created = await self._evaluations.create(
            org_id,
            project_id=project_id,
            config_id=config.id,
            dataset_id=request.dataset_id,
            evaluator_ids=evaluator_ids,
            name=request.name,
            runner=self._runner.owner if request.hl_generated else None,
            lease_seconds=self._runner.lease_seconds,
        )
        if created is None:  # deleted between the checks above and the insert
            raise NotFoundError(f"Dataset '{request.dataset_id}' or project '{project_id}' not found")
        if created.hl_generated:
            self._runner.wake(created.id, keys)  # the keys stay in this process's memory only
        return await self._view(org_id, created)

    async def get(self, org_id: str, evaluation_id: str, *, aggregates: bool) -> dict[str, Any]:
        return await self._view(org_id, await self._evaluation(org_id, evaluation_id), aggregates=aggregates)

    async def overview(self, org_id: str, evaluation_id: str) -> tuple[str, dict[str, Any], int]:
        """What the log browser shows at the top of a run: its project's id (EvaluationResponse has no
        such field), the run with its aggregates, and how many of its datapoints have a log."""
        row = await self._evaluation(org_id, evaluation_id)
        view = await self._view(org_id, row, aggregates=True)
        return row.project_id, view, await self._evaluations.linked_count(row.id)

    async def list_for_project(
        self, org_id: str, project_id: str, *, aggregates: bool
    ) -> list[dict[str, Any]]:
        await self._project(org_id, project_id)
        rows, _total = await self._evaluations.of_project(org_id, project_id)
        return await self._views(org_id, rows, aggregates=aggregates)

    async def page(
        self,
        org_id: str,
        project_id: str,
        where: EvaluationFilter,
        sorts: Sequence[EvaluationSort] = (),
        *,
        page: int,
        size: int,
        aggregates: bool = False,
        newest_first: bool = False,
    ) -> dict[str, Any]:
        await self._project(org_id, project_id)
        rows, total = await self._evaluations.of_project(
            org_id, project_id, where=where, sorts=sorts, page=page, size=size, newest_first=newest_first
        )
        records = await self._views(org_id, rows, aggregates=aggregates)
        return {"records": records, "page": page, "size": size, "total": total}

    async def update_status(
        self, org_id: str, evaluation_id: str, request: UpdateEvaluationStatusRequest
    ) -> dict[str, Any]:
        row = await self._evaluation(org_id, evaluation_id)
        if row.hl_generated and row.generated_at is None:
            return await self._steer(org_id, row, request.status)
        if request.status not in _SETTABLE:
            raise RequestInvalid(
                ["body", "status"],
                f"An evaluation the client runs moves only between 'running' and 'completed', not to "
                f"'{request.status.value}'",
            )
        if not await self._evaluations.set_status(org_id, evaluation_id, request.status.value):
            raise NotFoundError(f"Evaluation '{evaluation_id}' not found")
        return await self.get(org_id, evaluation_id, aggregates=False)

    async def _steer(self, org_id: str, row: EvaluationRow, status: EvaluationStatus) -> dict[str, Any]:
        """A status set on a run loopgate is still generating: ``cancelled`` stops it where it is, and
        ``running`` makes a cancelled one go on from there; it completes by itself (409 for anything else).
        Setting the status it has is accepted."""
        if status == EvaluationStatus.CANCELLED and row.status != status:
            changed = await self._runner.cancel(org_id, row.id)
        elif status == EvaluationStatus.RUNNING and row.status == EvaluationStatus.CANCELLED:
            changed = await self._runner.resume(org_id, row.id)
        elif status == row.status or (status, row.status) == (
            EvaluationStatus.RUNNING,
            EvaluationStatus.PENDING,
        ):
            changed = True
        else:
            raise ConflictError(
                f"Evaluation '{row.id}' is being generated by loopgate and completes by itself: it can be "
                f"set 'cancelled', and a cancelled one 'running' again, but not '{status.value}'"
            )
        if not changed:  # it finished, or was cancelled or resumed, between the read above and now
            raise ConflictError(f"Evaluation '{row.id}' changed meanwhile: read it again")
        return await self.get(org_id, row.id, aggregates=False)

    async def add_evaluators(
        self, org_id: str, evaluation_id: str, request: AddEvaluatorsRequest
    ) -> dict[str, Any]:
        row = await self._evaluation(org_id, evaluation_id)
        generated = row.hl_generated
        wanted: list[str] = []
        for index, evaluator_id in enumerate(request.evaluator_ids or ()):
            evaluator = await self._evaluator(org_id, evaluator_id)
            _check_runnable(
                evaluator,
                ["body", "evaluator_ids", index],
                generated=generated,
                runs_code=self._runner.runs_code,
            )
            wanted.append(evaluator.id)
        for index, version_id in enumerate(request.evaluator_version_ids or ()):
            found = await self._catalog.evaluators.by_version(org_id, version_id)
            if found is None:
                raise NotFoundError(
                    f"Evaluator version '{version_id}' not found (only current versions are kept)"
                )
            _check_runnable(
                found,
                ["body", "evaluator_version_ids", index],
                generated=generated,
                runs_code=self._runner.runs_code,
            )
            wanted.append(found.id)
        if not await self._evaluations.add_evaluators(org_id, evaluation_id, wanted):
            raise NotFoundError(f"Evaluation '{evaluation_id}' not found")
        if generated and set(wanted) - set(row.evaluator_ids):
            # New evaluators to run: whichever process claims the run first judges its logs for them (the
            # results already recorded are kept).
            await self._runner.reopen(org_id, evaluation_id)
        return await self.get(org_id, evaluation_id, aggregates=False)

    # -- logs and results -------------------------------------------------------------------------------

    async def _running(self, org_id: str, evaluation_id: str) -> EvaluationRow:
        row = await self._evaluation(org_id, evaluation_id)
        if row.status != EvaluationStatus.RUNNING:
            raise ConflictError(
                f"Evaluation '{evaluation_id}' is {row.status}: logs and results are taken only while it is "
                "running (PATCH /evaluations/{id}/status to set it running again)"
            )
        return row

    async def log(
        self, org_id: str, evaluation_id: str, request: CreateEvaluationLogRequest
    ) -> dict[str, Any]:
        """Writes the datapoint's log into the evaluation's project (its config unless the log names one)
        and links it to the datapoint; a datapoint takes one log per evaluation (409 for a second)."""
        row = await self._running(org_id, evaluation_id)
        if row.hl_generated:
            raise ConflictError(
                f"Evaluation '{evaluation_id}' is generated by loopgate (hl_generated=true): its logs are "
                "loopgate's, one per datapoint"
            )
        datapoint_id = request.datapoint_id
        if await self._catalog.datasets.datapoint(org_id, datapoint_id) is None:
            raise NotFoundError(f"Datapoint '{datapoint_id}' not found")
        if not await self._evaluations.in_snapshot(row, datapoint_id):
            raise RequestInvalid(
                ["body", "datapoint_id"],
                f"Datapoint '{datapoint_id}' is not in this evaluation's dataset (as of {row.dataset_id}"
                f" version {row.dataset_version})",
            )
        if await self._evaluations.log_of(row.id, datapoint_id) is not None:
            raise ConflictError(f"Datapoint '{datapoint_id}' already has a log in evaluation '{row.id}'")
        given = request.log
        update: dict[str, Any] = {
            "project": None,
            "project_id": row.project_id,
            "source_datapoint_id": datapoint_id,
        }
        if given.config is None and given.config_id is None:
            update["config_id"] = row.config_id
        logs = LogService(self._store)
        try:
            (created,) = await logs.create(org_id, [given.model_copy(update=update)], batch=False)
        except RequestInvalid as exc:
            exc.loc = ["body", "log", *exc.loc[1:]]  # the log is the body's ``log``, not the body
            raise
        if not await self._evaluations.link_log(row.id, datapoint_id, created["id"]):
            # Another request linked a log to this datapoint between the check above and now. Its 409
            # says nothing was recorded, so the log written for it goes too.
            await logs.delete(org_id, [created["id"]])
            raise ConflictError(f"Datapoint '{datapoint_id}' already has a log in evaluation '{row.id}'")
        return created

    async def result(
        self, org_id: str, evaluation_id: str, request: CreateEvaluationResultLogRequest
    ) -> dict[str, Any]:
        row = await self._running(org_id, evaluation_id)
        if request.evaluator_id not in row.evaluator_ids:
            raise RequestInvalid(
                ["body", "evaluator_id"],
                f"Evaluator '{request.evaluator_id}' is not one of this evaluation's",
            )
        if not await self._evaluations.has_log(row.id, request.log_id):
            raise RequestInvalid(
                ["body", "log_id"], f"Log '{request.log_id}' is not a log of this evaluation"
            )
        if request.result is None and request.error is None:
            raise RequestInvalid(["body", "result"], "Give the evaluator's result, or the error it met")
        evaluator = await self._evaluator(org_id, request.evaluator_id)
        if evaluator.type not in CLIENT_RUN:
            raise RequestInvalid(
                ["body", "evaluator_id"],
                f"Evaluator '{evaluator.id}' is of type '{evaluator.type}': its results are loopgate's",
            )
        if request.result is not None:
            _check_value(evaluator, request.result)
        stored = await self._evaluations.put_result(
            row.id,
            log_id=request.log_id,
            evaluator_id=evaluator.id,
            evaluator_version_id=evaluator.version_id,
            value=request.result,
            error=request.error,
        )
        return result_response(stored)

    async def datapoints(self, org_id: str, evaluation_id: str, *, page: int, size: int) -> dict[str, Any]:
        """EvaluationDatapointSnapshotResponse per datapoint of the snapshot, pages from 1."""
        row = await self._evaluation(org_id, evaluation_id)
        datapoints = await self._evaluations.snapshot_page(row, offset=(page - 1) * size, size=size)
        linked = await self._evaluations.logs_of(row.id, [datapoint.id for datapoint in datapoints])
        logs = {log["id"]: log for log in await self._logs.fetch(org_id, list(linked.values()))}
        stored = await self._evaluations.results(row.id, list(linked.values()))
        judgment_ids = [result.evaluator_log_id for result in stored if result.evaluator_log_id]
        judgments = {log["id"]: log_response(log) for log in await self._logs.fetch(org_id, judgment_ids)}
        results: dict[str, list[dict[str, Any]]] = {}
        for result in stored:
            judgment = judgments.get(result.evaluator_log_id) if result.evaluator_log_id else None
            results.setdefault(result.log_id, []).append(result_response(result, judgment))
        records = []
        for datapoint in datapoints:
            log_id = linked.get(datapoint.id)
            log = logs.get(log_id) if log_id is not None else None  # a deleted log reads as not posted
            records.append(
                {
                    "datapoint": datapoint_response(datapoint),
                    "log": log_response(log) if log is not None else None,
                    "evaluation_results": results.get(log_id, []) if log is not None and log_id else [],
                }
            )
        total = await self._evaluations.snapshot_count(row)
        return {"records": records, "page": page, "size": size, "total": total}
