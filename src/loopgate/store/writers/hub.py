"""One log writer for all the workers of ``serve --workers N`` on SQLite: a process of its own.

With a writer thread in each worker, the workers' commits took turns under the cross-process lock: each
commit re-read ~31 pages from the WAL (the other process's commit had dropped its page cache), waited for
its own process's GIL between statements, and paid its own fsync; the lock was held 99% of the time while
the cores idled (docs/benchmarks.md). Here one process, with no event loop to share a GIL with, commits what
every worker sent since its last commit in one transaction.

- Each worker gets one end of a socketpair; the other end reaches the writer over a control socket
  (``SCM_RIGHTS``), so no path or port is ever exposed. Frames are a 4-byte length and a pickle: both ends
  are this program, forked from one parent.
- A worker sends ``(item id, rows, blobs)`` -- rows already in column order (``sqlite.row``) -- and awaits
  the acknowledgement, which is sent after the commit that holds them: a 200 still means "on disk".
- A failing item fails alone (``sqlite.commit_batch``); a conflict comes back as the same 409 as in one
  process.
- The writer stops when the parent has closed the control socket and every worker has gone, so it commits
  what the workers hand over while they shut down gracefully. It ignores stop signals: a Ctrl-C reaches the
  whole process group, and the writer must outlive the workers.
"""

import asyncio
import contextlib
import logging
import os
import pickle
import selectors
import signal
import socket
import sqlite3
import struct
from pathlib import Path
from typing import Any

from loopgate import metrics
from loopgate.errors import StorageUnavailable
from loopgate.store.failures import storage_failure
from loopgate.store.writers import item_error
from loopgate.store.writers.sqlite import Rows, commit_batch, connect, open_lock_file, row

_log = logging.getLogger("loopgate.writer")
_HEADER = struct.Struct("!I")
_READ_SIZE = 256 * 1024
_IGNORED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PROCESS_NAME = "loopgate-writer"  # at most 15 characters: the kernel's limit for a process name
_channel: socket.socket | None = None  # this worker's end, set in the forked worker before its app starts


def use_channel(channel: socket.socket) -> None:
    global _channel
    _channel = channel


def worker_channel() -> socket.socket | None:
    return _channel


def _frame(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


class _Frames:
    """Reassembles frames from a byte stream."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        self._buffer += data
        messages = []
        start = 0
        while len(self._buffer) - start >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buffer, start)
            end = start + _HEADER.size + size
            if len(self._buffer) < end:
                break
            # Only this program's own processes hold either end of the socketpair (see the module's doc).
            messages.append(pickle.loads(memoryview(self._buffer)[start + _HEADER.size : end]))  # noqa: S301
            start = end
        del self._buffer[:start]
        return messages


# -- the parent's side ----------------------------------------------------------------------------------


class WriterProcess:
    """Started by the supervisor before any worker; hands each new worker its channel."""

    def __init__(self, path: str, synchronous: str, max_batch: int) -> None:
        self._control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # As for the workers (supervisor.py): no stop signal may run the parent's handler in the child.
        signal.pthread_sigmask(signal.SIG_BLOCK, _IGNORED_SIGNALS)
        try:
            self.pid = os.fork()
            if self.pid == 0:  # the writer: it must never return into the supervisor's code
                status = 1
                try:
                    self._control.close()
                    status = _serve(theirs, path, synchronous, max_batch)
                except BaseException:
                    _log.exception("the log writer process failed")
                finally:
                    os._exit(status)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _IGNORED_SIGNALS)
        theirs.close()

    def channel(self) -> socket.socket:
        """A new worker's end of a socketpair whose other end is now the writer's."""
        ours, writers = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            socket.send_fds(self._control, [b"w"], [writers.fileno()])
        finally:
            writers.close()
        return ours

    def forget_in_child(self) -> None:
        """In a forked worker: drop the parent's control socket."""
        self._control.close()

    def finish(self) -> int:
        """Once every worker is gone: let the writer commit what is left and exit; its exit status."""
        self._control.close()
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)


# -- the writer process -----------------------------------------------------------------------------------


class _Peer:
    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.frames = _Frames()
        self.outgoing = bytearray()
        self.open = True

    def receive(self) -> list[Any]:
        messages: list[Any] = []
        while True:
            try:
                data = self.sock.recv(_READ_SIZE)
            except BlockingIOError:
                return messages
            except OSError:
                data = b""
            if not data:
                self.open = False
                return messages
            messages.extend(self.frames.feed(data))

    def send(self) -> None:
        try:
            sent = self.sock.send(self.outgoing)
        except BlockingIOError:
            return
        except OSError:
            self.outgoing.clear()  # the worker is gone: nobody reads its acknowledgements
            return
        del self.outgoing[:sent]


def _serve(control: socket.socket, path: str, synchronous: str, max_batch: int) -> int:
    _name_process(PROCESS_NAME)
    for ignored in _IGNORED_SIGNALS:
        signal.signal(ignored, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _IGNORED_SIGNALS)
    connection = connect(path, synchronous)
    lock_fd = open_lock_file(path)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ, None)
    peers: set[_Peer] = set()
    control_open = True
    # With metrics on, wake at least this often to share the latest counts (loopgate/metrics.py).
    wake_every = metrics.SHARE_INTERVAL if metrics.sharing() else None
    try:
        while control_open or peers:
            batch: list[tuple[_Peer, int, Rows, dict[str, str]]] = []
            for key, events in selector.select(wake_every):
                peer: _Peer | None = key.data
                if peer is None:
                    control_open = _accept(control, selector, peers)
                    continue
                if events & selectors.EVENT_READ:
                    batch.extend((peer, *message) for message in peer.receive())
                if events & selectors.EVENT_WRITE:
                    peer.send()
            for start in range(0, len(batch), max_batch):
                _commit(connection, lock_fd, batch[start : start + max_batch])
            for peer in list(peers):
                if peer.outgoing and peer.open:
                    peer.send()
                _watch(selector, peers, peer)
            metrics.share(every=metrics.SHARE_INTERVAL)
    finally:
        metrics.share()
        connection.close()
        if lock_fd is not None:
            os.close(lock_fd)
    return 0


def _name_process(name: str) -> None:
    """Tell it apart from the workers in ``ps`` and ``top`` (Linux; elsewhere it keeps the parent's name)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/comm").write_text(name)


def _accept(control: socket.socket, selector: selectors.BaseSelector, peers: set[_Peer]) -> bool:
    """A message on the control socket: a new worker's channel, or the parent's end closing (False)."""
    message, fds, _flags, _address = socket.recv_fds(control, 16, 4)
    for fd in fds:
        peer = _Peer(socket.socket(fileno=fd))
        peers.add(peer)
        selector.register(peer.sock, selectors.EVENT_READ, peer)
    if message:
        return True
    selector.unregister(control)
    control.close()
    return False


def _commit(
    connection: sqlite3.Connection, lock_fd: int | None, batch: list[tuple[_Peer, int, Rows, dict[str, str]]]
) -> None:
    errors = commit_batch(connection, lock_fd, [(rows, blobs) for _, _, rows, blobs in batch])
    acks: dict[_Peer, list[tuple[int, str | None, str]]] = {}
    for (peer, item_id, _, _), error in zip(batch, errors, strict=True):
        outcome = (item_id, None, "") if error is None else (item_id, _kind(error), str(error))
        acks.setdefault(peer, []).append(outcome)
    for peer, outcomes in acks.items():
        if peer.open:
            peer.outgoing += _frame(outcomes)


def _kind(error: Exception) -> str:
    if isinstance(error, sqlite3.IntegrityError):
        return "conflict"
    return "storage" if storage_failure(error) is not None else "error"


def _watch(selector: selectors.BaseSelector, peers: set[_Peer], peer: _Peer) -> None:
    """Read while the worker is there; also wait to write while acknowledgements are left over."""
    if not peer.open:
        selector.unregister(peer.sock)
        peer.sock.close()
        peers.discard(peer)
        return
    events = selectors.EVENT_READ | (selectors.EVENT_WRITE if peer.outgoing else 0)
    if selector.get_key(peer.sock).events != events:
        selector.modify(peer.sock, events, peer)


# -- a worker's side --------------------------------------------------------------------------------------


class WriterGoneError(StorageUnavailable):
    """The writer process is gone: logs handed to it may not be committed (a 503, not a 500)."""


class HubLogWriter:
    """The ``LogWriter`` of a forked worker: rows go to the writer process; each future settles with the
    acknowledgement of the commit that holds its rows."""

    def __init__(self, channel: socket.socket) -> None:
        self._channel = channel
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.Transport | None = None
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._outgoing: list[bytes] = []
        self._next_id = 0
        self._gone: str | None = None
        self.commits = 0  # acknowledgement frames received: one per writer commit that held our rows

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        transport, _ = await self._loop.create_unix_connection(lambda: _Protocol(self), sock=self._channel)
        self._transport = transport

    async def stop(self) -> None:
        while self._pending:
            await asyncio.gather(*list(self._pending.values()), return_exceptions=True)
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def write_logs(self, logs: list[dict[str, Any]], blobs: dict[str, str]) -> None:
        await self.write_logs_nowait(logs, blobs)

    def write_logs_nowait(self, logs: list[dict[str, Any]], blobs: dict[str, str]) -> asyncio.Future[None]:
        assert self._loop is not None, "writer not started"
        future = self._loop.create_future()
        if self._gone is not None:
            future.set_exception(WriterGoneError(self._gone))
            return future
        item_id = self._next_id
        self._next_id += 1
        self._pending[item_id] = future
        if not self._outgoing:  # one write per turn of the loop, whatever the number of requests
            self._loop.call_soon(self._flush)
        self._outgoing.append(_frame((item_id, [row(log) for log in logs], blobs)))
        return future

    def _flush(self) -> None:
        data = b"".join(self._outgoing)
        self._outgoing.clear()
        if self._transport is not None and self._gone is None:
            self._transport.write(data)

    def acknowledged(self, outcomes: list[tuple[int, str | None, str]]) -> None:
        self.commits += 1
        for item_id, kind, message in outcomes:
            future = self._pending.pop(item_id, None)
            if future is None or future.done():
                continue
            if kind is None:
                future.set_result(None)
            elif kind == "conflict":
                future.set_exception(item_error(sqlite3.IntegrityError(message)))
            elif kind == "storage":
                future.set_exception(item_error(sqlite3.OperationalError(message)))
            else:
                future.set_exception(RuntimeError(f"the log writer could not store the log: {message}"))

    def lost(self) -> None:
        self._gone = (
            "The log writer process is gone, so this log may not be stored and the generation is not "
            "returned; the server is stopping."
        )
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(WriterGoneError(self._gone))
        if pending:
            _log.error("the log writer process went away with %d writes unacknowledged", len(pending))


class _Protocol(asyncio.Protocol):
    def __init__(self, writer: HubLogWriter) -> None:
        self._writer = writer
        self._frames = _Frames()

    def data_received(self, data: bytes) -> None:
        for outcomes in self._frames.feed(data):
            self._writer.acknowledged(outcomes)

    def connection_lost(self, exc: Exception | None) -> None:
        self._writer.lost()
