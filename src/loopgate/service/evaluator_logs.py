"""The judgments loopgate makes, kept as logs: each ``llm`` or ``python`` evaluator's judgment in a generated
evaluation is a log of the evaluator's logging project (v4's ``logging_project``), and the result names it
as its ``evaluator_log``. So a judge's prompt, answer, tokens and provider payloads -- or a python
evaluator's prints -- can be read back and browsed like any other log.

- The logging project is made on the evaluator's first judgment, named after the evaluator and its id (an
  evaluator renamed later keeps its project). A deleted one is replaced at the next run.
- Each log's config is the evaluator version that judged (an EvaluatorConfigResponse), registered in that
  project as a config version, so a changed prompt or model shows as a new version.
- The log carries the result: ``judgment`` is its value and ``error`` why there is none. ``metadata``
  names the evaluation, the evaluator and the judged log.
"""

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from loopgate.errors import LoopgateError
from loopgate.service import model_configs
from loopgate.store.catalog import Catalog
from loopgate.store.evaluations import Judgment
from loopgate.store.evaluators import EvaluatorRow

_log = logging.getLogger("loopgate.evaluations")

SOURCE = "evaluator"  # the ``source`` of a judgment's log
_NAME_CHARS = 200  # of the evaluator's name in its project's name (project names hold 255)


@dataclass(slots=True)
class Record:
    """What one judgment sent and got back, filled in as it goes (so a failed one is logged as far as it
    went)."""

    messages: list[dict[str, Any]] | None = None
    output: str | None = None
    stdout: str | None = None
    provider_request: dict[str, Any] | None = None
    provider_response: dict[str, Any] | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    seconds: float | None = None


def config_body(evaluator: EvaluatorRow) -> dict[str, Any]:
    """The evaluator version as the config its judgments are logged under."""
    body = {
        "name": evaluator.name,
        "description": evaluator.description,
        "evaluator_type": evaluator.type,
        "arguments_type": evaluator.arguments_type,
        "return_type": evaluator.return_type,
        "model_config": evaluator.model_config,
        "code": evaluator.code,
    }
    return {key: value for key, value in body.items() if value is not None}


def project_name(evaluator: EvaluatorRow) -> str:
    return f"{evaluator.name[:_NAME_CHARS]} (evaluator {evaluator.id})"


class EvaluatorLogs:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def project(self, org_id: str, evaluator: EvaluatorRow) -> str:
        """The evaluator's logging project, made (and named on the evaluator) on first use. Racing
        processes agree: the project is found or created by its name."""
        store = self._catalog.store
        current = evaluator.logging_project_id
        if current is not None and await store.project_exists(org_id, current):
            return current
        project_id = await store.project_by_name(org_id, project_name(evaluator))
        if project_id != current:
            await self._catalog.evaluators.set_logging_project(org_id, evaluator.id, project_id)
        return project_id

    async def write(
        self,
        org_id: str,
        evaluator: EvaluatorRow,
        project_id: str,
        record: Record,
        *,
        value: Judgment | None,
        error: str | None,
        judged: dict[str, str],
    ) -> str | None:
        """The judgment's log, committed; its id (None, and a warning, when it could not be written: the
        result is kept without it). ``judged`` names the evaluation and log, for the log's metadata."""
        # Here, not at the top: the log store imports PostgreSQL's dialect, and the log schemas cost ~10 ms
        # to build, which start-up leaves out (the runner imports this module).
        from loopgate.schemas.logs import LogRequest
        from loopgate.service.logs import LogService
        from loopgate.store.logs import LogStore

        body = config_body(evaluator)
        store = self._catalog.store
        try:
            config_id = await LogStore(store.engine).typed_config_id(
                org_id, project_id, model_configs.config_hash(body), body, config_type="evaluator"
            )
            request = LogRequest.model_validate(
                {
                    "project_id": project_id,
                    "config_id": config_id,
                    "source": SOURCE,
                    "metadata": {**judged, "evaluator_id": evaluator.id},
                    "messages": record.messages,
                    "output": record.output,
                    "judgment": value,
                    "error": error,
                    "stdout": record.stdout,
                    "provider_request": record.provider_request,
                    "provider_response": record.provider_response,
                    "prompt_tokens": record.prompt_tokens,
                    "output_tokens": record.output_tokens,
                    "duration": record.seconds,
                }
            )
            (created,) = await LogService(store).create(org_id, [request], batch=False)
        except (LoopgateError, IntegrityError) as exc:  # the logging project was deleted during the run
            _log.warning("evaluator %s: the judgment's log was not written: %s", evaluator.id, exc)
            return None
        return str(created["id"])
