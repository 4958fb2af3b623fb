"""Compaction of a tenant's delta rounds: unlinks (and links spread over time) leave rounds with free places, so an
idle cycle would cost more than one request per 50 tracked groups. When the rounds with free places would fit in at
least one round fewer, they are merged.

A deltaLink embeds its `$filter`, so a round's groups cannot change under its token: merging means new rounds,
started with `$deltatoken=latest`, replacing the old ones. It happens in two steps, so nothing is lost in between:

1. Cycle N takes the successors: one `latest` request per 50 merged groups, at time t0. They are stored with
   `takes_over_at = t0 + SETTLE` and are not resumed; the old rounds go on being resumed and folded as usual.
2. The first cycle from `takes_over_at` on resumes the old rounds once more, folds their changes exactly as any cycle
   does, then, in one transaction, deletes them and makes the successors ordinary rounds. The next cycle resumes
   the successors from t0.

Why nothing is lost: a change written after t0 is in the successors' deltaLinks (`latest` is "from now on"; in the
emulator the token's position is the last change written). A change written before t0 is in the old rounds' last
resume, which starts at t1 >= t0 + SETTLE, provided Graph has processed it by then: delta has processing delays (the
emulator's replication lag; a resumed round stops before the first change still replicating, and comes back for it
later). SETTLE is far above those delays (seconds, exceptionally minutes). Changes written between t0 and t1 are seen
by both, which is harmless: pending changes are kept in order and a delta run takes the last word on each person,
and the fold drops echoes of what Equa already knows.

Why not in one cycle (resume the old rounds, then `latest`): a change written just before `latest` but still being
processed when the old rounds are read is behind the new token's position and ahead of the old rounds' deltaLinks,
so in neither; it would take a full reconcile of every moved group (one or more requests per group, plus a run per
organization) to close that gap. Waiting costs nothing: the successors are not resumed while they wait.

Tolerance: merging only the rounds with free places into as few rounds as they fit makes the rounds optimal again
(ceil(groups / 50) in all), and the next compaction needs at least 50 more free places (or new rounds of newly linked
groups) to save a round, so a single unlink never causes one, and none repeats while its successors wait. Each one
costs one request per merged round once and saves at least one request every cycle after.
"""

from __future__ import annotations

import logging
import math
import uuid
from datetime import datetime, timedelta

from equa.microsoft.fleet import repository as fleet_repository
from equa.microsoft.fleet.models import DeltaRound
from equa.microsoft.fleet.sessions import SessionOpener
from equa.microsoft.graph import GraphClient, GraphError
from equa.microsoft.graph.delta import MAX_GROUPS_PER_ROUND, start_delta_round

log = logging.getLogger("equa.microsoft.fleet")

# How long successors wait before taking over: far above Graph's delta processing delays (see above).
SETTLE = timedelta(minutes=15)


def groups_to_merge(held: dict[uuid.UUID, list[str]]) -> list[str]:
    """The groups of the rounds with free places, when they fit in at least one round fewer; else none.
    `held`: each round that was read this cycle -> the linked groups it tracks."""
    partial = [groups for groups in held.values() if len(groups) < MAX_GROUPS_PER_ROUND]
    merged = sorted(g for groups in partial for g in groups)
    if len(partial) - math.ceil(len(merged) / MAX_GROUPS_PER_ROUND) < 1:
        return []
    return merged


async def take_successors(
    session_factory: SessionOpener,
    graph: GraphClient,
    tenant_id: str,
    groups: list[str],
    now: datetime,
) -> int:
    """Start the rounds that will replace those holding `groups`; returns the requests made. All or none are
    stored: a partial set would leave some old rounds to merge again."""
    links: list[tuple[list[str], str]] = []
    requests = 0
    for start in range(0, len(groups), MAX_GROUPS_PER_ROUND):
        chunk = groups[start : start + MAX_GROUPS_PER_ROUND]
        try:
            links.append((chunk, await start_delta_round(graph, chunk)))
        except GraphError as error:
            log.warning("tenant %s: compaction put off (%s); tried again next cycle", tenant_id, error.code)
            return requests
        requests += 1
    async with session_factory() as session:
        for chunk, delta_link in links:
            session.add(
                DeltaRound(
                    tenant_id=tenant_id, group_ids=chunk, delta_link=delta_link, takes_over_at=now + SETTLE
                )
            )
        await session.commit()
    log.info("tenant %s: %d group(s) to be merged into %d round(s)", tenant_id, len(groups), len(links))
    return requests


async def take_over(
    session_factory: SessionOpener,
    tenant_id: str,
    successors: list[DeltaRound],
    held: dict[uuid.UUID, list[str]],
    now: datetime,
) -> tuple[set[str], int]:
    """Once due, the successors replace the rounds whose groups they hold; those were read this cycle (`held`), just
    before. Returns the groups the successors now track, and how many rounds they replaced."""
    due = [s for s in successors if s.takes_over_at is not None and s.takes_over_at <= now]
    if not due:
        return set(), 0
    covered = {g for s in due for g in s.group_ids}
    replaced = [round_id for round_id, groups in held.items() if set(groups) <= covered]
    async with session_factory() as session:
        for round_id in replaced:
            await fleet_repository.delete_round(session, round_id)
        await fleet_repository.activate_rounds(session, [s.id for s in due])
        await session.commit()
    log.info("tenant %s: %d round(s) merged into %d", tenant_id, len(replaced), len(due))
    return covered, len(replaced)
