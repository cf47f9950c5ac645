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

from loopgate.store import tables
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
        """Per config: how many logs used it and when the last one was made."""
        if not config_ids:
            return {}
        logs = tables.logs
        query = (
            select(logs.c.config_id, func.count(), func.max(logs.c.created_at))
            .where(logs.c.config_id.in_(config_ids))
            .group_by(logs.c.config_id)
        )
        async with self._engine.connect() as connection:
            found = (await connection.execute(query)).all()
        return {
            str(config_id): ConfigUsage(int(count), utc(last) if last is not None else None)
            for config_id, count, last in found
        }

    def forget(self, config_ids: list[str]) -> None:
        for config_id in config_ids:
            self._cache.discard(config_id)
