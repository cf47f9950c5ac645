"""wrk (Debian) with bench/chat.lua: one run, parsed from the machine-readable line the script prints."""

import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent


def command(port: int, path: str, *, concurrency: int, duration: float, threads: int) -> list[str]:
    return [
        "wrk",
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{max(1, math.ceil(duration))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(BENCH / "chat.lua"),
        f"http://127.0.0.1:{port}{path}",
    ]


def run(argv: list[str], body_file: Path, headers_file: Path, duration: float) -> dict[str, Any]:
    """wrk's summary: requests, duration_us, errors_*, p50_us, p90_us, p99_us, ... (see chat.lua)."""
    env = dict(os.environ, BENCH_BODY=str(body_file), BENCH_HEADERS=str(headers_file))
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=duration + 60)
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH_WRK ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    summary: dict[str, Any] = json.loads(lines[-1].split(" ", 1)[1])
    return summary


def socket_errors(summary: dict[str, Any]) -> int:
    return sum(summary[k] for k in ("errors_connect", "errors_read", "errors_write", "errors_timeout"))
