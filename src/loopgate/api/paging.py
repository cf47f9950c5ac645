"""Query parameters of the paginated lists (``/logs``, ``/sessions``, dataset datapoints, evaluations).

v4 counts pages from 0 on some lists and from 1 on others (spec 1.6); each route says which and sets its
own default size. The bounds are sanity limits nobody should meet: they keep ``page * size`` inside a
64-bit OFFSET, so an absurd page is a 422 rather than a database error.
"""

from typing import Annotated

from fastapi import Query

_MAX_SIZE = 1_000_000
_MAX_PAGE = 1_000_000_000

PageFromZero = Annotated[int, Query(ge=0, le=_MAX_PAGE, description="Page offset (0 is the first page).")]
PageFromOne = Annotated[int, Query(ge=1, le=_MAX_PAGE, description="Page number (1 is the first page).")]
PageSize = Annotated[int, Query(ge=1, le=_MAX_SIZE)]
