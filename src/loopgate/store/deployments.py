"""Environments (per organization) and deployments (which config version a project runs in each).

v4 has no endpoint that creates environments, so they are seeded the first time an organization needs
one: ``production`` with tag ``default``, plus the names the server configuration declares (tag
``other``). Seeding is an insert-if-absent per name, so concurrent first uses in several processes agree.
Environments are never deleted, which lets this process remember them.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loopgate import ids
from loopgate.store import tables
from loopgate.store.queries import dialect_insert, insert_ignore
from loopgate.store.repository import now

DEFAULT_ENVIRONMENT = "production"
DEFAULT_TAG = "default"
OTHER_TAG = "other"

_E = tables.environments
_D = tables.deployments


@dataclass(frozen=True, slots=True)
class Environment:
    id: str
    name: str
    tag: str


class Deployments:
    def __init__(self, engine: AsyncEngine, extra_environments: list[str]) -> None:
        self._engine = engine
        self._extra = [name for name in extra_environments if name != DEFAULT_ENVIRONMENT]
        self._environments: dict[str, list[Environment]] = {}

    # -- environments -------------------------------------------------------------------------------------

    async def environments(self, org_id: str) -> list[Environment]:
        """The organization's environments, the default one first, seeding them on first need."""
        known = self._environments.get(org_id)
        if known is None:
            known = await self._seed(org_id)
            self._environments[org_id] = known
        return known

    async def _seed(self, org_id: str) -> list[Environment]:
        wanted = [(DEFAULT_ENVIRONMENT, DEFAULT_TAG)] + [(name, OTHER_TAG) for name in self._extra]
        async with self._engine.begin() as connection:
            for name, tag in wanted:
                await connection.execute(
                    insert_ignore(connection, _E),
                    {
                        "id": ids.new_id(ids.ENVIRONMENT),
                        "org_id": org_id,
                        "name": name,
                        "tag": tag,
                        "created_at": now(),
                    },
                )
            rows = (await connection.execute(select(_E).where(_E.c.org_id == org_id))).mappings().all()
        found = [Environment(row["id"], row["name"], row["tag"]) for row in rows]
        order = {name: position for position, (name, _tag) in enumerate(wanted)}
        # Default first, then configured order; environments no longer configured keep their place last.
        return sorted(
            found, key=lambda env: (env.tag != DEFAULT_TAG, order.get(env.name, len(order)), env.name)
        )

    async def default(self, org_id: str) -> Environment:
        environments = await self.environments(org_id)
        return next(env for env in environments if env.tag == DEFAULT_TAG)

    async def by_name(self, org_id: str, name: str | None) -> Environment | None:
        """The environment with this name; the default one when ``name`` is None."""
        if name is None:
            return await self.default(org_id)
        return next((env for env in await self.environments(org_id) if env.name == name), None)

    async def by_id(self, org_id: str, environment_id: str) -> Environment | None:
        return next((env for env in await self.environments(org_id) if env.id == environment_id), None)

    # -- deployments --------------------------------------------------------------------------------------

    async def deployed(self, project_id: str) -> dict[str, str]:
        """environment id -> config id of everything deployed in the project."""
        query = select(_D.c.environment_id, _D.c.config_id).where(_D.c.project_id == project_id)
        async with self._engine.connect() as connection:
            return {str(env): str(config) for env, config in (await connection.execute(query)).all()}

    async def deployed_many(self, project_ids: list[str], environment_id: str) -> dict[str, str]:
        """project id -> config id deployed to one environment, for a page of projects."""
        if not project_ids:
            return {}
        query = select(_D.c.project_id, _D.c.config_id).where(
            _D.c.project_id.in_(project_ids), _D.c.environment_id == environment_id
        )
        async with self._engine.connect() as connection:
            return {str(project): str(config) for project, config in (await connection.execute(query)).all()}

    async def deployed_config(self, project_id: str, environment_id: str) -> str | None:
        query = select(_D.c.config_id).where(
            _D.c.project_id == project_id, _D.c.environment_id == environment_id
        )
        async with self._engine.connect() as connection:
            found = (await connection.execute(query)).scalar_one_or_none()
        return str(found) if found is not None else None

    async def deploy(self, project_id: str, config_id: str, environment_ids: list[str]) -> None:
        """Puts the config in each environment, replacing whatever was there."""
        stamp = now()
        rows = [
            {
                "project_id": project_id,
                "environment_id": env,
                "config_id": config_id,
                "created_at": stamp,
                "updated_at": stamp,
            }
            for env in environment_ids
        ]
        async with self._engine.begin() as connection:
            for row in rows:
                await connection.execute(_upsert(connection), row)

    async def deploy_if_vacant(self, project_id: str, config_id: str, environment_id: str) -> bool:
        """Deploys only when the environment has nothing deployed; True if it did."""
        stamp = now()
        row = {
            "project_id": project_id,
            "environment_id": environment_id,
            "config_id": config_id,
            "created_at": stamp,
            "updated_at": stamp,
        }
        async with self._engine.begin() as connection:
            result = await connection.execute(insert_ignore(connection, _D), row)
        return bool(result.rowcount)

    async def undeploy(self, project_id: str, environment_id: str) -> None:
        statement = delete(_D).where(_D.c.project_id == project_id, _D.c.environment_id == environment_id)
        async with self._engine.begin() as connection:
            await connection.execute(statement)


def _upsert(connection: AsyncConnection) -> Any:
    statement = dialect_insert(connection, _D)
    return statement.on_conflict_do_update(
        index_elements=[_D.c.project_id, _D.c.environment_id],
        set_={"config_id": statement.excluded.config_id, "updated_at": statement.excluded.updated_at},
    )
