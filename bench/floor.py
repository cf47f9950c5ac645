"""How close loopgate is to the least a Python gateway can do on this machine, measured side by side.

    .venv/bin/python bench/floor.py [--seconds 8] [--rounds 2]     # ~2 minutes

Issue 7 asks for 3,000 requests/s at c=32 and +0.5 ms p50 at c=1 with every log durable. This run puts
loopgate next to the servers of ``bench/floor_server.py``, which do a gateway's irreducible work and
nothing more, so each target can be read against what is possible here at all:

- ``direct``: nginx itself, the fixed upstream of ``bench/run.py``;
- ``bare``: a Python proxy (uvloop, httptools, orjson, keep-alive upstream connections), no log;
- ``commit``: the same, and one ~1.9 KB row per request in a durable group commit (SQLite WAL,
  ``synchronous=FULL``, five secondary indexes); the answer waits for its commit;
- ``store``: the same, with loopgate's own log writer and schema instead of the minimal table;
- ``loopgate``: ``loopgate serve``, one process, answering the benchmark's ``POST /v4/chat``.

Each server in turn, on one nginx: a 3 s warm-up, ``--rounds`` wrk runs at c=32 (requests/s, and CPU per
request of the server's processes from /proc), one at c=1 (p50/p99, and what that adds to ``direct``).
Prints a table and writes bench/results/floor-<time>.json.
"""

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import procs
import report
import wrk
from fixtures import direct_body, loopgate_body, loopgate_env, nginx_config

BENCH = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
FLOOR_MODES = ("bare", "commit", "store")
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Floor:
    def __init__(self, args: argparse.Namespace, directory: Path) -> None:
        self.args = args
        self.dir = directory
        self.upstream_port = procs.free_port()
        self.rows: list[dict[str, Any]] = []

    def env(self) -> dict[str, str]:
        return loopgate_env(self.dir / "loopgate.db", self.upstream_port)

    def start(self, name: str, argv: list[str], port: int, probe: bytes | None) -> procs.Managed:
        server = procs.Managed(name, argv, env=self.env(), log=self.dir / f"{name}.out")
        if probe is None:
            ready = procs.wait_until(lambda: "on 127.0.0.1" in server.tail(), timeout=30)
        else:
            ready = procs.wait_until(lambda: procs.http_status(port, probe) == 200, timeout=30)
        if ready is None or not server.alive():
            raise RuntimeError(f"{name} did not start:\n{server.tail()}")
        return server

    def measure(self, name: str, port: int, path: str, body: bytes, headers: str, pids: list[int]) -> None:
        body_file, headers_file = self.dir / f"{name}.json", self.dir / f"{name}.headers"
        body_file.write_bytes(body)
        headers_file.write_text(headers)

        def load(concurrency: int, seconds: float) -> dict[str, Any]:
            argv = wrk.command(
                port, path, concurrency=concurrency, duration=seconds, threads=min(2, concurrency)
            )
            before = sum(procs.cpu_seconds(pids))
            summary = wrk.run(argv, body_file, headers_file, seconds)
            bad = summary["errors_status"] + wrk.socket_errors(summary)
            if bad or not summary["requests"]:
                raise RuntimeError(
                    f"{name}: {bad} of {summary['requests']} requests failed at c={concurrency}"
                )
            summary["cpu_us_per_request"] = (
                (sum(procs.cpu_seconds(pids)) - before) / summary["requests"] * 1e6
            )
            summary["rps"] = summary["requests"] / (summary["duration_us"] / 1e6)
            return summary

        load(32, 3)
        c32 = [load(32, self.args.seconds) for _ in range(self.args.rounds)]
        c1 = load(1, self.args.seconds)
        row = {"name": name, "c32": c32, "c1": c1}
        self.rows.append(row)
        say(
            f"{name}: c=32 "
            + ", ".join(f"{r['rps']:,.0f} req/s ({r['cpu_us_per_request']:.0f} us CPU)" for r in c32)
            + f"; c=1 p50 {c1['p50_us'] / 1000:.3f} ms, p99 {c1['p99_us'] / 1000:.3f} ms"
        )

    def run(self) -> None:
        (self.dir / "nginx.conf").write_text(
            nginx_config(self.dir, self.upstream_port, workers=1, delay_ms=0)
        )
        nginx = self.start(
            "nginx",
            ["nginx", "-p", str(self.dir), "-c", str(self.dir / "nginx.conf")],
            self.upstream_port,
            HEALTH,
        )
        try:
            upstream_pids = procs.process_tree(nginx.pid)
            self.measure(
                "direct",
                self.upstream_port,
                "/v1/chat/completions",
                direct_body(stream=False, system_chars=0),
                "Authorization: Bearer sk-bench\n",
                upstream_pids,
            )
            self.measure_loopgate()
            for mode in FLOOR_MODES:
                self.measure_floor(mode)
        finally:
            nginx.stop()

    def measure_loopgate(self) -> None:
        keys = subprocess.run(
            [str(VENV_BIN / "loopgate"), "keys", "create", "--name", "floor"],
            env=self.env(),
            capture_output=True,
            text=True,
            check=True,
        )
        key = keys.stdout.strip().splitlines()[-1]
        port = procs.free_port()
        server = self.start(
            "loopgate", [str(VENV_BIN / "loopgate"), "serve", "--port", str(port)], port, HEALTH
        )
        try:
            self.measure(
                "loopgate",
                port,
                "/v4/chat",
                loopgate_body(stream=False, system_chars=0),
                f"X-API-KEY: {key}\n",
                procs.process_tree(server.pid),
            )
        finally:
            server.stop()

    def measure_floor(self, mode: str) -> None:
        database = self.dir / f"{mode}.db"
        if mode == "store":
            # loopgate's schema with its projects, configs and logs: the copied row's keys all exist.
            with sqlite3.connect(self.dir / "loopgate.db") as source, sqlite3.connect(database) as copy:
                source.backup(copy)
        port = procs.free_port()
        argv = [sys.executable, str(BENCH / "floor_server.py"), mode, str(port), str(self.upstream_port)]
        server = self.start(mode, [*argv, str(database)], port, None)
        try:
            self.measure(
                mode, port, "/v4/chat", loopgate_body(stream=False, system_chars=0), "", [server.pid]
            )
        finally:
            server.stop()

    def table(self) -> str:
        direct_p50 = self.rows[0]["c1"]["p50_us"] / 1000
        lines = []
        for row in self.rows:
            best = max(row["c32"], key=lambda r: r["rps"])
            p50, p99 = row["c1"]["p50_us"] / 1000, row["c1"]["p99_us"] / 1000
            lines.append(
                [
                    row["name"],
                    " / ".join(f"{r['rps']:,.0f}" for r in row["c32"]),
                    f"{best['cpu_us_per_request']:.0f}",
                    f"{p50:.3f} / {p99:.3f}",
                    f"{row['c1']['cpu_us_per_request']:.0f}",
                    "" if row["name"] == "direct" else f"+{p50 - direct_p50:.3f}",
                ]
            )
        header = [
            "server",
            "req/s at c=32",
            "CPU us/req",
            "c=1 p50 / p99 ms",
            "CPU us/req at c=1",
            "added p50 ms",
        ]
        return report.render(lines, header)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8, help="length of each measured wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="wrk runs at c=32 per server")
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            subprocess.run(["bash", str(BENCH / "setup.sh")], check=True)
            break
    directory = Path(tempfile.mkdtemp(prefix="loopgate-floor-"))
    floor = Floor(args, directory)
    try:
        floor.run()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(floor.table())
    results = BENCH / "results" / f"floor-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    results.write_text(json.dumps({"args": vars(args), "servers": floor.rows}, indent=1))
    say(f"results in {results.relative_to(BENCH.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
