"""Stored model-config versions: read one by id, list a project's, and count the logs that used them.

Versions are immutable (new parameters make a new version), so a version read by id is cached; only a
project deletion removes versions, and it calls ``forget``.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from loopgate.store import tables, tallies
from loopgate.store.cache import TTLCache
from loopgate.store.projects import utc

_C = tables.model_configs


@dataclass(frozen=True, slots=True)
class ConfigRow:
    id: str
    org_id: str
    project_id: str
    name: str
    config_hash: str
    config_type: str
    body: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_mapping(cls, row: Any) -> "ConfigRow":
        return cls(
            id=row["id"],
            org_id=row["org_id"],
            project_id=row["project_id"],
            name=row["name"],
            config_hash=row["config_hash"],
            config_type=row["config_type"],
            body=orjson.loads(row["body"]),
            created_at=utc(row["created_at"]),
        )


@dataclass(frozen=True, slots=True)
class ConfigUsage:
    num_datapoints: int
    last_used: datetime | None


class ConfigStore:
    def __init__(self, engine: AsyncEngine, *, cache_seconds: float = 300.0) -> None:
        self._engine = engine
        self._cache: TTLCache[str, ConfigRow] = TTLCache(cache_seconds, max_size=10_000)

    async def get(self, org_id: str, config_id: str) -> ConfigRow | None:
        cached = self._cache.get(config_id)
        if cached is None:
            async with self._engine.connect() as connection:
                row = (
                    (await connection.execute(select(_C).where(_C.c.id == config_id)))
                    .mappings()
                    .one_or_none()
                )
            if row is None:
                return None
            cached = ConfigRow.from_mapping(row)
            self._cache.put(config_id, cached)
        return cached if cached.org_id == org_id else None

    async def for_project(self, project_id: str) -> list[ConfigRow]:
        query = select(_C).where(_C.c.project_id == project_id).order_by(_C.c.created_at, _C.c.id)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [ConfigRow.from_mapping(row) for row in rows]

    async def many(self, config_ids: list[str]) -> dict[str, ConfigRow]:
        if not config_ids:
            return {}
        async with self._engine.connect() as connection:
            rows = (await connection.execute(select(_C).where(_C.c.id.in_(config_ids)))).mappings().all()
        return {row["id"]: ConfigRow.from_mapping(row) for row in rows}

    async def usage(self, config_ids: list[str]) -> dict[str, ConfigUsage]:
        """Per config: how many logs used it (from the tallies) and when the last one was made (one probe
        of the (config_id, created_at, ...) index per config, where a GROUP BY would read all their logs)."""
        if not config_ids:
            return {}
        logs = tables.logs
        last = select(func.max(logs.c.created_at)).where(logs.c.config_id == _C.c.id).scalar_subquery()
        query = select(_C.c.id, last).where(_C.c.id.in_(config_ids))
        async with self._engine.connect() as connection:
            counts = await tallies.by_config(connection, config_ids)
            found = (await connection.execute(query)).all()
        return {
            str(config_id): ConfigUsage(counts.get(str(config_id), 0), utc(latest))
            for config_id, latest in found
            if latest is not None
        }

    def forget(self, config_ids: list[str]) -> None:
        for config_id in config_ids:
            self._cache.discard(config_id)
