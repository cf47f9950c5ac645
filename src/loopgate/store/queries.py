"""SQL helpers shared by the store's modules."""

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert_ignore(connection: AsyncConnection, table: Table) -> Any:
    """INSERT that leaves an existing row with the same unique key alone (both backends)."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()
