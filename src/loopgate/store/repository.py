"""The queries the generation path needs. Logs are written by the group-commit writer; the rest are small
transactions on the pool. Get-or-create is an insert-if-absent on a unique key followed by a read, so
concurrent first uses (in this process or another) end with exactly one row."""

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import Select, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loopgate import ids
from loopgate.store import content, tables
from loopgate.store.cache import TTLCache
from loopgate.store.queries import insert_ignore
from loopgate.store.writers import LogWriter

DEFAULT_ORGANIZATION = "default"
T = TypeVar("T")


def now() -> datetime:
    return datetime.now(UTC)


def _stamps() -> dict[str, datetime]:
    stamp = now()
    return {"created_at": stamp, "updated_at": stamp}


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key as the log browser signs its sessions with: the hash, never the key."""

    id: str
    org_id: str
    name: str | None
    key_hash: str


class Store:
    def __init__(self, engine: AsyncEngine, writer: LogWriter, *, cache_seconds: float = 30.0) -> None:
        self.engine = engine
        self.writer = writer
        self._keys: TTLCache[str, str] = TTLCache(cache_seconds)
        self._projects: TTLCache[tuple[str, ...], str] = TTLCache(cache_seconds)
        self._project_ids: TTLCache[tuple[str, str], bool] = TTLCache(cache_seconds)
        self._configs: TTLCache[tuple[str, ...], str] = TTLCache(3600, max_size=50_000)
        self._sessions: TTLCache[tuple[str, ...], str] = TTLCache(cache_seconds, max_size=50_000)

    async def _write(self, operation: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async with self.engine.begin() as connection:
            return await operation(connection)

    async def _found_or_created(
        self,
        cache: TTLCache[tuple[str, ...], str],
        table: Table,
        match: dict[str, str],
        new_row: Callable[[], dict[str, Any]],
    ) -> str:
        """The id of ``table``'s row with the ``match`` values, else of the one inserted with them and
        ``new_row()`` (insert-if-absent, then a read of the row that won, so racing processes agree).
        Remembered in ``cache`` under the match values, one lookup per key at a time; the query is built
        only on a miss (building one costs more than the whole cached lookup)."""

        def query() -> Select[Any]:
            return select(table.c.id).where(*(table.c[column] == value for column, value in match.items()))

        async def load() -> str:
            async with self.engine.connect() as connection:
                found = (await connection.execute(query())).scalar_one_or_none()
            if found is not None:
                return str(found)
            async with self.engine.begin() as connection:
                await connection.execute(insert_ignore(connection, table), {**match, **new_row()})
                return str((await connection.execute(query())).scalar_one())

        found = await cache.get_or_load(tuple(match.values()), load)
        assert found is not None
        return found

    # -- organizations and keys ---------------------------------------------------------------------------

    async def create_api_key(self, *, organization: str, name: str | None) -> tuple[str, str]:
        """Returns (key, organization id). Only the key's hash is stored."""
        key = "lg_" + ids.new_id("k")[2:] + ids.new_id("k")[2:]

        async def operation(connection: AsyncConnection) -> str:
            await connection.execute(
                insert_ignore(connection, tables.organizations),
                {"id": ids.new_id(ids.ORGANIZATION), "name": organization, "created_at": now()},
            )
            org_id: str = (
                await connection.execute(
                    select(tables.organizations.c.id).where(tables.organizations.c.name == organization)
                )
            ).scalar_one()
            await connection.execute(
                tables.api_keys.insert(),
                {
                    "id": ids.new_id(ids.API_KEY),
                    "org_id": org_id,
                    "name": name,
                    "key_hash": hash_api_key(key),
                    "created_at": now(),
                },
            )
            return org_id

        org_id = await self._write(operation)
        return key, org_id

    async def ping(self) -> None:
        """One round trip to the database (a fresh connection from the pool, as a request would take)."""
        async with self.engine.connect() as connection:
            await connection.execute(select(1))

    async def has_api_keys(self) -> bool:
        async with self.engine.connect() as connection:
            return (await connection.execute(select(tables.api_keys.c.id).limit(1))).first() is not None

    async def organization_for_key(self, key: str) -> str | None:
        digest = hash_api_key(key)

        async def load() -> str | None:
            query = select(tables.api_keys.c.org_id).where(tables.api_keys.c.key_hash == digest)
            async with self.engine.connect() as connection:
                org_id: str | None = (await connection.execute(query)).scalar_one_or_none()
            return org_id

        return await self._keys.get_or_load(digest, load)

    async def api_key_by_secret(self, key: str) -> ApiKey | None:
        return await self._api_key(tables.api_keys.c.key_hash == hash_api_key(key))

    async def api_key_by_id(self, key_id: str) -> ApiKey | None:
        return await self._api_key(tables.api_keys.c.id == key_id)

    async def _api_key(self, condition: Any) -> ApiKey | None:
        keys = tables.api_keys
        query = select(keys.c.id, keys.c.org_id, keys.c.name, keys.c.key_hash).where(condition)
        async with self.engine.connect() as connection:
            row = (await connection.execute(query)).one_or_none()
        return ApiKey(str(row.id), str(row.org_id), row.name, str(row.key_hash)) if row else None

    # -- projects -------------------------------------------------------------------------------------------

    async def project_by_name(self, org_id: str, name: str) -> str:
        """The project's id, creating the project on first use."""
        return await self._found_or_created(
            self._projects,
            tables.projects,
            {"org_id": org_id, "name": name},
            lambda: {"id": ids.new_id(ids.PROJECT), **_stamps()},
        )

    async def project_exists(self, org_id: str, project_id: str) -> bool:
        async def load() -> bool | None:
            query = select(tables.projects.c.id).where(
                tables.projects.c.org_id == org_id, tables.projects.c.id == project_id
            )
            async with self.engine.connect() as connection:
                found = (await connection.execute(query)).scalar_one_or_none() is not None
            return True if found else None  # only a project that exists is remembered

        return bool(await self._project_ids.get_or_load((org_id, project_id), load))

    def forget_project(self, org_id: str, project_id: str, name: str) -> None:
        """Drops a renamed or deleted project from this process's caches (other processes catch up when
        their entries expire)."""
        self._projects.discard((org_id, name))
        self._project_ids.discard((org_id, project_id))

    # -- model configs ------------------------------------------------------------------------------------

    async def model_config_id(
        self, org_id: str, project_id: str, config_hash: str, body: dict[str, Any]
    ) -> str:
        """The id of the project's config with these parameters, registering a new version if needed."""
        return await self._found_or_created(
            self._configs,
            tables.model_configs,
            {"project_id": project_id, "config_hash": config_hash},
            lambda: {
                "id": ids.new_id(ids.MODEL_CONFIG),
                "org_id": org_id,
                "name": body.get("name") or body["model"],
                "body": orjson.dumps(body).decode(),
                "created_at": now(),
            },
        )

    async def model_config(self, config_id: str) -> dict[str, Any] | None:
        query = select(tables.model_configs).where(tables.model_configs.c.id == config_id)
        async with self.engine.connect() as connection:
            row = (await connection.execute(query)).mappings().one_or_none()
        return dict(row) if row else None

    # -- sessions and parents ----------------------------------------------------------------------------

    async def session_by_reference(self, org_id: str, reference_id: str) -> str:
        return await self._found_or_created(
            self._sessions,
            tables.sessions,
            {"org_id": org_id, "reference_id": reference_id},
            lambda: {"id": ids.new_id(ids.SESSION), **_stamps()},
        )

    async def session_exists(self, org_id: str, session_id: str) -> bool:
        query = select(tables.sessions.c.id).where(
            tables.sessions.c.org_id == org_id, tables.sessions.c.id == session_id
        )
        async with self.engine.connect() as connection:
            return (await connection.execute(query)).scalar_one_or_none() is not None

    async def log_parent(
        self, org_id: str, *, log_id: str | None = None, reference_id: str | None = None
    ) -> tuple[str, str | None] | None:
        """(id, session_id) of a log of the organization, found by id or by reference id."""
        query = select(tables.logs.c.id, tables.logs.c.session_id).where(tables.logs.c.org_id == org_id)
        if log_id is not None:
            query = query.where(tables.logs.c.id == log_id)
        else:
            query = query.where(tables.logs.c.reference_id == reference_id)
        async with self.engine.connect() as connection:
            row = (await connection.execute(query.limit(1))).one_or_none()
        return (row[0], row[1]) if row else None

    # -- logs -----------------------------------------------------------------------------------------------

    async def get_log(self, org_id: str, log_id: str) -> dict[str, Any] | None:
        """A stored log with its payload expanded (content references resolved)."""
        query = select(tables.logs).where(tables.logs.c.org_id == org_id, tables.logs.c.id == log_id)
        async with self.engine.connect() as connection:
            row = (await connection.execute(query)).mappings().one_or_none()
            if row is None:
                return None
            log = dict(row)
            payload = orjson.loads(log["payload"]) if log["payload"] else None
            if payload is not None:
                refs = content.references(payload, set())
                blobs: dict[str, str] = {}
                if refs:
                    found = await connection.execute(
                        select(tables.blobs.c.hash, tables.blobs.c.data).where(tables.blobs.c.hash.in_(refs))
                    )
                    blobs = {str(digest): str(data) for digest, data in found.all()}
                payload = content.expand(payload, blobs)
        log["payload"] = payload
        log["metadata"] = orjson.loads(log["metadata"]) if log["metadata"] else None
        return log
