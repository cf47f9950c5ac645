"""SQLite's search index: ``logs_search``, an FTS5 table with the trigram tokenizer over each log's output
and inputs (revision 0005 creates it, triggers on ``logs`` keep it current, see there).

A trigram phrase query finds every row holding the term as a substring, case-folded, so it can narrow a
``LIKE '%term%'`` to a few candidate rows instead of a scan of the project. Terms shorter than a trigram
have no index entries; those searches keep scanning.
"""

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

MIN_TERM = 3
TABLE = "logs_search"


async def available(connection: AsyncConnection) -> bool:
    """Whether the index exists: revision 0005 skips it on an SQLite built without FTS5."""
    query = text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name")
    return (await connection.execute(query, {"name": TABLE})).first() is not None


def _phrase(term: str) -> str:
    """An FTS5 string: the term in double quotes, inner quotes doubled (no operators, no syntax errors)."""
    return '"' + term.replace('"', '""') + '"'


def candidates(terms: Iterable[tuple[str, str]]) -> Any:
    """Rowids of the logs whose column (``output`` or ``inputs``) contains one of the terms."""
    expression = " OR ".join(f"{column} : {_phrase(term)}" for column, term in terms)
    return (
        select(text("rowid"))
        .select_from(text(TABLE))
        .where(text(f"{TABLE} MATCH :search_expression").bindparams(search_expression=expression))
    )
