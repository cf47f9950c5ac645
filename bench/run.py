"""loopgate benchmark: the same chat request straight at a fast upstream and through loopgate, side by side.

    .venv/bin/python bench/run.py            # 3-5 minutes (make bench); the RSS soak is capped
    .venv/bin/python bench/run.py --quick    # ~1 minute, 20,000 requests for the RSS figure

One run, in a fresh temporary directory with a fresh SQLite database (synchronous=FULL, WAL):

1. nginx (Debian) on 127.0.0.1 answers POST /v1/chat/completions with a fixed chat.completion, or with a
   fixed SSE stream when the provider key is the stream key (nginx cannot read JSON bodies; loopgate
   forwards the per-request key, so the client chooses the shape for both paths alike).
2. ``loopgate keys create``, then ``loopgate serve``: time from Popen to the first 200 of /healthz and of
   /v4/chat; RSS of the process tree.
3. Concurrency 1, timed request by request with bench/loadgen.py: latency p50/p99 direct vs through
   loopgate, and for streams the time to the first text event (TTFT).
4. wrk (Debian) with bench/chat.lua at concurrency 32 and 64 (and streams at 32): requests/s direct vs
   through loopgate, errors, loopgate CPU per request; for each loopgate run the logs the database gained
   against the 200s wrk saw.
5. An exact durability check: a fixed number of requests at concurrency 32, every response kept, every
   log id it names looked up in the database.
6. More wrk load until loopgate has logged ``--rss-requests`` requests; RSS again.
7. Stop loopgate, checkpoint the WAL, measure the database: bytes per log, per table.

Prints a table and writes everything (with the exact commands) to bench/results/<time>.json.
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import loadgen
import procs
import report
import wrk
from fixtures import (
    DOOR,
    ECHO_MODULE,
    LOOPGATE,
    Target,
    direct_body,
    door_body,
    loopgate_body,
    loopgate_env,
    nginx_config,
)
from peers import PEERS

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_BIN = Path(sys.executable).parent


# -- the benchmark ---------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dir = Path(tempfile.mkdtemp(prefix="loopgate-bench-"))
        self.db_path = self.dir / "bench.db"
        self.nginx: procs.Managed | None = None
        self.loopgate: procs.Managed | None = None
        self.peer = PEERS[args.peer](self.dir) if args.peer else None
        self.results: dict[str, Any] = {"commands": {}, "phases": {}}
        self.loopgate_served = 0  # requests loopgate has answered, by our own count

    # ---- helpers

    def say(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def env(self) -> dict[str, str]:
        return loopgate_env(
            self.db_path, self.upstream_port, LOOPGATE_SQLITE_SYNCHRONOUS=self.args.sqlite_synchronous
        )

    def loopgate_pids(self) -> list[int]:
        assert self.loopgate is not None
        return procs.process_tree(self.loopgate.pid)

    def nginx_pids(self) -> list[int]:
        assert self.nginx is not None
        return procs.process_tree(self.nginx.pid)

    def pids_of(self, target: Target) -> list[int]:
        """The processes whose CPU a run against ``target`` charges: the gateway's, or nginx's."""
        if target.name in (LOOPGATE, DOOR):
            return self.loopgate_pids()
        if self.peer is not None and target.name == self.peer.name:
            return self.peer.pids()
        return self.nginx_pids()

    def db_counts(self) -> dict[str, int]:
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=30)) as db:
            rows = db.execute("SELECT status, count(*) FROM logs GROUP BY status").fetchall()
        counts = dict(rows)
        counts["total"] = sum(counts.values())
        return counts

    def settled_log_count(self, timeout: float = 15.0) -> int:
        """The log count once it stops moving (requests cut off at the end of a run still finish)."""
        last, stable_since, started = -1, time.perf_counter(), time.perf_counter()
        while time.perf_counter() - started < timeout:
            count = self.db_counts()["total"]
            if count != last:
                last, stable_since = count, time.perf_counter()
            elif time.perf_counter() - stable_since >= 0.3:
                break
            time.sleep(0.05)
        return last

    # ---- setup

    def ensure_tools(self) -> None:
        missing = [tool for tool in ("nginx", "wrk") if shutil.which(tool) is None]
        if self.args.upstream_delay_ms > 0 and not ECHO_MODULE.exists():
            missing.append("nginx echo module")
        if missing:
            self.say(f"missing {', '.join(missing)}: running bench/setup.sh")
            subprocess.run(["bash", str(BENCH / "setup.sh")], check=True)

    def start_upstream(self) -> None:
        self.upstream_port = procs.free_port()
        config = self.dir / "nginx.conf"
        config.write_text(
            nginx_config(
                self.dir,
                self.upstream_port,
                workers=self.args.nginx_workers,
                delay_ms=self.args.upstream_delay_ms,
            )
        )
        argv = ["nginx", "-p", str(self.dir), "-c", str(config)]
        self.results["commands"]["upstream"] = " ".join(argv)
        self.nginx = procs.Managed("nginx", argv, env=dict(os.environ), log=self.dir / "nginx.out")
        probe = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        if procs.wait_until(lambda: procs.http_status(self.upstream_port, probe) == 200, timeout=10) is None:
            raise RuntimeError(f"nginx did not start:\n{self.nginx.tail()}")
        self.say(f"upstream: nginx on 127.0.0.1:{self.upstream_port} ({self.args.nginx_workers} worker)")

    def create_key(self) -> str:
        argv = [str(VENV_BIN / "loopgate"), "keys", "create", "--name", "bench"]
        started = time.perf_counter()
        done = subprocess.run(argv, env=self.env(), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"loopgate keys create failed:\n{done.stdout}\n{done.stderr}")
        self.results["keys_create_s"] = time.perf_counter() - started
        self.results["commands"]["keys"] = "loopgate keys create --name bench"
        return done.stdout.strip().splitlines()[-1]

    def start_loopgate(self, key: str) -> None:
        self.loopgate_port = procs.free_port()
        argv = [str(VENV_BIN / "loopgate"), "serve", "--port", str(self.loopgate_port)]
        if self.args.workers:
            argv += ["--workers", str(self.args.workers)]
        self.results["commands"]["loopgate"] = " ".join(
            [f"{k}={v}" for k, v in sorted(self.env().items()) if k.startswith("LOOPGATE_")]
            + ["loopgate", *argv[1:]]
        )
        self.loopgate = procs.Managed("loopgate", argv, env=self.env(), log=self.dir / "loopgate.out")
        health = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        first_health = procs.wait_until(
            lambda: procs.http_status(self.loopgate_port, health) == 200, timeout=30
        )
        if first_health is None or not self.loopgate.alive():
            raise RuntimeError(f"loopgate did not become ready:\n{self.loopgate.tail()}")
        ready_health = time.perf_counter() - self.loopgate.started
        rss_ready = procs.rss_kib(self.loopgate_pids())
        chat = loadgen.build_request(
            "127.0.0.1",
            self.loopgate_port,
            "/v4/chat",
            loopgate_body(stream=False, system_chars=self.args.system_prompt_chars),
            {"Content-Type": "application/json", "X-API-KEY": key, "Connection": "close"},
        )
        first = procs.http_status(self.loopgate_port, chat, timeout=30)
        ready_chat = time.perf_counter() - self.loopgate.started
        if first != 200:
            raise RuntimeError(f"first /v4/chat answered {first}:\n{self.loopgate.tail()}")
        self.loopgate_served += 1
        self.results["ready"] = {
            "healthz_s": ready_health,
            "first_chat_s": ready_chat,
            "rss_at_ready_kib": rss_ready,
            "processes": len(self.loopgate_pids()),
        }
        self.say(
            f"loopgate on 127.0.0.1:{self.loopgate_port}: /healthz 200 after {ready_health * 1000:.0f} ms, "
            f"first /v4/chat 200 after {ready_chat * 1000:.0f} ms"
        )

    # ---- measurements

    def concurrency_one(self, targets: list[Target], *, stream: bool) -> None:
        count = self.args.c1_stream_requests if stream else self.args.c1_requests
        kind = "stream" if stream else "plain"
        for target in targets:
            raw = target.raw(stream=stream)
            loadgen.run_sync(
                "127.0.0.1", target.port, raw, count=self.args.c1_warmup, concurrency=1, sse=stream
            )
            watched = self.pids_of(target)
            cpu_before = sum(procs.cpu_seconds(watched))
            stats = loadgen.run_sync("127.0.0.1", target.port, raw, count=count, concurrency=1, sse=stream)
            cpu_used = sum(procs.cpu_seconds(watched)) - cpu_before
            total = self.args.c1_warmup + count
            if target.name in (LOOPGATE, DOOR):
                self.loopgate_served += total
            phase: dict[str, Any] = {
                "requests": stats.requests,
                "statuses": dict(stats.statuses),
                "p50_ms": loadgen.percentile(stats.latencies, 50) * 1000,
                "p90_ms": loadgen.percentile(stats.latencies, 90) * 1000,
                "p99_ms": loadgen.percentile(stats.latencies, 99) * 1000,
                "mean_ms": sum(stats.latencies) / len(stats.latencies) * 1000,
                "server_cpu_us_per_request": cpu_used / count * 1e6,
            }
            if stream:
                phase["ttft_p50_ms"] = loadgen.percentile(stats.ttfts, 50) * 1000
                phase["ttft_p99_ms"] = loadgen.percentile(stats.ttfts, 99) * 1000
                phase["ttft_seen"] = len(stats.ttfts)
            self.results["phases"][f"c1_{kind}_{target.name}"] = phase
            extra = f", TTFT p50 {phase['ttft_p50_ms']:.3f} ms" if stream else ""
            self.say(
                f"c=1 {kind:6} {target.name:8}: {count} requests, p50 {phase['p50_ms']:.3f} ms, "
                f"p99 {phase['p99_ms']:.3f} ms{extra}, statuses {dict(stats.statuses)}, "
                f"server CPU {phase['server_cpu_us_per_request']:.0f} us/req"
            )

    def wrk(
        self, target: Target, *, concurrency: int, duration: float, stream: bool, label: str
    ) -> dict[str, Any]:
        body_file = self.dir / f"body-{target.name}-{int(stream)}.json"
        body_file.write_bytes(target.bodies[stream])
        headers_file = self.dir / f"headers-{target.name}-{int(stream)}.txt"
        headers_file.write_text(target.wrk_headers(stream=stream))
        threads = max(1, min(self.args.threads, concurrency))
        argv = wrk.command(
            target.port, target.path, concurrency=concurrency, duration=duration, threads=threads
        )
        is_loopgate = target.name in (LOOPGATE, DOOR)
        logs_before = self.settled_log_count() if is_loopgate else 0
        watched = self.pids_of(target)
        cpu_before = procs.cpu_seconds(watched)
        raw = wrk.run(argv, body_file, headers_file, duration)
        cpu_after = procs.cpu_seconds(watched)
        cpu_user, cpu_system = (after - before for after, before in zip(cpu_after, cpu_before, strict=True))
        cpu_used = cpu_user + cpu_system
        errors = wrk.socket_errors(raw)
        ok = raw["requests"] - raw["errors_status"]
        result: dict[str, Any] = {
            "command": f"BENCH_BODY={body_file.name} BENCH_HEADERS={headers_file.name} "
            + " ".join(argv[:-3])
            + f" -s bench/chat.lua http://127.0.0.1:PORT{target.path}",
            "concurrency": concurrency,
            "threads": threads,
            "requests": raw["requests"],
            "rps": raw["requests"] / (raw["duration_us"] / 1e6),
            "non_2xx": raw["errors_status"],
            "socket_errors": errors,
            "p50_ms": raw["p50_us"] / 1000,
            "p90_ms": raw["p90_us"] / 1000,
            "p99_ms": raw["p99_us"] / 1000,
            "max_ms": raw["latency_max_us"] / 1000,
            "cpu_s": cpu_used,
            "cpu_us_per_request": cpu_used / raw["requests"] * 1e6 if raw["requests"] else None,
            "cpu_user_us_per_request": cpu_user / raw["requests"] * 1e6 if raw["requests"] else None,
            "cpu_system_us_per_request": cpu_system / raw["requests"] * 1e6 if raw["requests"] else None,
        }
        if is_loopgate:
            self.loopgate_served += raw["requests"]
            gained = self.settled_log_count() - logs_before
            result["logs_gained"] = gained
            result["ok_seen"] = ok
            # wrk stops mid-flight: a request it cut off may still have been answered (and logged).
            result["cut_off_in_flight"] = gained - ok
            result["durable"] = 0 <= gained - ok <= concurrency
        self.results["phases"][label] = result
        extra = (
            f", logs +{result['logs_gained']} for {ok} 200s (cut off: {result['cut_off_in_flight']})"
            if is_loopgate
            else ""
        )
        self.say(
            f"{label} (wrk -c{concurrency}): {result['rps']:.0f} req/s, "
            f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, "
            f"non-2xx {result['non_2xx']}, socket errors {errors}, "
            f"{'nginx' if target.name == 'direct' else target.name} CPU "
            f"{result['cpu_us_per_request']:.0f} us/req "
            f"({result['cpu_user_us_per_request']:.0f} user){extra}"
        )
        return result

    def exact_check(self, loopgate: Target, *, stream: bool) -> None:
        count = self.args.exact_stream_requests if stream else self.args.exact_requests
        raw = loopgate.raw(stream=stream)
        stats = loadgen.run_sync(
            "127.0.0.1", loopgate.port, raw, count=count, concurrency=32, sse=stream, collect_ids=True
        )
        self.loopgate_served += count
        found = 0
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=30)) as db:
            for start in range(0, len(stats.log_ids), 500):
                batch = stats.log_ids[start : start + 500]
                marks = ",".join("?" * len(batch))
                query = f"SELECT count(*) FROM logs WHERE id IN ({marks})"  # noqa: S608 -- placeholders only
                found += db.execute(query, batch).fetchone()[0]
        result = {
            "requests": count,
            "concurrency": 32,
            "rps": stats.rps,
            "statuses": dict(stats.statuses),
            "ids_returned": len(stats.log_ids),
            "responses_without_id": stats.missing_ids,
            "ids_found_in_db": found,
            "durable": stats.statuses.get(200, 0) == count == len(stats.log_ids) == found,
        }
        self.results["phases"][f"exact_{'stream' if stream else 'plain'}"] = result
        self.say(
            f"exact {'stream' if stream else 'plain'}: {count} requests at c=32 ({stats.rps:.0f} req/s), "
            f"statuses {dict(stats.statuses)}, {len(stats.log_ids)} log ids returned, {found} in the database"
        )

    def client_ceiling(self, direct: Target) -> None:
        """How fast bench/loadgen.py itself goes (against nginx): it must not be what limits loopgate."""
        stats = loadgen.run_sync(
            "127.0.0.1",
            direct.port,
            direct.raw(stream=False),
            count=20000,
            concurrency=32,
            keep_latencies=False,
        )
        self.results["loadgen_ceiling_rps"] = stats.rps
        self.say(f"bench/loadgen.py against nginx at c=32: {stats.rps:.0f} req/s (its own ceiling)")

    def soak(self, loopgate: Target) -> None:
        """wrk at c=32 until loopgate has logged --rss-requests requests, RSS sampled along the way."""
        target = self.args.rss_requests
        samples = [(self.db_counts()["total"], procs.rss_kib(self.loopgate_pids()))]
        deadline = time.perf_counter() + self.args.soak_max_seconds
        rate = max(self.results["phases"].get("wrk_c32_plain_loopgate", {}).get("rps", 1000.0), 200.0)
        round_ = 0
        while samples[-1][0] < target and time.perf_counter() < deadline:
            left = target - samples[-1][0]
            seconds = min(max(2.0, left / rate * 1.05), 20.0, max(1.0, deadline - time.perf_counter()))
            result = self.wrk(
                loopgate, concurrency=32, duration=round(seconds, 1), stream=False, label=f"soak_{round_}"
            )
            rate = max(result["rps"], 200.0)
            samples.append((self.db_counts()["total"], procs.rss_kib(self.loopgate_pids())))
            round_ += 1
        self.results["rss_samples"] = [{"logs": n, "rss_kib": kib} for n, kib in samples]

    def profile(self, loopgate: Target) -> None:
        """py-spy on loopgate under wrk at c=32 and at c=1, in extra runs that no reported number uses."""
        pids = self.loopgate_pids()
        pid = pids[-1] if len(pids) > 1 else pids[0]  # with --workers N: one of the workers
        duration = max(5, int(self.args.duration))
        self.results["profiles"] = {}
        for concurrency in (32, 1):
            output = self.dir / f"profile-c{concurrency}.txt"
            argv = [
                self.args.py_spy,
                "record",
                "--pid",
                str(pid),
                "--rate",
                "200",
                "--duration",
                str(duration),
                "--format",
                "raw",
                "--output",
                str(output),
                "--threads",
            ]
            spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1.0)
            label = f"profiled_c{concurrency}_plain_loopgate"
            self.wrk(loopgate, concurrency=concurrency, duration=duration, stream=False, label=label)
            _, err = spy.communicate(timeout=60)
            if not output.exists():
                self.say(f"py-spy produced nothing: {err.decode(errors='replace')[-500:]}")
                continue
            destination = BENCH / "results" / f"profile-{self.stamp}-c{concurrency}.txt"
            shutil.copy(output, destination)
            self.results["profiles"][f"c{concurrency}"] = str(destination.relative_to(ROOT))
            self.say(
                f"py-spy profile at c={concurrency} in {destination.relative_to(ROOT)}; "
                f"summary: .venv/bin/python bench/profile_summary.py {destination.relative_to(ROOT)}"
            )

    def measure_door(self, door: Target) -> None:
        """c=1 and c=32 through ``POST /v1/chat/completions``, logged exactly as /v4/chat logs."""
        self.concurrency_one([door], stream=False)
        self.concurrency_one([door], stream=True)
        self.wrk(
            door, concurrency=32, duration=self.args.duration, stream=False, label=f"wrk_c32_plain_{DOOR}"
        )
        streams = self.args.stream_concurrency
        label = f"wrk_c{streams}_stream_{DOOR}"
        self.wrk(door, concurrency=streams, duration=self.args.duration, stream=True, label=label)

    def measure_peer(self, direct: Target) -> None:
        """The same c=1 and wrk runs through the other gateway (loopgate idles meanwhile)."""
        assert self.peer is not None
        ready = self.peer.start(self.upstream_port)
        self.results["peer"] = {
            "name": self.peer.name,
            "requirement": self.peer.requirement,
            "ready_s": ready,
        }
        self.say(f"{self.peer.requirement} on 127.0.0.1:{self.peer.port}: first 200 after {ready:.1f} s")
        peer = self.peer.target(self.args.system_prompt_chars)
        self.concurrency_one([peer], stream=False)
        self.concurrency_one([peer], stream=True)
        for concurrency in self.args.concurrency:
            label = f"wrk_c{concurrency}_plain_{peer.name}"
            self.wrk(peer, concurrency=concurrency, duration=self.args.duration, stream=False, label=label)
        streams = self.args.stream_concurrency
        label = f"wrk_c{streams}_stream_{peer.name}"
        self.wrk(peer, concurrency=streams, duration=self.args.duration, stream=True, label=label)
        self.peer.stop()

    def database_report(self, shutdown_s: float) -> None:
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=30)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            logs = db.execute("SELECT count(*) FROM logs").fetchone()[0]
            statuses = dict(db.execute("SELECT status, count(*) FROM logs GROUP BY status").fetchall())
            blobs = db.execute("SELECT count(*) FROM blobs").fetchone()[0]
            payload = db.execute("SELECT avg(length(payload)) FROM logs").fetchone()[0]
            try:
                per_table = dict(
                    db.execute(
                        "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
                    ).fetchall()
                )
            except sqlite3.OperationalError:
                per_table = {}
        size = self.db_path.stat().st_size
        wal = self.db_path.with_name(self.db_path.name + "-wal")
        self.results["database"] = {
            "logs": logs,
            "statuses": statuses,
            "blobs": blobs,
            "file_bytes": size,
            "wal_bytes_after_checkpoint": wal.stat().st_size if wal.exists() else 0,
            "bytes_per_log": size / logs if logs else None,
            "avg_payload_chars": payload,
            "bytes_by_table_or_index": per_table,
            "shutdown_s": shutdown_s,
        }
        self.say(
            f"database: {logs} logs {statuses}, {blobs} blobs, {size / 1e6:.1f} MB -> "
            f"{size / max(logs, 1):.0f} bytes per log; loopgate stopped in {shutdown_s:.2f} s"
        )

    # ---- the run

    def run(self) -> dict[str, Any]:
        args = self.args
        self.stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.results.update(
            started=self.stamp,
            argv=sys.argv[1:],
            machine={"nproc": os.cpu_count(), "loadavg_at_start": procs.loadavg()},
            versions=_versions(),
        )
        (BENCH / "results").mkdir(exist_ok=True)
        self.ensure_tools()
        if self.peer is not None:
            self.peer.install(self.say)  # before anything is measured: pip is busy for a minute or two
        self.start_upstream()
        key = self.create_key()
        self.start_loopgate(key)
        s = args.system_prompt_chars
        direct = Target(
            "direct",
            self.upstream_port,
            "/v1/chat/completions",
            {},
            {
                False: direct_body(stream=False, system_chars=s),
                True: direct_body(stream=True, system_chars=s),
            },
            upstream_key=("Authorization", "Bearer "),
        )
        through = Target(
            LOOPGATE,
            self.loopgate_port,
            "/v4/chat",
            {"X-API-KEY": key},
            {
                False: loopgate_body(stream=False, system_chars=s),
                True: loopgate_body(stream=True, system_chars=s),
            },
        )
        targets = [direct, through]
        # The same calls through loopgate's OpenAI-compatible door: the format a peer gateway is driven in.
        door = Target(
            DOOR,
            self.loopgate_port,
            "/v1/chat/completions",
            {"Authorization": f"Bearer {key}"},
            {False: door_body(stream=False, system_chars=s), True: door_body(stream=True, system_chars=s)},
            upstream_key=("X-Provider-Api-Key", ""),
        )

        self.concurrency_one(targets, stream=False)
        self.concurrency_one(targets, stream=True)
        self.results["rss_after_warmup_kib"] = procs.rss_kib(self.loopgate_pids())
        self.results["logs_at_warmup"] = self.db_counts()["total"]
        self.client_ceiling(direct)
        for concurrency in args.concurrency:
            for target in targets:
                label = f"wrk_c{concurrency}_plain_{target.name}"
                self.wrk(target, concurrency=concurrency, duration=args.duration, stream=False, label=label)
        for target in targets:
            label = f"wrk_c{args.stream_concurrency}_stream_{target.name}"
            self.wrk(
                target, concurrency=args.stream_concurrency, duration=args.duration, stream=True, label=label
            )
        self.measure_door(door)
        self.exact_check(through, stream=False)
        self.exact_check(through, stream=True)
        self.soak(through)
        self.results["rss_after_soak_kib"] = procs.rss_kib(self.loopgate_pids())
        self.results["logs_at_soak_end"] = self.db_counts()["total"]
        if self.peer is not None:
            self.measure_peer(direct)
        if args.py_spy:
            self.profile(through)
        assert self.loopgate is not None
        shutdown = self.loopgate.stop()
        self.database_report(shutdown)
        self.results["loopgate_log_tail"] = self.loopgate.tail(20)
        self.results["machine"]["loadavg_at_end"] = procs.loadavg()
        return self.results

    def cleanup(self) -> None:
        if self.peer is not None:
            self.peer.stop()
        for managed in (self.loopgate, self.nginx):
            if managed is not None:
                managed.stop(signal.SIGTERM if managed is self.loopgate else signal.SIGQUIT)
        if self.args.keep:
            self.say(f"kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def _versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for argv, name in ((["nginx", "-v"], "nginx"), (["wrk", "-v"], "wrk")):
        with contextlib.suppress(OSError):
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            versions[name] = (done.stdout + done.stderr).strip().splitlines()[0]
    with contextlib.suppress(OSError):
        done = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "src"], capture_output=True, text=True
        )
        versions["loopgate_commit"] = done.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    return versions


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="~1 minute: shorter runs, 20,000-request RSS soak"
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="loopgate serve --workers N (default: its own)"
    )
    parser.add_argument("--duration", type=float, help="seconds per wrk run (default 8; quick 3)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 64], help="wrk concurrencies")
    parser.add_argument("--stream-concurrency", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--c1-requests", type=int, help="timed requests at c=1 (default 2000; quick 1000)")
    parser.add_argument(
        "--c1-stream-requests", type=int, help="timed streams at c=1 (default 1000; quick 500)"
    )
    parser.add_argument("--c1-warmup", type=int, default=200, help="untimed requests before each c=1 run")
    parser.add_argument(
        "--exact-requests", type=int, help="exact durability check (default 5000; quick 1000)"
    )
    parser.add_argument(
        "--exact-stream-requests", type=int, help="same for streams (default 2000; quick 500)"
    )
    parser.add_argument(
        "--rss-requests", type=int, help="logs before the last RSS (default 100000; quick 20000)"
    )
    parser.add_argument("--soak-max-seconds", type=float, default=240.0, help="bound on the RSS soak")
    parser.add_argument(
        "--upstream-delay-ms",
        type=float,
        default=0.0,
        help="fixed upstream delay, whole ms (nginx echo module)",
    )
    parser.add_argument("--nginx-workers", type=int, default=1)
    parser.add_argument(
        "--sqlite-synchronous",
        default="FULL",
        choices=["FULL", "NORMAL", "EXTRA"],
        help="LOOPGATE_SQLITE_SYNCHRONOUS (FULL, the default, is the durable setting the targets are for)",
    )
    parser.add_argument("--system-prompt-chars", type=int, default=0, help="add a system prompt this long")
    parser.add_argument(
        "--py-spy", metavar="PATH", help="py-spy binary: profile loopgate in two extra wrk runs, c=32 and c=1"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, DB)")
    parser.add_argument(
        "--peer",
        choices=sorted(PEERS),
        help="also measure this gateway (installed once into .venv-peer-NAME) behind the same upstream",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "duration": (8.0, 3.0),
        "c1_requests": (2000, 1000),
        "c1_stream_requests": (1000, 500),
        "exact_requests": (5000, 1000),
        "exact_stream_requests": (2000, 500),
        "rss_requests": (100_000, 20_000),
    }
    for name, (full, short) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, short if quick else full)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    started = time.perf_counter()
    try:
        results = bench.run()
    except KeyboardInterrupt:
        bench.say("interrupted; cleaning up")
        return 130
    except Exception as exc:
        bench.say(f"benchmark failed: {exc}")
        if bench.loopgate is not None:
            bench.say(f"loopgate output:\n{bench.loopgate.tail()}")
        raise
    finally:
        bench.cleanup()
    results["wall_s"] = time.perf_counter() - started
    rows, verdicts = report.summarize(results, args)
    results["summary"] = verdicts
    table = report.render(rows)
    if "peer" in results:
        table += "\n\n" + report.render(report.peer_rows(results, args), header=report.peer_header(results))
    results["table"] = table
    path = BENCH / "results" / f"bench-{results['started']}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    shutil.copy(path, BENCH / "results" / "latest.json")
    print()
    print(table)
    print()
    print(
        f"{results['wall_s']:.0f} s; load average {results['machine']['loadavg_at_start']} at start, "
        f"{results['machine']['loadavg_at_end']} at end; results in {path.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
