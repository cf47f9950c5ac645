"""The leases of evaluations loopgate runs itself (``hl_generated=true``): which process runs which run.

A run is unfinished while ``generated_at`` is NULL. The process that holds ``owner`` (until ``lease_until``,
epoch seconds) is the only one that generates for it; it renews all its leases every few seconds. A run
whose lease lapsed (its process stopped or died) is taken by whichever process claims it first, and goes on
from where it stopped: what a run has done is in ``evaluation_logs`` and ``evaluation_results``.
"""

import time
from collections.abc import Callable, Collection

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from loopgate.store import tables
from loopgate.store.evaluations import EvaluationRow, EvaluationStore
from loopgate.store.repository import now

_V = tables.evaluations
# A generated run loopgate has not finished; while it is also pending or running, a runner works on it.
_UNGENERATED = (_V.c.hl_generated.is_(True), _V.c.generated_at.is_(None))
_UNFINISHED = (*_UNGENERATED, _V.c.status.in_(("pending", "running")))


def _never(_owner: str) -> bool:
    return False


class RunLeases:
    def __init__(self, engine: AsyncEngine, *, lease_seconds: float) -> None:
        self._engine = engine
        self._evaluations = EvaluationStore(engine)
        self.lease_seconds = lease_seconds

    async def claim(
        self, owner: str, *, skip: Collection[str] = (), abandoned: Callable[[str], bool] = _never
    ) -> EvaluationRow | None:
        """The oldest unfinished run that ``owner`` may take (one it holds and is not running -- not in
        ``skip`` --, one nobody holds, or one whose lease lapsed or whose holder ``abandoned`` says is
        gone), now held by ``owner`` and ``running``; None when there is none."""
        query = select(_V.c.id, _V.c.org_id, _V.c.owner, _V.c.lease_until).where(*_UNFINISHED)
        async with self._engine.connect() as connection:
            candidates = list(await connection.execute(query.order_by(_V.c.created_at, _V.c.id)))
        stamp = time.time()
        for evaluation_id, org_id, holder, until in candidates:
            if evaluation_id in skip:
                continue
            if holder not in (None, owner) and until >= stamp and not abandoned(str(holder)):
                continue
            # Only if the lease is still as read: of two processes taking a lapsed lease, one wins.
            seen = _V.c.owner.is_(None) if holder is None else _V.c.owner == holder
            statement = (
                update(_V)
                .where(_V.c.id == evaluation_id, *_UNFINISHED, seen, _V.c.lease_until == until)
                .values(owner=owner, lease_until=stamp + self.lease_seconds, status="running")
            )
            async with self._engine.begin() as connection:
                taken = (await connection.execute(statement)).rowcount == 1
            if taken:
                return await self._evaluations.get(org_id, evaluation_id)
        return None

    async def renew(self, owner: str) -> set[str]:
        """Extends every lease ``owner`` holds; returns the runs it still holds."""
        statement = (
            update(_V)
            .where(_V.c.owner == owner, *_UNFINISHED)
            .values(lease_until=time.time() + self.lease_seconds)
        )
        async with self._engine.begin() as connection:
            await connection.execute(statement)
            held = await connection.execute(select(_V.c.id).where(_V.c.owner == owner, *_UNFINISHED))
            return {str(evaluation_id) for (evaluation_id,) in held}

    async def finish(self, evaluation_id: str, owner: str, *, status: str) -> bool:
        """Marks the run's generation done and gives its lease up; False when ``owner`` no longer held it."""
        stamp = now()
        statement = (
            update(_V)
            .where(_V.c.id == evaluation_id, _V.c.owner == owner, *_UNFINISHED)
            .values(generated_at=stamp, updated_at=stamp, status=status, owner=None, lease_until=0.0)
        )
        async with self._engine.begin() as connection:
            return (await connection.execute(statement)).rowcount == 1

    async def release(self, owner: str) -> None:
        """Gives every lease of ``owner`` up (at shutdown), so another process goes on at once."""
        statement = update(_V).where(_V.c.owner == owner).values(owner=None, lease_until=0.0)
        async with self._engine.begin() as connection:
            await connection.execute(statement)

    async def reopen(self, org_id: str, evaluation_id: str) -> None:
        """A generated run with new evaluators is unfinished again (and running), so a runner takes it up."""
        statement = (
            update(_V)
            .where(_V.c.org_id == org_id, _V.c.id == evaluation_id, _V.c.hl_generated.is_(True))
            .values(generated_at=None, status="running", updated_at=now())
        )
        async with self._engine.begin() as connection:
            await connection.execute(statement)

    async def cancel(self, org_id: str, evaluation_id: str) -> bool:
        """Stops an unfinished run: ``cancelled``, its lease given up (its holder sees that at its next
        renewal). False when the run is not an unfinished generated one."""
        statement = (
            update(_V)
            .where(_V.c.org_id == org_id, _V.c.id == evaluation_id, *_UNFINISHED)
            .values(status="cancelled", owner=None, lease_until=0.0, updated_at=now())
        )
        async with self._engine.begin() as connection:
            return (await connection.execute(statement)).rowcount == 1

    async def resume(self, org_id: str, evaluation_id: str) -> bool:
        """A cancelled generated run ``running`` again: the next claim goes on where it stopped."""
        statement = (
            update(_V)
            .where(_V.c.org_id == org_id, _V.c.id == evaluation_id, *_UNGENERATED, _V.c.status == "cancelled")
            .values(status="running", updated_at=now())
        )
        async with self._engine.begin() as connection:
            return (await connection.execute(statement)).rowcount == 1
