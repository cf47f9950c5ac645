"""SQL helpers shared by the store's modules."""

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")
_IN_LIST = 500  # values per IN (...): old SQLite builds allow only 999 bound parameters


def storable(value: Any) -> Any:
    """``value`` as every backend can hold it: PostgreSQL's text cannot hold U+0000, so a string with one is
    stored with U+FFFD in its place (anything else as it is)."""
    if type(value) is str and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def in_chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    """``values`` in slices small enough for one ``IN (...)`` list on every backend."""
    for start in range(0, len(values), _IN_LIST):
        yield values[start : start + _IN_LIST]


def dialect_insert(connection: AsyncConnection, table: Table) -> Any:
    """The backend's own INSERT construct, which has ``on_conflict_do_*``.

    Imported here, on first use: importing the PostgreSQL dialect takes ~40 ms, a twentieth of the time
    from ``loopgate serve`` to its first answer, and a server on SQLite never needs it."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def insert_ignore(connection: AsyncConnection, table: Table) -> Any:
    """INSERT that leaves an existing row with the same unique key alone (both backends)."""
    return dialect_insert(connection, table).on_conflict_do_nothing()
