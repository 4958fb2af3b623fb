"""Request and response bodies of the sync API (camelCase JSON)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field, StrictBool

from equa.accounts.schemas import CamelModel
from equa.microsoft.models import FlaggedMember, SyncOutcome, SyncRun


class SyncMembersIn(CamelModel):
    dry_run: StrictBool = Field(False, description="Plan only: report what would change, write nothing.")


class SyncSettingsIn(CamelModel):
    auto_sync: StrictBool | None = Field(None, description="Sync on a schedule (EQUA_SYNC_INTERVAL).")
    remove_departed: StrictBool | None = Field(
        None,
        description="Remove from the group the members the sync added who have since left the team.",
    )


class SyncSettingsOut(CamelModel):
    auto_sync: bool
    remove_departed: bool


class ProgressOut(CamelModel):
    phase: str | None
    done: int
    total: int


class RunErrorOut(CamelModel):
    code: str
    message: str | None
    action: str | None


class GraphStatsOut(CamelModel):
    """The run's Microsoft Graph traffic (token requests not included); all zero for a run that never started."""

    requests: int = Field(0, description="HTTP requests sent to Microsoft Graph, retries included.")
    batch_subrequests: int = Field(0, description="Requests sent inside $batch envelopes.")
    throttled: int = Field(0, description="429 answers, to requests or to $batch sub-requests.")
    retries: int = Field(0, description="Requests and $batch sub-requests sent again.")


class SyncRunOut(CamelModel):
    id: uuid.UUID
    status: str
    dry_run: bool
    trigger: str
    group_id: str | None
    requested_by: uuid.UUID | None
    counts: dict[str, int]
    progress: ProgressOut
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    error: RunErrorOut | None
    graph_stats: GraphStatsOut
    requeues: int = Field(
        0,
        description="Times the run was queued again after Microsoft 365 stayed unavailable (EQUA_SYNC_MAX_REQUEUES).",
    )
    retry_at: datetime | None = Field(None, description="When a run queued again tries once more.")
    targets: list[uuid.UUID] | None = Field(
        None,
        description=(
            "A targeted run (trigger `push`, a team change; `delta`, changes seen on either side): the Equa user ids "
            "whose team change it carries (empty: only changes made in Microsoft 365). None: everyone."
        ),
    )

    @classmethod
    def of(cls, run: SyncRun) -> SyncRunOut:
        stored = run.graph_stats or {}
        return cls(
            id=run.id,
            status=run.status,
            dry_run=run.dry_run,
            trigger=run.trigger,
            group_id=run.group_id,
            requested_by=run.requested_by,
            counts={k: int(v) for k, v in (run.counts or {}).items()},
            progress=ProgressOut(phase=run.phase, done=run.progress_done, total=run.progress_total),
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            heartbeat_at=run.heartbeat_at,
            error=(
                RunErrorOut(code=run.error_code, message=run.error_message, action=run.error_action)
                if run.error_code
                else None
            ),
            graph_stats=GraphStatsOut(
                requests=int(stored.get("requests", 0)),
                batch_subrequests=int(stored.get("batchSubrequests", 0)),
                throttled=int(stored.get("throttled", 0)),
                retries=int(stored.get("retries", 0)),
            ),
            requeues=run.requeues or 0,
            retry_at=run.retry_at if run.status == "queued" else None,
            targets=None if run.targets is None else [uuid.UUID(t) for t in run.targets],
        )


class SyncRunPageOut(CamelModel):
    items: list[SyncRunOut]
    next_cursor: str | None


class OutcomeOut(CamelModel):
    outcome: str
    user_id: uuid.UUID | None
    directory_id: str | None
    email: str | None
    display_name: str | None
    message: str | None

    @classmethod
    def of(cls, row: SyncOutcome) -> OutcomeOut:
        return cls(
            outcome=row.outcome,
            user_id=row.user_id,
            directory_id=row.directory_id,
            email=row.email,
            display_name=row.display_name,
            message=row.message,
        )


class OutcomePageOut(CamelModel):
    items: list[OutcomeOut]
    next_cursor: str | None


class FlaggedMemberOut(CamelModel):
    id: uuid.UUID
    directory_id: str
    display_name: str | None
    email: str | None
    user_principal_name: str | None
    user_type: str | None
    status: str
    first_seen_at: datetime
    last_seen_at: datetime
    decided_by: uuid.UUID | None
    decided_at: datetime | None
    # Only in the answer to an invite: the invitation's single-use link.
    invitation_url: str | None = None

    @classmethod
    def of(cls, flag: FlaggedMember) -> FlaggedMemberOut:
        return cls(
            id=flag.id,
            directory_id=flag.directory_id,
            display_name=flag.display_name,
            email=flag.email,
            user_principal_name=flag.user_principal_name,
            user_type=flag.user_type,
            status=flag.status,
            first_seen_at=flag.first_seen_at,
            last_seen_at=flag.last_seen_at,
            decided_by=flag.decided_by,
            decided_at=flag.decided_at,
        )


class FlaggedMemberPageOut(CamelModel):
    items: list[FlaggedMemberOut]
    next_cursor: str | None
