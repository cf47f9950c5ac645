"""Shared fixtures: a real ``loopgate serve`` process on 127.0.0.1 with its own database and API key.

Servers are started as subprocesses, exactly as users start them, and driven over HTTP. The database is a
SQLite file, or a fresh database on the session's throwaway PostgreSQL cluster (``tests/postgres.py``):
a module marked ``@pytest.mark.backends("sqlite", "postgresql")`` runs its tests against a session server
of each kind.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.postgres import PostgresCluster

ROOT = Path(__file__).resolve().parent.parent
LOOPGATE = [sys.executable, "-m", "loopgate"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_http(url: str, timeout: float = 20.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@dataclass
class Server:
    """A running loopgate: ``url`` is the v4 base (what the SDK calls ``host``)."""

    port: int
    # The SQLite file, or the PostgreSQL URL of the server's own database (tests/helpers.py reads either).
    database: Path | str
    env: dict[str, str]
    api_key: str = ""
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    extra_keys: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/v4"

    def cli(self, *args: str) -> str:
        result = subprocess.run([*LOOPGATE, *args], env=self.env, capture_output=True, text=True, check=True)
        return result.stdout

    def create_key(self, org: str = "default", name: str | None = None) -> str:
        args = ["keys", "create", "--org", org] + (["--name", name] if name else [])
        return self.cli(*args).strip().splitlines()[-1]

    @property
    def backend(self) -> str:
        return "sqlite" if isinstance(self.database, Path) else "postgresql"

    def start(self, *serve_args: str, timeout: float = 60.0) -> None:
        assert self.log_path is not None
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [*LOOPGATE, "serve", "--port", str(self.port), *serve_args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_http(f"{self.base}/healthz", timeout=timeout, process=self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-KEY": key or self.api_key}, timeout=30.0)


@contextlib.contextmanager
def serving(*servers: Server) -> Iterator[None]:
    """Starts the servers in order; stops every one that started, whatever happens."""
    started: list[Server] = []
    try:
        for server in servers:
            server.start()
            started.append(server)
        yield
    finally:
        for server in started:
            server.stop()


FAKELLM = ROOT / ".venv-fakellm" / "bin" / "fakellm"
FAKELLM_RULES = ROOT / "tests" / "fakellm.yaml"


@contextlib.contextmanager
def fakellm_process(directory: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """fakellm (an OpenAI/Anthropic-shaped upstream nobody on this team wrote) on a free loopback port,
    serving tests/fakellm.yaml; skips the test when its venv is missing."""
    if not FAKELLM.exists():
        pytest.skip("fakellm is not installed: run `make .venv-fakellm/.installed`")
    port = free_port()
    with (directory / "fakellm.log").open("wb") as log:
        process = subprocess.Popen(
            [
                str(FAKELLM),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--config",
                str(FAKELLM_RULES),
            ],
            cwd=directory,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/_fakellm/stats", process=process)
        yield port, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_cluster: PostgresCluster | None = None


def postgres_cluster() -> PostgresCluster:
    """The session's PostgreSQL cluster, started on first use (stopped in ``pytest_sessionfinish``). Missing
    binaries fail the test: this image has them, so their absence is a broken setup, not a reason to skip."""
    global _cluster
    if _cluster is None:
        try:
            cluster = PostgresCluster()
            cluster.start()
        except RuntimeError as exc:
            pytest.fail(f"cannot start the test PostgreSQL cluster: {exc}", pytrace=False)
        _cluster = cluster
    return _cluster


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _cluster is not None:
        _cluster.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "backends(*names): run the module's session-server tests on each (sqlite, postgresql)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests of a module marked ``backends(...)`` that use the session ``server`` run once per backend."""
    marker = metafunc.definition.get_closest_marker("backends")
    if marker is not None and "server" in metafunc.fixturenames:
        metafunc.parametrize("server", list(marker.args), indirect=True, scope="session")


@pytest.fixture(scope="session")
def postgres() -> PostgresCluster:
    return postgres_cluster()


def make_server(tmp_path: Path, *, backend: str = "sqlite", **env: str) -> Server:
    """A server (not started yet) with an API key, on a new SQLite file or a new PostgreSQL database."""
    database: Path | str
    if backend == "postgresql":
        database = postgres_cluster().database("server")
        url = database
    else:
        database = tmp_path / "loopgate.db"
        url = f"sqlite+aiosqlite:///{database}"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LOOPGATE_")}
    environment.update({"LOOPGATE_DATABASE_URL": url, "LOOPGATE_LOG_LEVEL": "warning"})
    environment.update(env)
    server = Server(port=free_port(), database=database, env=environment, log_path=tmp_path / "server.log")
    server.api_key = server.create_key(name="tests")
    return server


@pytest.fixture(scope="session")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the whole session (mock provider only), per backend: tests must not depend on each
    other's data, so they use project names of their own."""
    backend = getattr(request, "param", "sqlite")
    instance = make_server(tmp_path_factory.mktemp(f"server-{backend}"), backend=backend)
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http
