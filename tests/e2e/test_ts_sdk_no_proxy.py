"""TypeScript SDK 0.5.36's ``completeDeployedNoProxy``: the SDK calls OpenAI itself and logs the call to
loopgate afterwards, with the deployed config it read back. OpenAI is fakellm on loopback (the SDK's
``openai`` package honours ``OPENAI_BASE_URL``); the log must land on the deployed config version.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server, fakellm_process
from tests.e2e.sdk import result, run_ts_scenarios

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fakellm_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with fakellm_process(tmp_path_factory.mktemp("fakellm")) as (port, _):
        yield port


@pytest.fixture(scope="module")
def ts(server: Server, fakellm_port: int) -> dict[str, Any]:
    env = {"OPENAI_BASE_URL": f"http://127.0.0.1:{fakellm_port}/v1", "OPENAI_API_KEY": ""}
    return run_ts_scenarios("no_proxy_scenarios.mjs", server, "no_proxy", env=env)


def test_the_call_made_elsewhere_is_logged_under_the_deployed_config(
    ts: dict[str, Any], client: httpx.Client
) -> None:
    got = result(ts, "no_proxy")
    config = got["registered"]["config"]
    (item,) = got["response"]["data"]
    assert item["output"]  # fakellm's deterministic echo, through the SDK's own mapping
    assert item["model_config_id"] == config["id"]

    (listed,) = got["logs"]
    log = client.get(f"/logs/{listed['id']}").json()
    assert log["config_id"] == config["id"], "an extra config version was made for the deployed one"
    assert log["project_id"] == got["registered"]["project_id"]
    assert (log["output"], log["inputs"]) == (item["output"], {"word": "hello"})
    assert log["metadata"]["noProxy"] is True
    assert log["session_id"].startswith("sesh_")
    assert log["session_reference_id"].startswith("e2e-ts-session-")
