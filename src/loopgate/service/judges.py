"""The ``llm`` evaluators loopgate runs in an evaluation: the evaluator's ``prompt_template`` rendered from
the log and its datapoint, one call to the evaluator's model, and the answer read as its ``return_type``.

The template names what it judges with dotted variables:
- ``{{log.output}}``, ``{{log.inputs}}`` (JSON), ``{{log.inputs.<name>}}``, ``{{log.messages}}`` (JSON),
  ``{{log.error}}``;
- ``{{testcase.inputs}}``, ``{{testcase.inputs.<name>}}``, ``{{testcase.messages}}``,
  ``{{testcase.target}}`` (JSON) and ``{{testcase.target.<key>}}``: the datapoint, ground truth included.

How an answer is read:
- ``boolean``: its last word -- true/yes/pass/1 or false/no/fail/0, in any case -- so a judge may reason first
  and conclude last;
- ``number``: the last number in it;
- ``select``: the answer, trimmed;
- ``multi_select``: the answer split at commas and new lines;
- ``text``: the answer as it is.

An answer that cannot be read, a template naming what the log does not have, and a provider failure are
the result's ``error``, so one bad judgment never stops the run. What the judge was sent and answered goes
into a ``Record``, from which the runner logs the judgment (``service/evaluator_logs.py``).
"""

import re
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from loopgate import metrics
from loopgate.errors import LoopgateError, ProviderError, RequestInvalid
from loopgate.providers.base import GenerationCall
from loopgate.providers.registry import ProviderRegistry
from loopgate.providers.retry import counting
from loopgate.schemas.common import ProviderApiKeys
from loopgate.schemas.model_configs import ModelConfigCompletionRequest
from loopgate.service.evaluator_logs import Record
from loopgate.service.prepare import credentials, sampling
from loopgate.service.templates import render_text
from loopgate.store.datasets import DatapointRow
from loopgate.store.evaluations import Judgment
from loopgate.store.evaluators import EvaluatorRow

_TRUE = frozenset({"true", "yes", "pass", "1"})
_FALSE = frozenset({"false", "no", "fail", "0"})
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_WORD = re.compile(r"[A-Za-z0-9]+")


class JudgmentError(Exception):
    """Why an evaluator gave no result for a log: kept as the result's ``error``."""


@dataclass(frozen=True, slots=True)
class Judged:
    log: dict[str, Any]  # the stored log (LogStore.fetch's dict)
    datapoint: DatapointRow


def variables(judged: Judged) -> dict[str, Any]:
    """Every name the template may use, dotted paths included."""
    log, datapoint = judged.log, judged.datapoint
    inputs = log.get("inputs") or {}
    found: dict[str, Any] = {
        "log.output": log.get("output") or "",
        "log.inputs": inputs,
        "log.messages": log.get("messages") or [],
        "log.error": log.get("error") or "",
        "testcase.inputs": datapoint.inputs or {},
        "testcase.messages": datapoint.messages or [],
        "testcase.target": datapoint.target or {},
    }
    for prefix, values in (
        ("log.inputs", inputs),
        ("testcase.inputs", datapoint.inputs or {}),
        ("testcase.target", datapoint.target or {}),
    ):
        found.update({f"{prefix}.{key}": value for key, value in values.items()})
    return found


def prompt(evaluator: EvaluatorRow, judged: Judged) -> tuple[ModelConfigCompletionRequest, str]:
    """The evaluator's model config and its rendered prompt."""
    try:
        config = runnable_config(evaluator)
    except RequestInvalid as exc:  # checked when the run was created; the evaluator changed since
        raise JudgmentError(exc.message) from None
    assert config.prompt_template is not None  # runnable_config checked it
    try:
        return config, render_text(config.prompt_template, variables(judged))
    except RequestInvalid as exc:
        raise JudgmentError(
            f"The evaluator's prompt template names {{{{{exc.loc[-1]}}}}}, which this log "
            "and its datapoint do not have"
        ) from None


def runnable_config(evaluator: EvaluatorRow) -> ModelConfigCompletionRequest:
    """The llm evaluator's model config, if it has one loopgate can run (else RequestInvalid, naming why)."""
    if evaluator.model_config is None:
        raise RequestInvalid(
            ["body", "evaluator_ids"], f"Evaluator '{evaluator.id}' is of type 'llm' but has no model_config"
        )
    try:
        config = ModelConfigCompletionRequest.model_validate(evaluator.model_config)
    except ValidationError as exc:
        raise RequestInvalid(
            ["body", "evaluator_ids"],
            f"Evaluator '{evaluator.id}' has a model_config loopgate cannot run: {exc.errors()[0]['msg']}",
        ) from None
    if not config.prompt_template:
        raise RequestInvalid(
            ["body", "evaluator_ids"],
            f"Evaluator '{evaluator.id}' is of type 'llm' but its model_config has no prompt_template",
        )
    return config


async def judge(
    evaluator: EvaluatorRow,
    judged: Judged,
    providers: ProviderRegistry,
    keys: ProviderApiKeys | None,
    record: Record,
) -> Judgment:
    """The evaluator's judgment of the log (JudgmentError: none, and why); ``record`` gets what was sent
    and answered."""
    config, text = prompt(evaluator, judged)
    record.messages = [{"role": "user", "content": text}]
    try:
        provider = providers.get(config.provider.value)
    except LoopgateError as exc:
        raise JudgmentError(exc.message) from None
    api_key, api_endpoint = credentials(provider, keys)
    call = GenerationCall(
        model=config.model,
        messages=[{"role": "user", "content": text}],
        **sampling(config),
        seed=config.seed,
        other=config.other,
        api_key=api_key,
        api_endpoint=api_endpoint,
    )
    started = time.perf_counter()
    try:
        with counting() as retries:
            result = await provider.generate(call)
    except ProviderError as exc:
        record.seconds = elapsed(started)
        metrics.provider_call(
            provider.name, config.model, prompt_tokens=None, seconds=record.seconds, retries=retries.value
        )
        raise JudgmentError(f"{exc.origin}: {exc.message}") from None
    usage = result.usage
    record.seconds = elapsed(started)
    record.output = result.generations[0].raw_output
    record.provider_request = result.request if isinstance(result.request, dict) else None
    first = result.responses[0] if result.responses else None
    record.provider_response = first if isinstance(first, dict) else None
    if usage is not None:
        record.prompt_tokens, record.output_tokens = usage.prompt_tokens, usage.generation_tokens
    # Counted here, not by the log: the judgment's log is written like a posted one, which counts nothing.
    metrics.provider_call(
        provider.name,
        config.model,
        prompt_tokens=record.prompt_tokens,
        output_tokens=record.output_tokens,
        seconds=record.seconds,
        retries=retries.value,
    )
    return read(record.output, evaluator.return_type)


def elapsed(started: float) -> float:
    return time.perf_counter() - started


def fits(value: Any, return_type: str) -> bool:
    """Whether ``value`` is a result of ``return_type``: a boolean, a number (not a boolean), a string for
    ``select`` and ``text``, a list of strings for ``multi_select``."""
    if return_type == "boolean":
        return isinstance(value, bool)
    if return_type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if return_type == "multi_select":
        return isinstance(value, list) and all(isinstance(choice, str) for choice in value)
    return isinstance(value, str)


def read(answer: str, return_type: str) -> Judgment:
    """The judge's answer as a value of ``return_type`` (see the module's docstring)."""
    if return_type == "boolean":
        words = _WORD.findall(answer)
        last = words[-1].lower() if words else ""
        if last in _TRUE or last in _FALSE:
            return last in _TRUE
        raise JudgmentError(f"Expected the answer to end in true or false, got {_excerpt(answer)}")
    if return_type == "number":
        numbers = _NUMBER.findall(answer)
        if not numbers:
            raise JudgmentError(f"Expected a number in the answer, got {_excerpt(answer)}")
        last = numbers[-1]
        return int(last) if last.lstrip("-").isdigit() else float(last)
    if return_type == "multi_select":
        return [choice for part in re.split(r"[,\n]", answer) if (choice := part.strip())]
    if return_type == "select":
        return answer.strip()
    return answer


def _excerpt(answer: str) -> str:
    shown = answer.strip()
    return repr(shown if len(shown) <= 200 else f"{shown[:200]}...")
