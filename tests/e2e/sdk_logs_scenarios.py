"""End-to-end scenarios of the logs, feedback and sessions groups, driven by the official ``humanloop``
Python SDK (0.7.35).

Same contract as ``sdk_scenarios.py`` (whose helpers it reuses): runs with the SDK's own interpreter, imports
nothing from loopgate, prints ``{scenario: {"ok": true, "result": ...}}`` (or ``{"ok": false, "error":
...}``) and leaves the assertions to ``test_sdk_logs.py``.

    python sdk_logs_scenarios.py --host http://127.0.0.1:PORT/v4 --api-key KEY [--tag TAG] SCENARIO [...]

Where the SDK offers ``validate=True`` the scenarios use it, so every response also passes the SDK's own
pydantic models (without it the SDK builds them unvalidated).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sdk_scenarios import MOCK, Context, api_error, dump, run, user


def log_lifecycle(ctx: Context) -> dict[str, Any]:
    """hl.log (one and a batch), logs.get, update_by_ref, update, list, projects.export, delete."""
    project = ctx.name("logs")
    reference = ctx.name("ref")
    created = ctx.hl.log(
        project=project,
        config={**MOCK, "temperature": 0.1},
        inputs={"city": "Oslo"},
        messages=user("Weather in Oslo?"),
        output="Rainy",
        reference_id=reference,
        metadata={"team": "weather"},
        source="sdk",
        prompt_tokens=5,
        output_tokens=2,
        duration=0.5,
        created_at=datetime(2024, 1, 2, 3, 4, 5),
        feedback={"type": "rating", "value": "good"},
        provider_response={"id": "upstream-1"},
    )
    batch = ctx.hl.log(
        body=[
            {"project": project, "config": dict(MOCK), "output": "first of two", "inputs": {"city": "Rome"}},
            {"project": project, "config": dict(MOCK), "output": "second of two"},
        ]
    )
    got = ctx.hl.logs.get(id=created.id, validate=True)
    by_reference = ctx.hl.logs.update_by_ref(reference_id=reference, output="Sunny", validate=True)
    by_id = ctx.hl.logs.update(id=created.id, error="late error", duration=1.25, validate=True)
    project_id = created.project_id
    first_page = ctx.hl.logs.list(project_id=project_id, size=2, validate=True)
    second_page = ctx.hl.logs.list(project_id=project_id, size=2, page=1, validate=True)
    searched = ctx.hl.logs.list(project_id=project_id, search="OSLO")
    # The SDK types start_date / end_date as date | datetime but only sends strings.
    dated = ctx.hl.logs.list(project_id=project_id, start_date="2024-01-02", end_date="2024-01-02")
    exported = ctx.hl.projects.export(id=project_id, validate=True)
    deleted = ctx.hl.logs.delete(id=[item.id for item in batch])
    return {
        "created": dump(created),
        "batch": [dump(item) for item in batch],
        "got": dump(got),
        "attributes": {
            "output": got.output,
            "config_model": got.config.model,
            "config_type": got.config.type,
            "feedback_value": got.feedback[0].value,
            "tokens": got.tokens,
            "created_at": got.created_at.isoformat(),
        },
        "by_reference": dump(by_reference),
        "by_id": dump(by_id),
        "first_page": dump(first_page),
        "second_page": dump(second_page),
        "searched": [record.id for record in searched.records],
        "dated": [record.id for record in dated.records],
        "exported": dump(exported),
        "deleted": deleted,
        "gone": [api_error(lambda log_id=item.id: ctx.hl.logs.get(id=log_id)) for item in batch],
        "after": [record.id for record in ctx.hl.logs.list(project_id=project_id).records],
    }


def feedback(ctx: Context) -> dict[str, Any]:
    """hl.feedback: one item, a list, unset, and the 422 / 404 it answers to bad input."""
    log = ctx.hl.log(project=ctx.name("feedback"), config=dict(MOCK), output="rate me")
    one = ctx.hl.feedback(type="rating", value="good", data_id=log.id, user="reviewer@example.com")
    many = ctx.hl.feedback(
        body=[
            {"type": "comment", "value": "Clear answer", "data_id": log.id},
            {"type": "action", "value": ["copied"], "data_id": log.id},
        ]
    )
    before_unset = ctx.hl.logs.get(id=log.id, validate=True)
    unset = ctx.hl.feedback(type="rating", unset=True, data_id=log.id)
    return {
        "one": dump(one),
        "many": [dump(item) for item in many],
        "before_unset": [dump(item) for item in before_unset.feedback],
        "unset": dump(unset),
        "after_unset": [dump(item) for item in ctx.hl.logs.get(id=log.id).feedback],
        "bad_label": api_error(lambda: ctx.hl.feedback(type="rating", value="meh", data_id=log.id)),
        "unknown_type": api_error(lambda: ctx.hl.feedback(type="mood", value="happy", data_id=log.id)),
        "unknown_log": api_error(
            lambda: ctx.hl.feedback(type="rating", value="good", data_id="data_doesnotexist000000000")
        ),
    }


def sessions(ctx: Context) -> dict[str, Any]:
    """hl.sessions.create / get / list."""
    project = ctx.name("sessions")
    created = ctx.hl.sessions.create()
    empty = ctx.hl.sessions.get(id=created.id, validate=True)
    first = ctx.hl.log(
        project=project, config=dict(MOCK), session_id=created.id, inputs={"turn": 1}, output="one"
    )
    second = ctx.hl.log(
        project=project, config=dict(MOCK), session_id=created.id, parent_id=first.id, output="two"
    )
    other = ctx.hl.log(project=project, config=dict(MOCK), session_reference_id=ctx.name("other"), output="x")
    return {
        "created": dump(created),
        "empty": dump(empty),
        "logs": {"first": dump(first), "second": dump(second), "other": dump(other)},
        "got": dump(ctx.hl.sessions.get(id=created.id, validate=True)),
        "listed": dump(ctx.hl.sessions.list(project_id=first.project_id, validate=True)),
        "paged": dump(ctx.hl.sessions.list(project_id=first.project_id, page=2, size=1)),
        "missing": api_error(lambda: ctx.hl.sessions.get(id="sesh_doesnotexist000000000")),
    }


def session_tree(ctx: Context) -> dict[str, Any]:
    """The issue's scenario: a parent call logged by reference id with no output yet, two child chats nested
    under it, the parent's output filled in later, feedback on a child, the session read back as a tree."""
    project = ctx.name("tree")
    session_reference = ctx.name("conversation")
    parent_reference = ctx.name("parent-call")
    parent = ctx.hl.log(
        project=project,
        config={**MOCK, "name": "planner"},
        session_reference_id=session_reference,
        reference_id=parent_reference,
        inputs={"goal": "plan a trip"},
        output=None,
    )
    children = [
        ctx.hl.chat(
            project=project,
            model_config=dict(MOCK),
            messages=user(text),
            session_reference_id=session_reference,
            parent_reference_id=parent_reference,
        )
        for text in ("find flights", "find hotels")
    ]
    updated = ctx.hl.logs.update_by_ref(reference_id=parent_reference, output="trip planned")
    rated = ctx.hl.feedback(type="rating", value="good", data_id=children[1].data[0].id)
    session = ctx.hl.sessions.get(id=parent.session_id, validate=True)
    # SessionResponse has no field for the logs; loopgate adds ``datapoints``, which the typed model drops,
    # so it is read from the raw response as a client rebuilding the tree would.
    raw = ctx.hl.sessions.raw.get(id=parent.session_id).body
    return {
        "references": {"session": session_reference, "parent": parent_reference},
        "parent": dump(parent),
        "children": [dump(child) for child in children],
        "updated": dump(updated),
        "feedback": dump(rated),
        "session": dump(session),
        "datapoints": raw["datapoints"],
        "child_logs": [dump(ctx.hl.logs.get(id=child.data[0].id, validate=True)) for child in children],
    }


def log_errors(ctx: Context) -> dict[str, Any]:
    project = ctx.name("log-errors")
    reference = ctx.name("taken")
    ctx.hl.log(project=project, config=dict(MOCK), reference_id=reference)
    return {
        "reused_reference": api_error(
            lambda: ctx.hl.log(project=project, config=dict(MOCK), reference_id=reference)
        ),
        "no_config": api_error(lambda: ctx.hl.log(project=project, output="x")),
        "unknown_config": api_error(
            lambda: ctx.hl.log(project=project, config_id="config_doesnotexist0000000")
        ),
        "unknown_log": api_error(lambda: ctx.hl.logs.get(id="data_doesnotexist000000000")),
        "unknown_reference": api_error(
            lambda: ctx.hl.logs.update_by_ref(reference_id=ctx.name("missing"), output="x")
        ),
        "unknown_project": api_error(lambda: ctx.hl.logs.list(project_id="pr_doesnotexist000000000")),
    }


SCENARIOS: dict[str, Callable[[Context], Any]] = {
    "log_lifecycle": log_lifecycle,
    "feedback": feedback,
    "sessions": sessions,
    "session_tree": session_tree,
    "log_errors": log_errors,
}


def main(argv: list[str]) -> int:
    return run(SCENARIOS, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
