"""Time the log browser's pages on a database seeded by ``bench/seed_logs.py``.

    .venv/bin/python bench/seed_logs.py --logs 1000000 --backend sqlite --keep /tmp/seed1m
    .venv/bin/python bench/ui_pages.py /tmp/seed1m/bench.db

Starts ``loopgate serve`` on the database, creates an API key for the seeded organization, signs in as a
browser does, and fetches each page of the ``main`` project (a warm-up, then ``--repeat`` timed fetches;
the median is printed as a Markdown table). Whole round trips over HTTP on 127.0.0.1, rendering included.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import procs

LOOPGATE = Path(sys.executable).parent / "loopgate"
ORGANIZATION = "bench"  # the name seed_logs.py gives its organization


def _pages(database: Path) -> dict[str, str]:
    connection = sqlite3.connect(database)
    try:
        (project,) = connection.execute("SELECT id FROM projects WHERE name = 'main'").fetchone()
        newest = (
            "SELECT id, session_id, config_id FROM logs WHERE project_id = ? ORDER BY created_at DESC LIMIT 1"
        )
        log_id, session_id, config_id = connection.execute(newest, (project,)).fetchone()
        (model,) = connection.execute(
            "SELECT json_extract(body, '$.model') FROM model_configs WHERE id = ?", (config_id,)
        ).fetchone()
    finally:
        connection.close()
    logs = f"/ui/projects/{project}/logs"
    return {
        "projects": "/ui/projects",
        "logs, newest page": logs,
        "logs, page 100": f"{logs}?page=100",
        "logs, search a rare word": f"{logs}?q=zanzibar",
        "logs, filter by model": f"{logs}?model={quote(model)}",
        "logs, filter by config version": f"{logs}?config={config_id}",
        "logs, filter by feedback (rating good)": f"{logs}?feedback={quote('rating:good')}",
        "logs, one day": f"{logs}?start=2025-12-01&end=2025-12-01",
        "logs, filter by session": f"{logs}?session={session_id}",
        "sessions of the project": f"/ui/projects/{project}/sessions",
        "config versions": f"/ui/projects/{project}/configs",
        "one log": f"/ui/logs/{log_id}",
        "session tree": f"/ui/sessions/{session_id}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("database", type=Path, help="the SQLite file seed_logs.py --keep left")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOOPGATE_")}
    env.update(LOOPGATE_DATABASE_URL=f"sqlite+aiosqlite:///{args.database}", LOOPGATE_LOG_LEVEL="warning")
    create = [str(LOOPGATE), "keys", "create", "--org", ORGANIZATION, "--name", "ui-bench"]
    key = subprocess.run(create, env=env, capture_output=True, text=True, check=True).stdout.splitlines()[-1]
    pages = _pages(args.database)
    port = procs.free_port()
    server = subprocess.Popen([str(LOOPGATE), "serve", "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    health = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    try:
        if procs.wait_until(lambda: procs.http_status(port, health) == 200, timeout=30) is None:
            raise SystemExit("loopgate did not start")
        with httpx.Client(base_url=base, timeout=60) as client:
            signed_in = client.post("/ui/sign-in", data={"api_key": key}, headers={"Origin": base})
            if signed_in.status_code != 303:
                raise SystemExit(f"sign-in answered {signed_in.status_code}")
            print(f"| page ({args.database.name}, median of {args.repeat}) | status | time |")
            print("|---|---|---:|")
            for name, path in pages.items():
                client.get(path)  # warm-up
                times = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    answer = client.get(path)
                    times.append(time.perf_counter() - started)
                print(f"| {name} | {answer.status_code} | {statistics.median(times) * 1000:.1f} ms |")
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
