"""A database that cannot take a request now -- a full disk, an I/O error, a lock held too long, a lost
connection -- is a 503 ``StorageUnavailable`` that says why, never a bare 500: the client learns that a
retry can succeed, and a bug (any other error) still shows as one."""

import sqlite3

from sqlalchemy.exc import DBAPIError, OperationalError

from loopgate.errors import StorageUnavailable


def storage_failure(error: BaseException) -> str | None:
    """The database's own words when ``error`` means it cannot take the request now; None otherwise."""
    if isinstance(error, OperationalError) or (
        isinstance(error, DBAPIError) and error.connection_invalidated
    ):
        return _first_line(str(error.orig))  # SQLAlchemy's own text repeats the statement and its values
    if isinstance(error, sqlite3.OperationalError):
        return _first_line(str(error))
    return None


def unavailable(error: BaseException) -> StorageUnavailable | None:
    """The 503 for a request the database could not complete, or None when ``error`` is something else."""
    reason = storage_failure(error)
    return None if reason is None else StorageUnavailable.database(reason)


def _first_line(message: str) -> str:
    lines = message.strip().splitlines()
    return lines[0][:200] if lines else "the database refused the request"
