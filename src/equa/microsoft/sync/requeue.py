"""A run that meets an outage is queued again: when, how many times, and what it tells the admin meanwhile.

The Graph client retries 429, 503, 504 and network errors within its own budgets (graph/retry.py). When those are
spent, the outage is longer than one request can wait, but not a reason to give up on the run: it goes back to
`queued` and tries again after a backoff (EQUA_SYNC_REQUEUE_BACKOFF, doubled each time), at most
EQUA_SYNC_MAX_REQUEUES times. What it already changed in Microsoft 365 is kept: its added and removed members stay
on the run, and the next try plans from the group as it is then. Only errors every try would meet (consent,
permission, a missing or unmanageable group, a rejected sign-in) fail a run at once (policy.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.db.base import utcnow
from equa.microsoft.graph import GraphError, GraphThrottled, GraphUsage
from equa.microsoft.models import RunStatus, SyncRun
from equa.microsoft.sync.lifecycle import graph_stats_json, keep_made_changes, requeue_run

if TYPE_CHECKING:
    from equa.settings import Settings

# The longest a run waits between two tries, whatever the backoff and Retry-After say.
MAX_WAIT_SECONDS = 3600.0


@dataclass(frozen=True)
class RequeuePolicy:
    """How often, and after how long, a run that met an outage is tried again."""

    max_requeues: int = 3
    backoff_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RequeuePolicy:
        return cls(settings.sync_max_requeues, settings.sync_requeue_backoff_seconds)

    def allows(self, requeues_so_far: int) -> bool:
        return requeues_so_far < self.max_requeues

    def delay(self, requeues_so_far: int, error: GraphError | None = None) -> float:
        """Seconds before the next try: the backoff doubled per earlier requeue, or Graph's Retry-After if longer."""
        wait = self.backoff_seconds * (2**requeues_so_far)
        if isinstance(error, GraphThrottled) and error.retry_after is not None:
            wait = max(wait, error.retry_after)
        return min(wait, MAX_WAIT_SECONDS)


NO_REQUEUES = RequeuePolicy(max_requeues=0)


def is_outage(error: GraphError) -> bool:
    """Graph or the sign-in service stayed unavailable or throttled after the client's retries."""
    return error.retryable


def outage_code(error: GraphError) -> str:
    return "microsoft_throttled" if isinstance(error, GraphThrottled) else "microsoft_unavailable"


def kept_text(kept: int) -> str:
    if kept == 0:
        return "Nothing was changed in Microsoft 365 yet."
    return f"The {kept} change{'s' if kept != 1 else ''} already made in Microsoft 365 {'are' if kept != 1 else 'is'} kept."


def requeued_message(reason: str, *, kept: int, retry_at: datetime, attempt: int, attempts: int) -> str:
    """The run's error while it waits: why, what it keeps, and when it tries again."""
    return (
        f"{reason} {kept_text(kept)} The sync is queued again and tries once more at "
        f"{retry_at:%H:%M:%S} UTC (try {attempt} of {attempts})."
    )


REQUEUED_ACTION = (
    "Nothing to do: the sync tries again by itself and picks up where it stopped. If Microsoft 365 stays "
    "unavailable, check its service health (https://status.cloud.microsoft)."
)


def gave_up_message(reason: str, *, kept: int, requeues: int) -> str:
    """The error of a run that was queued again as often as allowed and still met the outage."""
    tries = requeues + 1
    return f"{reason} The sync tried {tries} time{'s' if tries != 1 else ''} and stopped. {kept_text(kept)}"


GAVE_UP_ACTION = (
    "Start the sync again once Microsoft 365 answers (https://status.cloud.microsoft): it retries only what is "
    "left. Frequent outages: raise EQUA_SYNC_MAX_REQUEUES or EQUA_SYNC_REQUEUE_BACKOFF."
)


async def requeue_after_outage(
    session_factory: async_sessionmaker[AsyncSession],
    run: SyncRun,
    policy: RequeuePolicy,
    usage: GraphUsage,
    error: GraphError | None,
    reason: str,
) -> str:
    """Queue the run again after its backoff, keeping the changes it made; `queued`, or `abandoned` if the run had
    been marked abandoned meanwhile."""
    retry_at = utcnow() + timedelta(seconds=policy.delay(run.requeues, error))
    async with session_factory() as session:
        kept = await keep_made_changes(session, run.id, dry_run=run.dry_run)
        queued = await requeue_run(
            session,
            run.id,
            retry_at=retry_at,
            counts=kept.counts,
            graph_stats=graph_stats_json(usage, run.graph_stats),
            error_code=outage_code(error) if error is not None else "microsoft_unavailable",
            error_message=requeued_message(
                reason,
                kept=kept.changes,
                retry_at=retry_at,
                attempt=run.requeues + 2,
                attempts=policy.max_requeues + 1,
            ),
            error_action=REQUEUED_ACTION,
        )
        await session.commit()
    return RunStatus.QUEUED.value if queued else RunStatus.ABANDONED.value
