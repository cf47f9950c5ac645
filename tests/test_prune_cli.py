"""``loopgate prune`` from the command line, on each backend: it deletes only what is older than asked
(optionally of one project, found by name or id), says how much it deleted, and refuses bad arguments."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import LOOPGATE, make_server, serving
from tests.helpers import db_rows, log_body, unique


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_prune_deletes_old_logs_and_reports_counts(tmp_path: Path, backend: str) -> None:
    server = make_server(tmp_path, backend=backend)
    old, young = unique("old"), unique("young")
    long_ago = (datetime.now(UTC) - timedelta(days=45)).isoformat()
    with serving(server), server.client() as client:
        batch = [log_body(old, output=f"old {i}", created_at=long_ago) for i in range(5)]
        batch += [log_body(young, output="old too", created_at=long_ago), log_body(young, output="new")]
        created = client.post("/logs", json=batch)
        assert created.status_code == 200, created.text

    def prune(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*LOOPGATE, "prune", *args], env=server.env, capture_output=True, text=True, check=False
        )

    done = prune("--older-than", "30d", "--project", old, "--batch-size", "2")
    assert done.returncode == 0, done.stderr
    assert "Deleted 5 logs" in done.stdout
    outputs = sorted(row["output"] for row in db_rows(server.database, "SELECT output FROM logs"))
    assert outputs == ["new", "old too"]

    done = prune("--older-than", "30d")
    assert done.returncode == 0 and "Deleted 1 logs" in done.stdout
    assert [row["output"] for row in db_rows(server.database, "SELECT output FROM logs")] == ["new"]

    assert prune("--older-than", "soon").returncode == 2
    missing = prune("--older-than", "1d", "--project", "no-such-project")
    assert missing.returncode == 2 and "no-such-project" in missing.stderr
