"""``loopgate serve --workers N`` (loopgate/supervisor.py): forked workers that are replaced when they die,
stop together on SIGTERM, and stop everything, without restarting, when they cannot start."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopgate.store.writers.hub import PROCESS_NAME
from tests.conftest import Server, free_port, make_server
from tests.helpers import chat_body, chat_everywhere, db_rows, unique


def _children(server: Server) -> list[int]:
    assert server.process is not None
    pid = server.process.pid
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return ""


def _workers(server: Server) -> list[int]:
    return [pid for pid in _children(server) if _name(pid) != PROCESS_NAME]


def _writer(server: Server) -> int:
    (writer,) = [pid for pid in _children(server) if _name(pid) == PROCESS_NAME]
    return writer


def _replaced(server: Server, dead: int, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = _workers(server)
        if len(workers) == 2 and dead not in workers:
            return workers
        time.sleep(0.05)
    raise AssertionError(f"worker {dead} was not replaced: {_workers(server)}")


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[Server, subprocess.Popen[bytes], list[int]]]:
    """``loopgate serve --workers 2``: the server, its parent process and the two workers' pids."""
    server = make_server(tmp_path)
    server.start("--workers", "2", timeout=90)
    assert server.process is not None
    try:
        workers = _workers(server)
        assert len(workers) == 2
        yield server, server.process, workers
    finally:
        server.stop()


def test_a_killed_worker_is_replaced_and_sigterm_stops_every_process(
    two_workers: tuple[Server, subprocess.Popen[bytes], list[int]],
) -> None:
    server, parent, first = two_workers
    writer = _writer(server)
    os.kill(first[0], signal.SIGKILL)
    after = _replaced(server, first[0])
    assert first[1] in after  # the other worker went on serving meanwhile
    project = unique("supervised")
    with server.client() as client:
        answers = [client.post("/chat", json=chat_body(project, f"m{i}")) for i in range(20)]
    assert {answer.status_code for answer in answers} == {200}
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=30) == 0
    assert not [pid for pid in [*after, writer] if Path(f"/proc/{pid}").exists()]


_FAILING = textwrap.dedent(
    """
    import sys
    import uvicorn
    from loopgate import supervisor

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "no database"})

    config = uvicorn.Config(app, port=int(sys.argv[1]), lifespan="on", log_level="warning")
    sys.exit(supervisor.serve(config, 2))
    """
)


def test_workers_that_cannot_start_stop_the_server_instead_of_restarting() -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _FAILING, str(free_port())], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("no database") == 2  # each worker tried once; none was started again
    assert time.monotonic() - started < 30


_NO_DATABASE = textwrap.dedent(
    """
    import sys
    import uvicorn
    from loopgate import supervisor

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()

    config = uvicorn.Config(app, port=int(sys.argv[1]), lifespan="on", log_level="warning")
    writer = supervisor.WriterOptions("/nonexistent/loopgate/x.db", "FULL", 512)
    sys.exit(supervisor.serve(config, 2, writer))
    """
)


def test_a_writer_that_cannot_open_the_database_stops_the_server() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _NO_DATABASE, str(free_port())], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert "unable to open database file" in done.stderr


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for whoever adopted it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_workers_stop_when_the_parent_is_killed(
    two_workers: tuple[Server, subprocess.Popen[bytes], list[int]],
) -> None:
    server, parent, workers = two_workers
    processes = [*workers, _writer(server)]
    parent.kill()  # SIGKILL: no chance to stop its workers itself
    parent.wait(timeout=10)
    deadline = time.monotonic() + 30
    while any(_running(pid) for pid in processes) and time.monotonic() < deadline:
        time.sleep(0.05)
    # The workers got SIGTERM; the writer went once the parent and the workers had.
    assert not [pid for pid in processes if _running(pid)]


def _open_files(pid: int) -> list[str]:
    names = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            names.append(os.readlink(fd))
    return names


def test_one_writer_process_commits_every_workers_logs(
    two_workers: tuple[Server, subprocess.Popen[bytes], list[int]],
) -> None:
    server, _, workers = two_workers
    writer = _writer(server)
    # Only the writer holds the lock that orders writers: the workers run no writer of their own.
    assert any(name.endswith(".writer-lock") for name in _open_files(writer))
    assert not [pid for pid in workers if any(n.endswith(".writer-lock") for n in _open_files(pid))]

    project, reference = unique("hub"), unique("ref")
    answers = asyncio.run(chat_everywhere([server], [chat_body(project, f"m{i}") for i in range(60)]))
    assert {answer.status_code for answer in answers} == {200}
    ids = {item["id"] for answer in answers for item in answer.json()["data"]}
    stored = {row["id"] for row in db_rows(server.database, "SELECT id FROM logs")}
    assert len(ids) == 60 and ids <= stored  # every 200 was acknowledged after its commit

    # A log the database refuses fails alone, as the same 409 as in one process.
    log = {"project": project, "reference_id": reference, "output": "x", "config": {"model": "m"}}
    with server.client() as client:
        assert client.post("/logs", json=log).status_code == 200
        refused = client.post("/logs", json=log)
        assert refused.status_code == 409, refused.text
        assert client.post("/chat", json=chat_body(project)).status_code == 200


def test_a_dead_writer_stops_the_server(
    two_workers: tuple[Server, subprocess.Popen[bytes], list[int]],
) -> None:
    server, parent, workers = two_workers
    os.kill(_writer(server), signal.SIGKILL)
    # No worker can have a log committed any more: everything stops, with an error status.
    assert parent.wait(timeout=30) == 1
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if _running(pid)]
