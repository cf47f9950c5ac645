"""How an llm evaluator's answer is read as its return type (service/judges.py), and the variables its
prompt template can name."""

from __future__ import annotations

from typing import Any

import pytest

from loopgate.service.judges import Judged, JudgmentError, read, variables
from loopgate.store.datasets import DatapointRow


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        ("True", True),
        ("false", False),
        ("The answer restates the question.\nVerdict: YES", True),
        ("no.", False),
        ("It passes: pass", True),
        ("0", False),
        ("Reasoning about 1 and 2, then: False!", False),
    ],
)
def test_a_boolean_is_the_answers_last_word(answer: str, value: bool) -> None:
    assert read(answer, "boolean") is value


@pytest.mark.parametrize("answer", ["", "maybe", "True, probably not", "truest"])
def test_an_answer_that_does_not_end_in_a_boolean_is_an_error(answer: str) -> None:
    with pytest.raises(JudgmentError, match="end in true or false"):
        read(answer, "boolean")


@pytest.mark.parametrize(
    ("answer", "value"),
    [("7", 7), ("Score: 3 out of 5 -> 4.5", 4.5), ("-2", -2), ("1e3", 1000.0), ("around 10.", 10)],
)
def test_a_number_is_the_last_number_in_the_answer(answer: str, value: float) -> None:
    got = read(answer, "number")
    assert got == value and type(got) is type(value)


def test_an_answer_without_a_number_is_an_error() -> None:
    with pytest.raises(JudgmentError, match="Expected a number"):
        read("none at all", "number")


def test_select_multi_select_and_text() -> None:
    assert read("  positive \n", "select") == "positive"
    assert read("a, b\nc,, ", "multi_select") == ["a", "b", "c"]
    assert read(" as is \n", "text") == " as is \n"


def test_the_variables_a_prompt_can_name() -> None:
    log: dict[str, Any] = {
        "output": "4",
        "inputs": {"q": "2+2"},
        "messages": [{"role": "user"}],
        "error": None,
    }
    datapoint = DatapointRow(id="dp", dataset_id="ds", inputs={"q": "2+2"}, messages=None, target={"a": 4})
    found = variables(Judged(log, datapoint))
    assert found["log.output"] == "4"
    assert found["log.inputs.q"] == found["testcase.inputs.q"] == "2+2"
    assert found["log.messages"] == [{"role": "user"}]
    assert found["log.error"] == ""
    assert found["testcase.target"] == {"a": 4} and found["testcase.target.a"] == 4
    assert found["testcase.messages"] == []
