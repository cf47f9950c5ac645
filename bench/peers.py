"""Another gateway behind the same upstream, for a side-by-side ratio: ``bench/run.py --peer litellm``.

The peer is installed from PyPI into an environment of its own (``.venv-peer-<name>`` at the repository
root, pinned with its dependencies by ``bench/<name>-constraints.txt``, reused by later runs, removed by
``make clean``), never into loopgate's. It gets the same
nginx upstream and the same OpenAI-shaped requests as the direct path; only the measurements that apply
to a gateway without durable logs are run (c=1 latency and TTFT, wrk plain and streamed).

nginx picks the plain or the streamed answer by the upstream key (it cannot read JSON), and LiteLLM sends
the key of its configuration, not the client's: so the peer serves two model names, one per key.
"""

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import procs
from fixtures import MODEL, PLAIN_KEY, STREAM_KEY, Target, peer_body

ROOT = Path(__file__).resolve().parent.parent
STREAM_MODEL = f"{MODEL}-stream"


class LiteLLM:
    """LiteLLM's proxy server (``litellm --config``), one worker, no database, no callbacks."""

    name = "litellm"
    requirement = "litellm[proxy]==1.108.7"
    constraints = Path(__file__).resolve().parent / "litellm-constraints.txt"  # its dependencies, pinned

    def __init__(self, directory: Path) -> None:
        self.venv = ROOT / f".venv-peer-{self.name}"
        self.directory = directory
        self.process: procs.Managed | None = None
        self.port = 0
        self.master_key = "sk-" + secrets.token_hex(32)

    def install(self, say: Callable[[str], None]) -> None:
        marker = self.venv / ".installed"
        stamp = self.requirement + "\n" + self.constraints.read_text()
        if marker.exists() and marker.read_text() == stamp:
            return
        say(f"installing {self.requirement} into {self.venv.relative_to(ROOT)} (once) ...")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(self.venv)], check=True)
        pip = [str(self.venv / "bin" / "pip"), "install", "-q", "-c", str(self.constraints)]
        subprocess.run([*pip, self.requirement], check=True)
        marker.write_text(stamp)

    def config(self, upstream_port: int) -> str:
        base = f"http://127.0.0.1:{upstream_port}/v1"
        models = "".join(
            f"  - model_name: {name}\n"
            "    litellm_params:\n"
            f"      model: openai/{MODEL}\n"
            f"      api_base: {base}\n"
            f"      api_key: {key}\n"
            for name, key in ((MODEL, PLAIN_KEY), (STREAM_MODEL, STREAM_KEY))
        )
        settings = "litellm_settings:\n  telemetry: false\n  drop_params: true\n"
        # It refuses to start without a master key; clients authenticate with it, as loopgate's do.
        return f"model_list:\n{models}{settings}general_settings:\n  master_key: {self.master_key}\n"

    def start(self, upstream_port: int) -> float:
        """Start the proxy; returns the seconds to its first 200."""
        path = self.directory / "litellm.yaml"
        path.write_text(self.config(upstream_port))
        self.port = procs.free_port()
        argv = [
            str(self.venv / "bin" / "litellm"),
            *("--config", str(path), "--host", "127.0.0.1", "--port", str(self.port)),
            *("--num_workers", "1"),
        ]
        env = dict(
            os.environ,
            LITELLM_LOG="ERROR",
            LITELLM_LOCAL_MODEL_COST_MAP="True",  # no fetch of the price list from GitHub
            LITELLM_TELEMETRY="False",
        )
        self.process = procs.Managed(self.name, argv, env=env, log=self.directory / "litellm.out")
        probe = b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ready = procs.wait_until(lambda: procs.http_status(self.port, probe) == 200, timeout=120)
        if ready is None or not self.process.alive():
            raise RuntimeError(f"{self.name} did not start:\n{self.process.tail()}")
        return time.perf_counter() - self.process.started

    def target(self, system_chars: int) -> Target:
        bodies = {
            False: peer_body(MODEL, stream=False, system_chars=system_chars),
            True: peer_body(STREAM_MODEL, stream=True, system_chars=system_chars),
        }
        headers = {"Authorization": f"Bearer {self.master_key}"}
        return Target(self.name, self.port, "/v1/chat/completions", headers, bodies)

    def pids(self) -> list[int]:
        assert self.process is not None
        return procs.process_tree(self.process.pid)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


PEERS = {LiteLLM.name: LiteLLM}
