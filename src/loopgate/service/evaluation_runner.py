"""Evaluations loopgate runs itself (``hl_generated=true``, v4's default): for each datapoint of the run's
dataset snapshot, a generation with the evaluated config -- a real log of the project, through the same path
as ``/chat-model-config`` -- and then each ``llm`` evaluator's judgment of it (``service/judges.py``), and
each ``python`` one's where the server allows running code (``service/code_evaluators.py``).

Every server process runs one runner. The process that took ``POST /evaluations`` holds the new run's lease
from the start (``store/evaluation_runs.py``) and keeps the request's ``provider_api_keys`` in memory for it,
never stored. A run whose process stopped is taken over by another (or by this one after a restart) once
its lease lapses; it goes on from what is recorded -- a datapoint with a log is not generated again, a
result is not judged again -- using the server's own provider keys, since the request's are gone.

When loopgate's part is done the run is ``completed``, or stays ``running`` when it also has evaluators the
client runs (``external``, ``human``): those results are posted, and the run completed, by the client.
"""

import asyncio
import contextlib
import functools
import json
import logging
import time
from typing import Any

from pydantic import ValidationError

from loopgate import metrics
from loopgate.errors import LoopgateError, ProviderError
from loopgate.providers.registry import ProviderRegistry
from loopgate.schemas.common import ProviderApiKeys
from loopgate.schemas.completion import ChatModelConfigRequest, CompletionModelConfigRequest
from loopgate.service import code_evaluators, judges
from loopgate.service.evaluator_logs import EvaluatorLogs, Record
from loopgate.service.generation import GenerationService
from loopgate.service.lease_holders import holder_gone, new_holder
from loopgate.store.catalog import Catalog
from loopgate.store.datasets import DatapointRow
from loopgate.store.evaluation_runs import RunLeases
from loopgate.store.evaluations import EvaluationRow, Judgment
from loopgate.store.evaluators import EvaluatorRow
from loopgate.store.model_configs import ConfigRow

_log = logging.getLogger("loopgate.evaluations")

CLIENT_RUN = ("external", "human")
LOOPGATE_RUN = ("llm", "python")  # python only where LOOPGATE_PYTHON_EVALUATORS allows it
SOURCE = "evaluation"  # the ``source`` of the logs a run generates
_LEASE = 30.0  # seconds a run stays with a process that stopped renewing it
_RENEW = 5.0  # seconds between renewals, and between looks for runs to take over
_RUNS = 4  # runs one process works on at once
_DATAPOINTS = 4  # generations (and judgments) at once within a run
_PAGE = 50  # datapoints read at a time
_RETRY_FIRST, _RETRY_MOST = 5.0, 300.0  # seconds before a run that failed is tried again, doubling


class EvaluationRunner:
    def __init__(
        self,
        catalog: Catalog,
        generation: GenerationService,
        providers: ProviderRegistry,
        *,
        runs_code: bool = False,
    ) -> None:
        self.owner = new_holder()
        # Whether python evaluators are run (LOOPGATE_PYTHON_EVALUATORS, service/code_evaluators.py).
        self.runs_code = runs_code
        self._catalog = catalog
        self._evaluations = catalog.evaluations
        self._generation = generation
        self._providers = providers
        self._leases = RunLeases(catalog.store.engine, lease_seconds=_LEASE)
        self._evaluator_logs = EvaluatorLogs(catalog)
        self._keys: dict[str, ProviderApiKeys] = {}
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._retry: dict[str, tuple[float, float]] = {}  # failed run -> (not before, next pause)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def lease_seconds(self) -> float:
        return _LEASE

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="loopgate-evaluations")

    async def stop(self) -> None:
        """Stops every run where it is and gives the leases up, so another process goes on at once."""
        self._stopping.set()
        tasks = [task for task in (self._task, *self._runs.values()) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        try:
            await self._leases.release(self.owner)
        except Exception:  # another process waits for the leases to lapse instead
            _log.warning("could not give the evaluation runs' leases up", exc_info=True)

    def wake(self, evaluation_id: str, keys: ProviderApiKeys | None) -> None:
        """A run this process holds (just created, or reopened): start it now, with the request's keys."""
        if keys is not None:
            self._keys[evaluation_id] = keys
        self._wake.set()

    async def cancel(self, org_id: str, evaluation_id: str) -> bool:
        """Stops a run where it is (this process's task at once, another's at its next renewal)."""
        if not await self._leases.cancel(org_id, evaluation_id):
            return False
        task = self._runs.pop(evaluation_id, None)
        if task is not None:
            task.cancel()
        self._keys.pop(evaluation_id, None)
        return True

    async def resume(self, org_id: str, evaluation_id: str) -> bool:
        """A cancelled run goes on where it stopped, in whichever process claims it first."""
        resumed = await self._leases.resume(org_id, evaluation_id)
        self._wake.set()
        return resumed

    async def reopen(self, org_id: str, evaluation_id: str) -> None:
        """A generated run with new evaluators: unfinished again, for whichever process claims it first."""
        await self._leases.reopen(org_id, evaluation_id)
        self._wake.set()

    # -- taking runs ------------------------------------------------------------------------------------

    async def _loop(self) -> None:
        # The first look is after _RENEW seconds (or a wake): start-up does not wait for it.
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _RENEW)
            self._wake.clear()
            try:
                await self._tend()
            except Exception:
                _log.warning("evaluation runner: could not read or renew runs", exc_info=True)

    async def _tend(self) -> None:
        if self._runs:
            held = await self._leases.renew(self.owner)
            for evaluation_id in [key for key in self._runs if key not in held]:
                _log.warning(
                    "evaluation %s: no longer this process's (cancelled, or taken over)", evaluation_id
                )
                self._runs.pop(evaluation_id).cancel()
                self._keys.pop(evaluation_id, None)
        waiting = {key for key, (not_before, _pause) in self._retry.items() if not_before > time.monotonic()}
        while len(self._runs) < _RUNS:
            row = await self._leases.claim(
                self.owner, skip=self._runs.keys() | waiting, abandoned=holder_gone
            )
            if row is None:
                return
            task = asyncio.create_task(self._run(row), name=f"loopgate-evaluation-{row.id}")
            self._runs[row.id] = task
            task.add_done_callback(functools.partial(self._ended, row.id))

    def _ended(self, evaluation_id: str, task: "asyncio.Task[None]") -> None:
        if self._runs.get(evaluation_id) is task:  # not a later task of the same run, claimed again since
            del self._runs[evaluation_id]

    async def _run(self, row: EvaluationRow) -> None:
        try:
            await self._generate_run(row)
        except asyncio.CancelledError:
            raise
        except Exception:
            with contextlib.suppress(Exception):
                if await self._evaluations.get(row.org_id, row.id) is None:
                    _log.info("evaluation %s was deleted (with its project) while it ran", row.id)
                    return
            # Still held by this process: tried again from where it stopped, after a pause that doubles
            # each time (or by another process, should this one stop meanwhile).
            _not_before, pause = self._retry.get(row.id, (0.0, _RETRY_FIRST))
            self._retry[row.id] = (time.monotonic() + pause, min(pause * 2, _RETRY_MOST))
            _log.exception(
                "evaluation %s stopped on an unexpected error; trying again in %.0f s", row.id, pause
            )
        else:
            self._retry.pop(row.id, None)

    async def _generate_run(self, row: EvaluationRow) -> None:
        config = await self._catalog.configs.get(row.org_id, row.config_id)
        evaluators = [await self._catalog.evaluators.get(row.org_id, key) for key in row.evaluator_ids]
        if (
            config is None or None in evaluators
        ):  # both are deleted only with the project, and the run with it
            raise LookupError(f"the config or an evaluator of evaluation {row.id} is gone")
        present = [evaluator for evaluator in evaluators if evaluator is not None]
        # Each evaluator loopgate runs, with the project its judgments are logged in.
        judging = [
            (evaluator, await self._evaluator_logs.project(row.org_id, evaluator))
            for evaluator in present
            if evaluator.type in LOOPGATE_RUN
        ]
        _log.info("evaluation %s: generating (%d evaluators to run)", row.id, len(judging))
        limit = asyncio.Semaphore(_DATAPOINTS)

        async def one(datapoint: DatapointRow, log_id: str | None) -> None:
            async with limit:
                await self._datapoint(row, config, datapoint, log_id, judging)

        offset = 0
        while page := await self._evaluations.snapshot_page(row, offset=offset, size=_PAGE):
            linked = await self._evaluations.logs_of(row.id, [datapoint.id for datapoint in page])
            async with asyncio.TaskGroup() as group:
                for datapoint in page:
                    group.create_task(one(datapoint, linked.get(datapoint.id)))
            offset += len(page)
        status = "running" if any(evaluator.type in CLIENT_RUN for evaluator in present) else "completed"
        if await self._leases.finish(row.id, self.owner, status=status):
            _log.info("evaluation %s: generated, now %s", row.id, status)
        self._keys.pop(row.id, None)

    # -- one datapoint --------------------------------------------------------------------------------------

    async def _datapoint(
        self,
        row: EvaluationRow,
        config: ConfigRow,
        datapoint: DatapointRow,
        log_id: str | None,
        judging: list[tuple[EvaluatorRow, str]],
    ) -> None:
        """The datapoint's log, generated unless it has one, then judged by each evaluator of ``judging``
        (with its logging project) that has no result for it yet."""
        if log_id is None:
            log_id = await self._generate(row, config, datapoint)
            if not await self._evaluations.link_log(row.id, datapoint.id, log_id):
                log_id = await self._evaluations.log_of(row.id, datapoint.id)
                if log_id is None:
                    return
        if not judging:
            return
        done = {result.evaluator_id for result in await self._evaluations.results(row.id, [log_id])}
        waiting = [(evaluator, project) for evaluator, project in judging if evaluator.id not in done]
        # Here, not at the top: the log store imports PostgreSQL's dialect, which start-up leaves out.
        from loopgate.service.log_views import log_response
        from loopgate.store.logs import LogStore

        logs = await LogStore(self._catalog.store.engine).fetch(row.org_id, [log_id]) if waiting else []
        if not logs:
            return  # judged already, or the log was deleted (it reads as not generated)
        judged = judges.Judged(log_response(logs[0]), datapoint)
        failed = judged.log["error"]
        for evaluator, project_id in waiting:
            value: Any = None
            error: str | None = None
            evaluator_log_id: str | None = None
            if failed is not None:  # nothing to judge: the result says why rather than a judge's guess
                error = f"No output to judge: the generation failed ({failed})"
            else:
                record = Record()
                try:
                    value = await self._judge(evaluator, judged, row.id, record)
                except judges.JudgmentError as exc:
                    error = str(exc)
                metrics.judgment(evaluator.type, failed=error is not None)
                evaluator_log_id = await self._evaluator_logs.write(
                    row.org_id,
                    evaluator,
                    project_id,
                    record,
                    value=value,
                    error=error,
                    judged={"evaluation_id": row.id, "log_id": log_id},
                )
            await self._evaluations.put_result(
                row.id,
                log_id=log_id,
                evaluator_id=evaluator.id,
                evaluator_version_id=evaluator.version_id,
                value=value,
                error=error,
                evaluator_log_id=evaluator_log_id,
            )

    async def _judge(
        self, evaluator: EvaluatorRow, judged: judges.Judged, evaluation_id: str, record: Record
    ) -> Judgment:
        if evaluator.type == "llm":
            keys = self._keys.get(evaluation_id)
            return await judges.judge(evaluator, judged, self._providers, keys, record)
        if not self.runs_code:  # the server stopped allowing it since the run was created
            raise judges.JudgmentError(
                "This server does not run python evaluators (LOOPGATE_PYTHON_EVALUATORS)"
            )
        arguments: list[Any] = [judged.log]
        if evaluator.arguments_type == "target_required":
            testcase = judged.datapoint
            # Empty rather than null where the datapoint has none, as the llm evaluators' variables read.
            inputs, messages, target = testcase.inputs or {}, testcase.messages or [], testcase.target or {}
            arguments.append({"inputs": inputs, "messages": messages, "target": target})
        value = await code_evaluators.run_code(evaluator.code or "", arguments, record)
        record.output = value if isinstance(value, str) else json.dumps(value)
        return code_evaluators.checked(value, evaluator.return_type)

    async def _generate(self, row: EvaluationRow, config: ConfigRow, datapoint: DatapointRow) -> str:
        """The datapoint's log: a generation with the run's config, or, when none could be made, a log of
        the project that says why (a provider failure is logged by the generation itself)."""
        fields: dict[str, Any] = {
            "model_config_id": config.id,
            "inputs": datapoint.inputs or {},
            "source": SOURCE,
            "source_datapoint_id": datapoint.id,
            "provider_api_keys": self._keys.get(row.id),
        }
        try:
            if _is_completion(config):
                request: Any = CompletionModelConfigRequest.model_validate(fields)
            else:
                request = ChatModelConfigRequest.model_validate(
                    {**fields, "messages": datapoint.messages or []}
                )
            answer = await self._generation.generate(row.org_id, request)
            return str(answer["data"][0]["id"])
        except ProviderError as exc:
            if exc.log_id is not None:
                return exc.log_id
            error = f"{exc.origin}: {exc.message}"
        except LoopgateError as exc:
            error = exc.message
        except ValidationError as exc:
            error = f"The datapoint cannot be sent to the model: {exc.errors()[0]['msg']}"
        from loopgate.schemas.logs import LogRequest
        from loopgate.service.logs import LogService

        failed = LogRequest(
            project_id=row.project_id,
            config_id=config.id,
            inputs=datapoint.inputs or {},
            source=SOURCE,
            source_datapoint_id=datapoint.id,
            error=error,
        )
        (created,) = await LogService(self._catalog.store).create(row.org_id, [failed], batch=False)
        return str(created["id"])


def _is_completion(config: ConfigRow) -> bool:
    """A config with a prompt template and no chat template is a completion's; any other is sent as a chat,
    its template (if any) and then the datapoint's messages. ``endpoint`` alone does not decide: a config
    registered with neither template reads as ``complete``, and a completion without a prompt cannot run."""
    body = config.body
    return bool(body.get("prompt_template")) and not body.get("chat_template")
