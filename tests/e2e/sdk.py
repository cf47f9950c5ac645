"""Running the official SDK's scenario scripts (tests/e2e/sdk_*scenarios.py) from pytest.

The SDK lives in its own virtual environment (.venv-sdk: it pins old dependencies), so each script runs as a
subprocess and prints one JSON object of results; the tests assert on those values.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Server

SDK_PYTHON = ROOT / ".venv-sdk" / "bin" / "python"


def run_scenarios(script: Path, server: Server, *names: str) -> dict[str, Any]:
    if not SDK_PYTHON.exists():
        pytest.skip(f"the SDK environment is missing: run `make .venv-sdk/.installed` ({SDK_PYTHON})")
    command = [str(SDK_PYTHON), str(script), "--host", server.url, "--api-key", server.api_key]
    command += ["--tag", uuid.uuid4().hex[:10], *names]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"scenario runner failed ({done.returncode}):\n{done.stderr}"
    results: dict[str, Any] = json.loads(done.stdout)
    return results


def result(results: dict[str, Any], name: str) -> Any:
    outcome = results[name]
    if not outcome["ok"]:
        pytest.fail(f"scenario {name!r} raised in the SDK process:\n{outcome['error']}")
    return outcome["result"]
