"""Time ``loopgate serve`` from Popen to its first answers, several starts in a row.

    .venv/bin/python bench/ready.py              # 5 starts
    .venv/bin/python bench/ready.py --starts 9
    mkdir -p /tmp/base && git archive HEAD src | tar -x -C /tmp/base
    .venv/bin/python bench/ready.py --baseline /tmp/base/src
    .venv/bin/python bench/ready.py --workers 2  # serve --workers 2

The same measurement as bench/run.py's "ready" step (Popen -> first 200 of GET /healthz, then of
POST /v4/chat), on a fresh SQLite database migrated by ``loopgate keys create`` beforehand and with the
built-in ``mock`` provider, so no upstream is needed. It also records the server's CPU time at that first
chat (steadier than wall time on a busy machine) and times one GET /v4/projects sent after it, which the
FastAPI application answers. Prints each start and the medians and minimums, with the load average.

``--baseline SRC`` alternates starts of the installed loopgate (or whatever the caller's PYTHONPATH
selects) with starts of the loopgate package in SRC, put first on PYTHONPATH, so both see the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import loadgen
import procs

LOOPGATE = Path(sys.executable).parent / "loopgate"
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
CHAT_BODY = json.dumps(
    {
        "project": "ready",
        "model_config": {"provider": "mock", "model": "mock-1"},
        "messages": [{"role": "user", "content": "hello"}],
    }
).encode()


class Start(NamedTuple):
    healthz_ms: float  # Popen -> first 200 of GET /healthz
    chat_ms: float  # Popen -> first 200 of POST /v4/chat (sent after /healthz answered)
    chat_cpu_ms: float  # CPU time (user + system) the server had used by then: steadier on a busy machine
    projects_ms: float  # Popen -> 200 of the GET /v4/projects sent after that chat


def one_start(env: dict[str, str], key: str, log: Path, workers: int) -> Start:
    port = procs.free_port()
    chat = loadgen.build_request(
        "127.0.0.1",
        port,
        "/v4/chat",
        CHAT_BODY,
        {"Content-Type": "application/json", "X-API-KEY": key, "Connection": "close"},
    )
    projects = f"GET /v4/projects HTTP/1.1\r\nHost: x\r\nX-API-KEY: {key}\r\nConnection: close\r\n\r\n"
    argv = [str(LOOPGATE), "serve", "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    server = procs.Managed("loopgate", argv, env=env, log=log)
    try:
        if procs.wait_until(lambda: procs.http_status(port, HEALTH) == 200, timeout=30) is None:
            raise SystemExit(f"loopgate did not become ready:\n{server.tail()}")
        health = time.perf_counter() - server.started
        if procs.http_status(port, chat, timeout=30) != 200:
            raise SystemExit(f"the first /v4/chat failed:\n{server.tail()}")
        first_chat = time.perf_counter() - server.started
        user, system = procs.cpu_seconds(procs.process_tree(server.pid))
        if procs.http_status(port, projects.encode(), timeout=30) != 200:
            raise SystemExit(f"the first GET /v4/projects failed:\n{server.tail()}")
        first_projects = time.perf_counter() - server.started
    finally:
        server.stop()
    return Start(health * 1000, first_chat * 1000, (user + system) * 1000, first_projects * 1000)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--starts", type=int, default=5, help="starts of each variant (default 5)")
    parser.add_argument("--baseline", type=Path, help="a src/ directory to compare with, start for start")
    parser.add_argument("--workers", type=int, default=1, help="loopgate serve --workers N (default 1)")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="loopgate-ready-"))
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOOPGATE_")}
    env.update(LOOPGATE_LOG_LEVEL="warning")
    variants = {"this tree": env}
    if args.baseline:
        variants = {"baseline": {**env, "PYTHONPATH": str(args.baseline.resolve())}, **variants}
    # Each variant its own database, migrated (and given a key) by its own code: two trees may differ in
    # their newest schema revision.
    keys: dict[str, str] = {}
    for number, (name, variant_env) in enumerate(variants.items()):
        variant_env["LOOPGATE_DATABASE_URL"] = f"sqlite+aiosqlite:///{directory / f'ready-{number}.db'}"
        create = [str(LOOPGATE), "keys", "create", "--name", "ready"]
        made = subprocess.run(create, env=variant_env, capture_output=True, text=True, check=True)
        keys[name] = made.stdout.splitlines()[-1]
    print(f"load average before: {procs.loadavg()}")
    starts: dict[str, list[Start]] = {name: [] for name in variants}
    for number in range(1, args.starts + 1):
        for name, variant_env in variants.items():
            start = one_start(variant_env, keys[name], directory / f"serve-{number}.out", args.workers)
            starts[name].append(start)
            print(f"{name}, start {number}: " + ", ".join(f"{k} {v:.0f}" for k, v in start._asdict().items()))
    for name, measured in starts.items():
        for field in Start._fields:
            values = [getattr(start, field) for start in measured]
            print(f"{name}: {field} median {statistics.median(values):.0f}, min {min(values):.0f}")
    print(f"load average after: {procs.loadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
