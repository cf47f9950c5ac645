"""The floor under issue 7's targets: the least a Python gateway can do per request, run by bench/floor.py.

    .venv/bin/python bench/floor_server.py MODE PORT UPSTREAM_PORT DATABASE

Every mode answers ``POST`` on any path the way loopgate's ``/v4/chat`` does in shape, with none of its
work: httptools parses the request, orjson reads the body, one keep-alive connection per concurrent
request forwards a fixed chat request to the upstream, and the answer is written in one ``write``.

- ``bare``: nothing else. What Python, uvloop and httptools cost on this machine.
- ``commit``: and one log row per request (the request's messages and the provider's answer, padded to
  the ~1.9 KB loopgate stores), committed by a group-commit thread in a table with loopgate's five
  secondary indexes, in WAL mode with ``synchronous=FULL``; the answer waits for its commit.
- ``store``: and instead loopgate's own log writer (``store/writers/sqlite.py``) into loopgate's own
  schema (search index, tallies), with a row copied from a real log already in DATABASE.
"""

import asyncio
import os
import queue
import sqlite3
import sys
import threading
from datetime import UTC, datetime
from typing import Any, cast

import httptools
import orjson
import uvloop

from loopgate import ids
from loopgate.store.writers.sqlite import SQLiteLogWriter

_UPSTREAM_BODY = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]})
_PAD = "x" * 1200  # brings the minimal row to about loopgate's bytes per log


def upstream_request(port: int) -> bytes:
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer floor\r\n"
        f"Content-Length: {len(_UPSTREAM_BODY)}\r\n\r\n"
    )
    return head.encode() + _UPSTREAM_BODY


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection read by httptools: the body of each message, handed to ``complete``."""

    def __init__(self, parser: Any) -> None:
        self.parser = parser(self)
        self.transport: asyncio.Transport | None = None
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        self.body.clear()
        self.complete(body)

    def complete(self, body: bytes) -> None:
        raise NotImplementedError


class _Upstream(_Connection):
    """One keep-alive connection to the upstream; one exchange at a time."""

    def __init__(self) -> None:
        super().__init__(httptools.HttpResponseParser)
        self.answer: asyncio.Future[bytes] | None = None

    def complete(self, body: bytes) -> None:
        assert self.answer is not None
        self.answer.set_result(body)


class _Pool:
    def __init__(self, port: int) -> None:
        self.port = port
        self.request = upstream_request(port)
        self.idle: list[_Upstream] = []

    async def call(self) -> bytes:
        loop = asyncio.get_running_loop()
        if self.idle:
            connection = self.idle.pop()
        else:
            _, connection = await loop.create_connection(_Upstream, "127.0.0.1", self.port)
        connection.answer = loop.create_future()
        assert connection.transport is not None
        connection.transport.write(self.request)
        body = await connection.answer
        self.idle.append(connection)
        return body


class _MinimalLog:
    """The ``commit`` mode's store: a table, five indexes, and a thread that commits all that is queued."""

    def __init__(self, path: str) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=FULL")
        self.connection.execute(
            "CREATE TABLE logs (id TEXT PRIMARY KEY, org_id TEXT, project_id TEXT, config_id TEXT, "
            "session_id TEXT, parent_id TEXT, reference_id TEXT, created_at TEXT, output TEXT, payload TEXT)"
        )
        for name, columns in (
            ("project", "project_id, org_id, created_at, id"),
            ("config", "config_id, created_at, project_id, org_id, id"),
            ("session", "session_id, project_id, created_at"),
            ("parent", "parent_id"),
            ("created", "created_at"),
        ):
            self.connection.execute(f"CREATE INDEX ix_{name} ON logs ({columns})")
        self.queue: queue.SimpleQueue[tuple[asyncio.Future[None], tuple[Any, ...]]] = queue.SimpleQueue()
        self.loop = asyncio.get_running_loop()
        threading.Thread(target=self._run, daemon=True).start()

    def write(self, row: tuple[Any, ...]) -> asyncio.Future[None]:
        future = self.loop.create_future()
        self.queue.put((future, row))
        return future

    def _run(self) -> None:
        while True:
            batch = [self.queue.get()]
            while True:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self.connection.execute("BEGIN")
            self.connection.executemany(
                "INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [row for _, row in batch]
            )
            self.connection.execute("COMMIT")
            self.loop.call_soon_threadsafe(_settle, [future for future, _ in batch])


def _settle(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        future.set_result(None)


class _Server(_Connection):
    def __init__(self, handle: Any) -> None:
        super().__init__(httptools.HttpRequestParser)
        self.handle = handle

    def complete(self, body: bytes) -> None:
        asyncio.get_running_loop().create_task(self.answer(body))

    async def answer(self, body: bytes) -> None:
        data = orjson.dumps(await self.handle(orjson.loads(body)))
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (len(data), data)
        )


def _template_row(path: str) -> dict[str, Any]:
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    row = connection.execute("SELECT * FROM logs WHERE status = 'complete' LIMIT 1").fetchone()
    connection.close()
    if row is None:
        raise SystemExit(f"no log in {path} to copy")
    return dict(row)


async def serve(mode: str, port: int, upstream_port: int, database: str) -> None:
    pool = _Pool(upstream_port)

    async def bare(request: dict[str, Any]) -> dict[str, Any]:
        answer = orjson.loads(await pool.call())
        output = answer["choices"][0]["message"]["content"]
        return {"data": [{"id": ids.new_id(ids.LOG), "output": output}], "project": request.get("project")}

    handle = bare
    if mode == "commit":
        store = _MinimalLog(database)

        async def commit(request: dict[str, Any]) -> dict[str, Any]:
            answer = orjson.loads(await pool.call())
            log_id, output = ids.new_id(ids.LOG), answer["choices"][0]["message"]["content"]
            payload = orjson.dumps({"messages": request["messages"], "response": answer, "pad": _PAD})
            created = datetime.now(UTC).isoformat()
            row = (log_id, "org", "project", "config", None, None, None, created, output, payload.decode())
            await store.write(row)
            return {"data": [{"id": log_id, "output": output}], "project": request.get("project")}

        handle = commit
    elif mode == "store":
        template = _template_row(database)
        writer = SQLiteLogWriter(f"sqlite:///{database}")
        await writer.start()

        async def loopgate_store(request: dict[str, Any]) -> dict[str, Any]:
            answer = orjson.loads(await pool.call())
            now = datetime.now(UTC)
            output = answer["choices"][0]["message"]["content"]
            row = {
                **template,
                "id": ids.new_id(ids.LOG),
                "output": output,
                "created_at": now,
                "updated_at": now,
            }
            await writer.write_logs_nowait([row], {})
            return {"data": [{"id": row["id"], "output": output}], "project": request.get("project")}

        handle = loopgate_store
    elif mode != "bare":
        raise SystemExit(f"unknown mode {mode!r}")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Server(handle), "127.0.0.1", port, backlog=1024)
    print(f"floor server {mode} on 127.0.0.1:{port} (pid {os.getpid()})", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    mode, port, upstream_port, database = sys.argv[1:5]
    uvloop.run(serve(mode, int(port), int(upstream_port), database))
