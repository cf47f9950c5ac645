"""Small helpers shared by HTTP-level tests."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson

from tests.postgres import pg_rows


def unique(prefix: str = "p") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def chat_body(project: str, text: str = "hello", **extra: Any) -> dict[str, Any]:
    config = extra.pop("model_config", {"provider": "mock", "model": "mock-1"})
    return {
        "project": project,
        "model_config": config,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def sse_events(raw: str) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: ")]


def db_rows(database: Path | str, query: str, *params: Any) -> list[Any]:
    """Rows of one statement (``?`` placeholders) run on a server's SQLite file or PostgreSQL database;
    either kind of row reads by column name (``row["id"]``), by position, and as ``dict(row)``."""
    if isinstance(database, str):
        return pg_rows(database, query, params)
    connection = sqlite3.connect(database)
    connection.row_factory = sqlite3.Row
    try:
        with connection:  # commits a write, so helpers may also change rows
            return connection.execute(query, params).fetchall()
    finally:
        connection.close()


def log_row(database: Path | str, log_id: str) -> Any:
    rows = db_rows(database, "SELECT * FROM logs WHERE id = ?", log_id)
    return rows[0] if rows else None


MOCK_CONFIG = {"provider": "mock", "model": "mock-1"}

# What the built-in mock provider answers: this, then the last user message.
MOCK_REPLY = "This is a mock response to: "
# A tool the provider tests offer: its OpenAI-wire form is {"type": "function", "function": WEATHER_TOOL}.
WEATHER_TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
        "required": ["city"],
    },
}


def log_body(project: str, **extra: Any) -> dict[str, Any]:
    """A POST /logs item with an inline mock model config (``config`` may be overridden)."""
    return {"project": project, "config": dict(MOCK_CONFIG), **extra}


class _Serving(Protocol):
    url: str
    api_key: str


async def chat_everywhere(servers: Sequence[_Serving], bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """Every body posted to ``/chat`` at once, spread round-robin over the servers."""
    limits = httpx.Limits(max_connections=len(bodies))
    clients = [
        httpx.AsyncClient(base_url=s.url, headers={"X-API-KEY": s.api_key}, timeout=60.0, limits=limits)
        for s in servers
    ]
    try:
        return list(
            await asyncio.gather(
                *(clients[i % len(clients)].post("/chat", json=body) for i, body in enumerate(bodies))
            )
        )
    finally:
        for client in clients:
            await client.aclose()


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (a server's workers and writer process)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(descendant for child in children for descendant in process_tree(int(child)))]


@contextlib.contextmanager
def disk_full(pid: int) -> Iterator[None]:
    """A full disk for the processes of a running server: a file-size limit of one byte (set from outside,
    ``prlimit``), so every write that grows a file fails; CPython ignores the SIGXFSZ that comes with it."""
    tree = process_tree(pid)
    for each in tree:
        resource.prlimit(each, resource.RLIMIT_FSIZE, (1, resource.prlimit(each, resource.RLIMIT_FSIZE)[1]))
    try:
        yield
    finally:
        for each in tree:
            hard = resource.prlimit(each, resource.RLIMIT_FSIZE)[1]
            resource.prlimit(each, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, hard))
