"""``loopgate serve --workers N``: N worker processes forked from one that has already imported everything.

uvicorn's own supervisor spawns each worker as a fresh interpreter, which imports loopgate again: the first
answer came 2.2-2.3 s after start-up with two workers, against ~0.8 s for one process, and each worker
held its own copy of every module. Forked once start-up is done, the workers begin with the imports in
place, sharing their pages with the parent (the start-up heap is frozen out of the collector's reach, so
its pages stay shared), and answer as soon as their event loop runs. They all accept on one listening
socket bound here; the kernel hands each connection to one of them.

The parent only supervises: SIGTERM, SIGINT or SIGHUP stops every worker (with SIGTERM, uvicorn's graceful
shutdown, which commits every log already handed to the writer) and then the parent. A worker that dies
is replaced, unless it failed while starting, which would only fail again: then everything stops, with
uvicorn's start-up failure status. Nothing here runs before the fork that a child could inherit half-done:
no event loop and no thread exist in the parent.
"""

import contextlib
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from types import FrameType

import uvicorn
from uvicorn.config import STARTUP_FAILURE  # the status uvicorn exits with when a server cannot start

from loopgate.store.writers.hub import WriterProcess, use_channel

_log = logging.getLogger("loopgate.supervisor")
_RESTART_PAUSE = 0.5  # between a worker's death and its replacement: no hot loop if workers keep dying
# SIGHUP too: left at its default it would end the parent alone and leave the workers serving. uvicorn's
# supervisor restarts its workers on SIGHUP, as fresh interpreters that load the code anew; workers forked
# from this parent would come back with the code it loaded at start, so new code takes a restart of
# ``loopgate serve`` itself.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def serve(config: uvicorn.Config, workers: int, writer: "WriterOptions | None" = None) -> int:
    """``writer``: on SQLite, one log-writer process for all workers (``store/writers/hub.py``)."""
    # The writer first, so that it does not hold the listening socket.
    hub = WriterProcess(writer.path, writer.synchronous, writer.max_batch) if writer else None
    sock = config.bind_socket()
    children: dict[int, int] = {}  # pid -> worker number
    stopping = False
    status = 0

    def start(number: int) -> None:
        nonlocal status
        if stopping:
            return
        parent = os.getpid()
        try:
            channel = hub.channel() if hub else None
        except OSError:  # the writer process is gone; its exit is handled where it is reaped
            _log.exception("could not reach the log writer process; stopping")
            status = 1
            stop_all(signal.SIGTERM, None)
            return
        # Stop signals wait until the child is on record here and, in the child, until the parent's
        # handler is gone: arriving in between, one would miss the new worker, or run the parent's
        # handler inside it.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                if hub and channel:
                    hub.forget_in_child()
                    use_channel(channel)
                os._exit(_run_worker(config, sock, parent))
            children[pid] = number
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
            if channel:
                channel.close()
        _log.info("worker %d started (pid %d)", number, pid)

    def stop_all(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            # SIGTERM, whatever arrived: a second SIGINT would make uvicorn drop open requests.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    for stop_signal in _STOP_SIGNALS:
        signal.signal(stop_signal, stop_all)
    for number in range(workers):
        start(number)
    while children:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        if hub and pid == hub.pid:
            # Its workers' logs can no longer be committed: stop rather than answer 500s.
            _log.error(
                "the log writer process exited (status %d); stopping", os.waitstatus_to_exitcode(wait_status)
            )
            hub = None
            status = 1
            stop_all(signal.SIGTERM, None)
            continue
        if pid not in children:
            continue
        number = children.pop(pid)
        if stopping:
            continue
        code = os.waitstatus_to_exitcode(wait_status)
        if code == STARTUP_FAILURE:
            _log.error("worker %d could not start; stopping", number)
            status = STARTUP_FAILURE
            stop_all(signal.SIGTERM, None)
            continue
        _log.error("worker %d (pid %d) exited with status %d; starting another", number, pid, code)
        time.sleep(_RESTART_PAUSE)
        start(number)
    sock.close()
    if hub and hub.finish() != 0:
        status = status or 1
    return status


@dataclass(frozen=True)
class WriterOptions:
    path: str
    synchronous: str
    max_batch: int


def _run_worker(config: uvicorn.Config, sock: socket.socket, parent: int) -> int:
    """The forked child: serve until told to stop. Returns the exit status (the caller ``_exit``s)."""
    # The parent's handlers came with the fork (stop signals blocked): back to the defaults, then a stop
    # signal that came meanwhile ends this worker. uvicorn installs its own handlers once it serves.
    for stop_signal in _STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    _stop_with(parent)
    try:
        server = uvicorn.Server(config)
        server.run(sockets=[sock])
    except SystemExit as exc:  # uvicorn exits this way when it cannot start
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        _log.exception("worker failed")
        return 1
    return 0 if server.started else STARTUP_FAILURE


def _stop_with(parent: int) -> None:
    """Have the kernel send this worker SIGTERM when the parent dies (say, of SIGKILL), so no worker goes
    on serving unsupervised. Linux only; elsewhere a worker outlives a killed parent."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)
