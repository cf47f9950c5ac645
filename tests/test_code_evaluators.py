"""python evaluators' code, run by service/code_evaluators.py: the last function it defines is called with
the log (and the testcase); what it prints is kept apart from its answer (for the judgment's log); text no
store can hold is replaced; what it raises, a value of the wrong type, no
function, a process that runs too long, and a file it tries to write are the result's error; it sees none
of the server's environment. Then end to end: a server that allows python evaluators runs them in a
generated evaluation, and one that does not refuses them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopgate.service import code_evaluators
from loopgate.service.code_evaluators import checked
from loopgate.service.evaluator_logs import Record
from loopgate.service.judges import JudgmentError
from tests.conftest import Server, make_server
from tests.helpers import MOCK_CONFIG, MOCK_REPLY
from tests.test_evaluation_runs import CHAT_CONFIG, Run, results_by_evaluator
from tests.test_evaluations import assert_422, evaluator, ok

LOG = {"output": "Paris", "inputs": {"q": "capital of France"}}
TESTCASE = {"inputs": {"q": "capital of France"}, "messages": None, "target": {"answer": "Paris"}}


async def run_code(code: str, arguments: list[Any], record: Record | None = None) -> Any:
    return await code_evaluators.run_code(code, arguments, record if record is not None else Record())


async def test_the_last_function_is_called_with_the_log_and_the_testcase() -> None:
    code = """
def normalise(text):
    return text.strip().lower()

def exact(log, testcase):
    print("compared", log["output"])
    return normalise(log["output"]) == normalise(testcase["target"]["answer"])
"""
    record = Record()
    assert await run_code(code, [LOG, TESTCASE], record) is True
    assert record.stdout == "compared Paris\n"  # not mistaken for the answer
    assert record.seconds is not None and record.seconds > 0
    record = Record()
    assert await run_code("def length(log):\n    return len(log['output'])", [LOG], record) == 5
    assert record.stdout is None


async def test_what_it_prints_before_failing_is_kept_and_bounded() -> None:
    record = Record()
    with pytest.raises(JudgmentError, match="ValueError: no"):
        await run_code("def f(log):\n    print('x' * 100000)\n    raise ValueError('no')", [LOG], record)
    assert record.stdout == "x" * 65536


async def test_text_no_store_can_hold_is_replaced() -> None:
    # A lone surrogate (no UTF-8 encoder takes one) and a NUL (PostgreSQL's text cannot hold one), in the
    # value, in what it prints and in what it raises: each would have failed the result's insert, and the
    # run would have been retried for ever.
    record = Record()
    code = "def f(log):\n    print('a\\udc00\\x00')\n    return 'b\\udc00\\x00'"
    value = await run_code(code, [LOG], record)
    assert "\x00" not in value and value.startswith("b\ufffd")
    value.encode()  # raises on a lone surrogate
    assert record.stdout is not None and "\x00" not in record.stdout
    record.stdout.encode()
    with pytest.raises(JudgmentError) as raised:
        await run_code("def f(log):\n    raise ValueError('c\\udc00\\x00')", [LOG])
    assert "\x00" not in str(raised.value)
    str(raised.value).encode()


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("def f(log):\n    return log['missing']", "KeyError: 'missing'"),
        ("def f(log:\n", "The code did not run: SyntaxError"),
        ("x = 1", "The code defines no function to call"),
        ("def f(log):\n    return {1, 2}", "The function returned a set, which is not JSON"),
        ("import sys\ndef f(log):\n    sys.exit(3)", "SystemExit: 3"),
    ],
)
async def test_what_goes_wrong_is_the_error(code: str, error: str) -> None:
    with pytest.raises(JudgmentError) as raised:
        await run_code(code, [LOG])
    assert str(raised.value).startswith(error)


async def test_a_process_that_runs_too_long_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(code_evaluators, "_WALL_SECONDS", 1.0)
    started = time.monotonic()
    with pytest.raises(JudgmentError, match="ran for more than 1 s"):
        await run_code("import time\ndef f(log):\n    time.sleep(30)", [LOG])
    assert time.monotonic() - started < 5


async def test_the_code_cannot_write_files_nor_see_the_servers_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPGATE_OPENAI_API_KEY", "sk-the-servers-own")
    target = tmp_path / "written"
    with pytest.raises(JudgmentError, match="File too large"):
        await run_code(
            f"def f(log):\n    with open({str(target)!r}, 'w') as file:\n        file.write('x')", [LOG]
        )
    assert target.stat().st_size == 0
    environment = await run_code("import os\ndef f(log):\n    return dict(os.environ)", [LOG])
    assert "LOOPGATE_OPENAI_API_KEY" not in environment and set(environment) <= {"PATH", "LC_CTYPE"}


@pytest.mark.parametrize(
    ("value", "return_type"),
    [
        (True, "boolean"),
        (2.5, "number"),
        (3, "number"),
        ("a", "select"),
        (["a", "b"], "multi_select"),
        ("t", "text"),
    ],
)
def test_values_of_the_evaluators_return_type_are_kept(value: Any, return_type: str) -> None:
    assert checked(value, return_type) == value


@pytest.mark.parametrize(
    ("value", "return_type"), [(1, "boolean"), (True, "number"), ("1", "number"), ([1], "multi_select")]
)
def test_values_of_another_type_are_an_error(value: Any, return_type: str) -> None:
    with pytest.raises(JudgmentError, match=f"returns {return_type}"):
        checked(value, return_type)


@pytest.fixture(scope="module")
def code_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = make_server(tmp_path_factory.mktemp("code-evaluators"), LOOPGATE_PYTHON_EVALUATORS="true")
    server.start()
    yield server
    server.stop()


def test_a_server_that_allows_it_runs_python_evaluators_in_a_generated_run(code_server: Server) -> None:
    with code_server.client() as client:
        run = Run(
            client, [{"inputs": {"q": "a"}, "target": {"expected": "a"}}, {"inputs": {"q": "b"}}], CHAT_CONFIG
        )
        body = {
            "name": "mentions",
            "description": "",
            "arguments_type": "target_required",
            "return_type": "boolean",
        }
        code = (
            "def mentions(log, testcase):\n"
            "    print('judging', log['output'])\n"
            "    return testcase['target']['expected'] in log['output']"
        )
        mentions = ok(client.post("/evaluators", json={**body, "type": "python", "code": code}), 201)
        created = run.start(mentions)
        run.wait(created["id"])
        first, second = run.snapshot(created["id"])
        assert first["log"]["output"] == f"{MOCK_REPLY}Answer a"
        assert results_by_evaluator(first)[mentions["id"]]["value"] is True
        missing = results_by_evaluator(second)[mentions["id"]]
        assert (
            missing["value"] is None and missing["error"] == "KeyError: 'expected'"
        )  # the second has no target
        # Each judgment is a log of the evaluator's logging project, with what the code printed.
        kept = results_by_evaluator(first)[mentions["id"]]["evaluator_log"]
        assert (kept["judgment"], kept["output"], kept["error"]) == (True, "true", None)
        assert kept["stdout"] == f"judging {MOCK_REPLY}Answer a\n"
        assert kept["config"]["type"] == "evaluator" and kept["config"]["code"] == code
        failed = missing["evaluator_log"]
        assert (failed["judgment"], failed["error"]) == (None, "KeyError: 'expected'")
        assert failed["stdout"] == f"judging {MOCK_REPLY}Answer b\n"
        assert failed["project_id"] == kept["project_id"] != run.project_id
        # Code is never run in a run the client drives, nor without code.
        refused = client.post(
            f"/projects/{run.project_id}/evaluations",
            json={
                "config_id": run.config_id,
                "dataset_id": run.dataset_id,
                "evaluator_ids": [mentions["id"]],
                "hl_generated": False,
            },
        )
        assert_422(refused, ["body", "evaluator_ids", 0])


def test_a_server_that_does_not_refuses_them(client: httpx.Client) -> None:
    run = Run(client, [{"inputs": {"q": "a"}}], {**MOCK_CONFIG})
    code = evaluator(client, "python")
    refused = client.post(
        f"/projects/{run.project_id}/evaluations",
        json={"config_id": run.config_id, "dataset_id": run.dataset_id, "evaluator_ids": [code["id"]]},
    )
    assert_422(refused, ["body", "evaluator_ids", 0])
    assert "LOOPGATE_PYTHON_EVALUATORS is off" in refused.json()["detail"][0]["msg"]
