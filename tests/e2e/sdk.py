"""Running the official SDKs' scenario scripts from pytest.

Python SDK 0.7.35 (tests/e2e/sdk_*scenarios.py) lives in its own virtual environment (.venv-sdk: it pins
old dependencies), the older 0.5.18 (tests/e2e/sdk_0518_scenarios.py) in another (.venv-sdk-0518: its pins
clash with 0.7.35's); TypeScript SDK 0.5.36 (tests/e2e/ts/*_scenarios.mjs) in tests/e2e/ts/node_modules, run
by node. Either way each script runs as a subprocess against a running server and prints one JSON object of
results, ``{scenario: {"ok": true, "result": ...}}``; the tests assert on those values.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Server

SDK_PYTHON = ROOT / ".venv-sdk" / "bin" / "python"
SDK_0518_PYTHON = ROOT / ".venv-sdk-0518" / "bin" / "python"
TS_SDK = ROOT / "tests" / "e2e" / "ts"
TS_INSTALLED = TS_SDK / "node_modules" / ".installed"  # the Makefile's stamp after `npm ci`


def _run(command: list[str], **options: Any) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, **options)
    assert done.returncode == 0, f"scenario runner failed ({done.returncode}):\n{done.stderr}"
    results: dict[str, Any] = json.loads(done.stdout)
    return results


def run_scenarios(script: Path, server: Server, *names: str, python: Path = SDK_PYTHON) -> dict[str, Any]:
    """Runs a scenario script with ``python`` (an SDK environment's interpreter, 0.7.35's by default)."""
    if not python.exists():
        venv = python.parent.parent.relative_to(ROOT)
        pytest.skip(f"the SDK environment is missing: run `make {venv}/.installed` ({python})")
    command = [str(python), str(script), "--host", server.url, "--api-key", server.api_key]
    return _run([*command, "--tag", uuid.uuid4().hex[:10], *names])


def run_ts_scenarios(
    script: str, server: Server, *names: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Runs ``tests/e2e/ts/<script>`` with node; the host and key go in the environment (with ``env``), as
    a deployment would pass them."""
    node = shutil.which("node")
    if node is None or not TS_INSTALLED.exists():
        pytest.skip(
            f"the TypeScript SDK is missing: run `make {TS_INSTALLED.relative_to(ROOT)}` (needs node)"
        )
    env = {**os.environ, **(env or {}), "HL_E2E_HOST": server.url, "HL_E2E_API_KEY": server.api_key}
    return _run([node, script, "--tag", uuid.uuid4().hex[:10], *names], cwd=TS_SDK, env=env)


def run_ts_source(source: str) -> str:
    """Runs a snippet (a README example) as an ES module next to the SDK's node_modules; returns stdout."""
    node = shutil.which("node")
    if node is None or not TS_INSTALLED.exists():
        pytest.skip(
            f"the TypeScript SDK is missing: run `make {TS_INSTALLED.relative_to(ROOT)}` (needs node)"
        )
    script = TS_SDK / f".snippet-{uuid.uuid4().hex[:10]}.mjs"  # imports resolve from the file's directory
    script.write_text(source)
    try:
        command = [node, script.name]
        done = subprocess.run(command, cwd=TS_SDK, capture_output=True, text=True, timeout=60, check=False)
    finally:
        script.unlink()
    assert done.returncode == 0, f"node failed ({done.returncode}):\n{done.stderr}"
    return done.stdout


def result(results: dict[str, Any], name: str) -> Any:
    outcome = results[name]
    if not outcome["ok"]:
        pytest.fail(f"scenario {name!r} raised in the SDK process:\n{outcome['error']}")
    return outcome["result"]
