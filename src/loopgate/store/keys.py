"""Listing and revoking API keys (``loopgate keys list | revoke``). Creating one, and finding the
organization of a key a request sends, stay with the generation path's queries in ``repository.py``."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from loopgate.store import tables
from loopgate.store.projects import utc


@dataclass(frozen=True, slots=True)
class KeyListing:
    """A key as an operator sees it: never the key, never its hash."""

    id: str
    organization: str
    name: str | None
    created_at: datetime


class ApiKeyStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def listing(self, organization: str | None = None) -> list[KeyListing]:
        """Every key (of one organization, by name), by organization and then oldest first."""
        keys, orgs = tables.api_keys, tables.organizations
        query = (
            select(keys.c.id, orgs.c.name.label("organization"), keys.c.name, keys.c.created_at)
            .join(orgs, orgs.c.id == keys.c.org_id)
            .order_by(orgs.c.name, keys.c.created_at, keys.c.id)
        )
        if organization is not None:
            query = query.where(orgs.c.name == organization)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [KeyListing(str(row.id), str(row.organization), row.name, utc(row.created_at)) for row in rows]

    async def revoke(self, key_id: str) -> bool:
        """Deletes the key; False when there is no such key. Servers that checked it in the last
        ``LOOPGATE_AUTH_CACHE_SECONDS`` (30 s) may accept it until then: each process remembers a
        verified key that long."""
        async with self._engine.begin() as connection:
            deleted = await connection.execute(delete(tables.api_keys).where(tables.api_keys.c.id == key_id))
        return deleted.rowcount == 1
