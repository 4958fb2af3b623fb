"""SyncPlan -> the fewest Graph requests: members listed 999 a page, added 20 per PATCH, all packed 20 per $batch.

A PATCH members@odata.bind is all or nothing: one member already there (or gone, or a guest the policy keeps out)
fails the whole chunk. Only that chunk falls back to one POST members/$ref per member (still packed in $batch),
where "already a member" counts as done. Removals are DELETE .../$ref, where "not a member" counts as done.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from equa.microsoft.graph import (
    BatchRequest,
    BatchResult,
    GraphAlreadyExists,
    GraphClient,
    GraphError,
    GraphGuestBlocked,
    GraphNotFound,
    GraphTransient,
)
from equa.microsoft.models import Outcome
from equa.microsoft.sync.plan import DirectoryUser
from equa.microsoft.sync.policy import OnError, fails_the_run, on_error
from equa.microsoft.sync.resolve import directory_user

MEMBERS_PER_PATCH = 20  # Graph's limit on references in one members@odata.bind
REQUESTS_PER_BATCH = 20
BATCHES_IN_FLIGHT = 4
PAGE_SIZE = 999
MEMBER_FIELDS = "id,mail,userPrincipalName,displayName,userType"

# Reported by the caller as progress: number of members whose change is settled.
ProgressCallback = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class MemberChange:
    """What happened to one directory id; MISSING means Graph does not know the user (look it up again).
    `outage`: it failed because Graph stayed unavailable or throttled after the client's retries (requeue.py)."""

    directory_id: str
    outcome: str
    message: str | None = None
    request_id: str | None = None
    outage: bool = False


MISSING = "missing"


async def list_group_members(graph: GraphClient, group_id: str) -> AsyncIterator[DirectoryUser]:
    """Every member of the group, streamed page by page with only the fields matching needs."""
    params = {"$top": str(PAGE_SIZE), "$select": MEMBER_FIELDS}
    # Graph lists a member change only once replicated: this process's own recent changes count already, so
    # a sync right after another does not re-add, or forget the links of, the members the first one added.
    removed, added = graph.own_writes.pending(graph.tenant, group_id)
    listed: set[str] = set()
    async for item in graph.paginate(f"/groups/{group_id}/members", params):
        if str(item.get("id")) in removed:
            continue
        listed.add(str(item.get("id")))
        yield directory_user(item)
    for member_id, item in added.items():
        if member_id not in listed:
            yield directory_user(item)


async def list_group_owner_ids(graph: GraphClient, group_id: str) -> set[str]:
    params = {"$top": str(PAGE_SIZE), "$select": "id"}
    return {str(item["id"]) async for item in graph.paginate(f"/groups/{group_id}/owners", params)}


def _change_from_error(directory_id: str, error: GraphError | None, status: int) -> MemberChange:
    """A failed add, as policy.py decides: MISSING to look up again and retry, else an outcome for this run."""
    if error is None:
        return MemberChange(directory_id, Outcome.FAILED.value, f"Microsoft Graph answered HTTP {status}.")
    if isinstance(error, GraphAlreadyExists):
        # Not a failure for an add: the member is there.
        return MemberChange(directory_id, Outcome.ALREADY_MEMBER.value, None, error.request_id)
    if on_error(error) is OnError.RETRY:
        return MemberChange(directory_id, MISSING, error.message, error.request_id)
    if isinstance(error, GraphGuestBlocked):
        return MemberChange(directory_id, Outcome.BLOCKED_BY_POLICY.value, error.action, error.request_id)
    return MemberChange(directory_id, Outcome.FAILED.value, str(error), error.request_id, error.retryable)


async def _send_in_batches(
    graph: GraphClient, requests: Sequence[BatchRequest]
) -> list[BatchResult | GraphTransient]:
    """Results in request order; a $batch envelope that failed transiently after retries fails its items."""
    semaphore = asyncio.Semaphore(BATCHES_IN_FLIGHT)
    groups = [list(requests[i : i + REQUESTS_PER_BATCH]) for i in range(0, len(requests), REQUESTS_PER_BATCH)]

    async def one(group: list[BatchRequest]) -> list[BatchResult | GraphTransient]:
        async with semaphore:
            try:
                return list(await graph.batch(group))
            except GraphTransient as error:
                return [error] * len(group)

    answers = await asyncio.gather(*(one(group) for group in groups))
    return [result for answer in answers for result in answer]


def _raise_if_fatal(result: BatchResult | GraphTransient) -> None:
    """Stop the run on an error every further write would hit too (policy.py: FAIL_RUN)."""
    if isinstance(result, BatchResult) and result.error is not None and fails_the_run(result.error):
        raise result.error


async def add_members(
    graph: GraphClient,
    group_id: str,
    directory_ids: Sequence[str],
    on_progress: ProgressCallback | None = None,
) -> list[MemberChange]:
    """Add the directory users to the group; one MemberChange per id, in the order given."""
    ids = list(dict.fromkeys(directory_ids))
    chunks = [ids[i : i + MEMBERS_PER_PATCH] for i in range(0, len(ids), MEMBERS_PER_PATCH)]
    patches = [
        BatchRequest(
            "PATCH",
            f"/groups/{group_id}",
            body={"members@odata.bind": [graph.url_for(f"directoryObjects/{i}") for i in chunk]},
        )
        for chunk in chunks
    ]
    changes: dict[str, MemberChange] = {}
    fallback: list[str] = []
    for chunk, result in zip(chunks, await _send_in_batches(graph, patches), strict=True):
        _raise_if_fatal(result)
        if isinstance(result, BatchResult) and result.ok:
            for directory_id in chunk:
                changes[directory_id] = MemberChange(
                    directory_id, Outcome.ADDED.value, None, result.request_id
                )
            if on_progress:
                on_progress(len(chunk))
        else:
            fallback.extend(chunk)

    if fallback:
        for change in await add_members_one_by_one(graph, group_id, fallback):
            changes[change.directory_id] = change
        if on_progress:
            on_progress(len(fallback))
    return [changes[i] for i in ids]


async def add_members_one_by_one(
    graph: GraphClient, group_id: str, directory_ids: Sequence[str]
) -> list[MemberChange]:
    """One POST members/$ref per member, packed 20 per $batch: each stands alone, "already a member" counts as done.

    What a few people cost least this way (a targeted run, a chunk PATCH refused as a whole)."""
    ids = list(dict.fromkeys(directory_ids))
    singles = [
        BatchRequest(
            "POST",
            f"/groups/{group_id}/members/$ref",
            body={"@odata.id": graph.url_for(f"directoryObjects/{directory_id}")},
        )
        for directory_id in ids
    ]
    changes: list[MemberChange] = []
    for directory_id, result in zip(ids, await _send_in_batches(graph, singles), strict=True):
        _raise_if_fatal(result)
        if isinstance(result, GraphTransient):
            changes.append(MemberChange(directory_id, Outcome.FAILED.value, str(result), outage=True))
        elif result.ok:
            changes.append(MemberChange(directory_id, Outcome.ADDED.value, None, result.request_id))
        else:
            changes.append(_change_from_error(directory_id, result.error, result.status))
    return changes


async def remove_members(
    graph: GraphClient,
    group_id: str,
    directory_ids: Sequence[str],
    on_progress: ProgressCallback | None = None,
) -> list[MemberChange]:
    """Remove the directory users from the group; "not a member" counts as removed."""
    ids = list(dict.fromkeys(directory_ids))
    deletes = [BatchRequest("DELETE", f"/groups/{group_id}/members/{i}/$ref") for i in ids]
    changes: list[MemberChange] = []
    for directory_id, result in zip(ids, await _send_in_batches(graph, deletes), strict=True):
        _raise_if_fatal(result)
        if isinstance(result, GraphTransient):
            changes.append(MemberChange(directory_id, Outcome.FAILED.value, str(result), outage=True))
        elif result.ok or isinstance(result.error, GraphNotFound):
            changes.append(MemberChange(directory_id, Outcome.REMOVED.value, None, result.request_id))
            if result.ok:
                graph.own_writes.changed(graph.tenant, group_id, directory_id, present=False)
        else:
            change = _change_from_error(directory_id, result.error, result.status)
            changes.append(
                MemberChange(
                    directory_id, Outcome.FAILED.value, change.message, change.request_id, change.outage
                )
            )
    if on_progress:
        on_progress(len(ids))
    return changes
