"""What a sync does with a Graph error: one table, error class -> retry, re-queue, or fail the run.

The Graph client has already retried what is worth retrying at once (429, 503, 504 and network errors, within its
attempt and wait budgets: graph/retry.py); this table decides what a run does with what is left:

- RETRY: try again within this run. Only a 404 qualifies: an object created moments ago may still be replicating,
  so the run looks it up again and retries while_replicating, with REPLICATION_DELAYS between tries.
- REQUEUE: this member's change is left for the next run: it is recorded (failed, or blockedByPolicy for a guest
  the tenant keeps out), the run goes on, and the next sync, which plans from the group as it is, tries it again.
- FAIL_RUN: every further write would fail the same way (missing consent, a group Graph cannot change, a rejected
  sign-in): the run stops at once, and its error tells the admin what to fix.

An error outside the member writes (listing the group, looking up addresses) has no member to record it on, so it
fails the run, whatever its class; a 404 there is retried first (RETRY).
"""

from __future__ import annotations

from enum import StrEnum

from equa.microsoft.graph import (
    GraphAuthenticationFailed,
    GraphError,
    GraphGuestBlocked,
    GraphNotFound,
    GraphPermissionDenied,
    GraphUnmanageable,
)

# Seconds between tries while a just-created group or user replicates (bounded: len + 1 tries in all).
REPLICATION_DELAYS = (1.0, 2.0, 4.0)


class OnError(StrEnum):
    RETRY = "retry"
    REQUEUE = "requeue"
    FAIL_RUN = "fail_run"


# The first row whose class the error is an instance of decides, so subclasses come before their parents.
POLICY: tuple[tuple[type[GraphError], OnError], ...] = (
    (GraphGuestBlocked, OnError.REQUEUE),  # one person kept out by tenant policy: reported, the rest go on
    (GraphPermissionDenied, OnError.FAIL_RUN),
    (GraphUnmanageable, OnError.FAIL_RUN),
    (GraphAuthenticationFailed, OnError.FAIL_RUN),
    (GraphNotFound, OnError.RETRY),
)


def on_error(error: GraphError) -> OnError:
    """What a run does with `error`, answered by a member write (see the module docstring)."""
    if error.retryable:
        # Transient and throttled: the client retried it for as long as its budget allowed; the next run tries again.
        return OnError.REQUEUE
    for error_class, action in POLICY:
        if isinstance(error, error_class):
            return action
    return OnError.REQUEUE


def fails_the_run(error: GraphError) -> bool:
    return on_error(error) is OnError.FAIL_RUN
