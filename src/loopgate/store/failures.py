"""A database that cannot take a request now -- a full disk, an I/O error, a lock held too long, a lost
connection -- is a 503 ``StorageUnavailable`` that says why, never a bare 500: the client learns that a
retry can succeed, and a bug (any other error) still shows as one.

What the client is told comes from a closed vocabulary: SQLite's own messages ("database or disk is
full", "disk I/O error") name no path, host or user, so they are passed on; a server database's messages
can ("connection to 127.0.0.1:5432 refused", "password authentication failed for user ..."), so the
client only hears whether it could be reached. The whole message goes to the server's log."""

import logging
import sqlite3

from sqlalchemy.exc import DBAPIError, OperationalError

from loopgate.errors import StorageUnavailable

_log = logging.getLogger("loopgate.store")
UNREACHABLE = "cannot reach the database"  # the start of the error db.py raises for a refused connection


def storage_failure(error: BaseException) -> str | None:
    """What the client may be told when ``error`` means the database cannot take the request now; None
    when it means something else (a bug)."""
    if isinstance(error, DBAPIError):
        if not (isinstance(error, OperationalError) or error.connection_invalidated):
            return None
        cause = error.orig
        if isinstance(cause, sqlite3.Error):
            return _first_line(str(cause))
        if error.connection_invalidated or str(cause).startswith(UNREACHABLE):
            return UNREACHABLE
        return "the database refused the request"
    if isinstance(error, sqlite3.OperationalError):
        return _first_line(str(error))
    return None


def unavailable(error: BaseException, where: str) -> StorageUnavailable | None:
    """The 503 for a request (``where``: its method and path) the database could not complete, its whole
    error logged; None when ``error`` is something else."""
    reason = storage_failure(error)
    if reason is None:
        return None
    _log.error("%s: the database could not complete it: %s", where, _first_line(str(error)))
    return StorageUnavailable.database(reason)


def _first_line(message: str) -> str:
    lines = message.strip().splitlines()
    return lines[0][:200] if lines else "the database refused the request"
