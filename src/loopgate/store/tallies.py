"""``log_tallies``: how many logs each (organization, project, config version) holds, kept exact by
triggers on ``logs`` (revision 0005). Every v4 list returns an exact ``total``, and counting a project's
800,000 logs from an index still reads 800,000 index entries (150-350 ms on either backend); the totals
that are sums of these keys -- a project's logs, a model filter's logs, a version's usage, the projects
page's log counts -- are read here in a few rows instead.

A NULL project or config is stored as '' (NULLs never conflict in a unique key, so they could not be
upserted), which no real id equals.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from loopgate.store import tables

_T = tables.log_tallies


async def project_total(
    connection: AsyncConnection, org_id: str, project_id: str, configs: Any = None
) -> int:
    """The organization's logs in the project; with ``configs`` (a select of config ids), only theirs."""
    query = select(func.coalesce(func.sum(_T.c.logs), 0)).where(
        _T.c.org_id == org_id, _T.c.project_id == project_id
    )
    if configs is not None:
        query = query.where(_T.c.config_id.in_(configs))
    return int((await connection.execute(query)).scalar_one())


async def by_project(connection: AsyncConnection, project_ids: Sequence[str]) -> dict[str, int]:
    query = (
        select(_T.c.project_id, func.sum(_T.c.logs))
        .where(_T.c.project_id.in_(list(project_ids)))
        .group_by(_T.c.project_id)
    )
    return {str(key): int(count) for key, count in await connection.execute(query) if count}


async def by_config(connection: AsyncConnection, config_ids: Sequence[str]) -> dict[str, int]:
    query = (
        select(_T.c.config_id, func.sum(_T.c.logs))
        .where(_T.c.config_id.in_(list(config_ids)))
        .group_by(_T.c.config_id)
    )
    return {str(key): int(count) for key, count in await connection.execute(query) if count}


def sort_key(log: Mapping[str, Any]) -> tuple[str, str, str]:
    """The tally row an inserted log updates. Writers insert a batch in this order, so two PostgreSQL
    transactions lock the tally rows they share in the same order and never deadlock on them."""
    return (str(log.get("org_id") or ""), str(log.get("project_id") or ""), str(log.get("config_id") or ""))
