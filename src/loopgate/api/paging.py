"""Query parameters of the paginated lists (``/logs``, ``/sessions``, dataset datapoints, evaluations),
and the prose-only ``sort=<column>.<asc|desc>`` of ``/logs`` and ``/evaluations``.

v4 counts pages from 0 on some lists and from 1 on others (spec 1.6); each route says which and sets its
own default size. The bounds are sanity limits nobody should meet: they keep ``page * size`` inside a
64-bit OFFSET, so an absurd page is a 422 rather than a database error.
"""

from typing import Annotated

from fastapi import Query

from loopgate.errors import RequestInvalid

_MAX_SIZE = 1_000_000
_MAX_PAGE = 1_000_000_000

PageFromZero = Annotated[int, Query(ge=0, le=_MAX_PAGE, description="Page offset (0 is the first page).")]
PageFromOne = Annotated[int, Query(ge=1, le=_MAX_PAGE, description="Page number (1 is the first page).")]
PageSize = Annotated[int, Query(ge=1, le=_MAX_SIZE)]


def sort_keys(values: list[str], columns: tuple[str, ...], family: str) -> list[tuple[str, bool]]:
    """Each ``<column>.<asc|desc>`` as (column, descending): a column is one of ``columns`` or names one
    of ``family`` (``feedback-<type>``, ``evaluator-<id>``). The family's prefix alone names none, so it
    is refused with the rest rather than read as a sort that changes nothing."""
    prefix = family.split("<", 1)[0]
    keys = []
    for value in values:
        column, _, direction = value.rpartition(".")
        named = column.startswith(prefix) and column != prefix
        if direction not in ("asc", "desc") or not (column in columns or named):
            raise RequestInvalid(
                ["query", "sort"],
                f"sort must be <column>.<asc|desc> with column {', '.join(columns)} or {family}, "
                f"not {value!r}",
            )
        keys.append((column, direction == "desc"))
    return keys
