"""EQUA_GROUP_CREATE_LIMIT: how many groups create-group may make for one organization in a day.

Creating groups in someone else's Microsoft 365 tenant is a power too (each is a mailbox, a SharePoint site and a
name in the address book). Attempts are counted, not successes: an attempt's record is committed before Graph is
asked (groups.create_group), so parallel requests see each other, and a retry of the same attempt (same
Idempotency-Key, or the keyless repeat of a failed request) is not counted again.
"""

from __future__ import annotations

import math
import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from equa.db.base import utcnow
from equa.errors import AppError
from equa.microsoft import repository

WINDOW = timedelta(days=1)


async def check_create_limit(session: AsyncSession, organization_id: uuid.UUID, limit: int) -> None:
    """Raise 429 microsoft_group_create_limit (Retry-After: when the oldest attempt leaves the window)."""
    since = utcnow() - WINDOW
    count = await repository.creations_since(session, organization_id, since)
    if count < limit:
        return
    if limit == 0:
        raise AppError(
            429,
            "microsoft_group_create_limit",
            "Creating Microsoft 365 groups is turned off on this service (EQUA_GROUP_CREATE_LIMIT=0).",
            "Link an existing group instead, or ask an operator to allow group creation.",
            headers={"Retry-After": str(int(WINDOW.total_seconds()))},
            extra={"limit": 0, "retryAfterSeconds": int(WINDOW.total_seconds())},
        )
    oldest = await repository.oldest_creation_since(session, organization_id, since)
    wait = WINDOW.total_seconds() if oldest is None else (oldest + WINDOW - utcnow()).total_seconds()
    retry_after = max(1, math.ceil(wait))
    raise AppError(
        429,
        "microsoft_group_create_limit",
        f"This organization has created {count} Microsoft 365 groups in the last 24 hours; "
        f"at most {limit} a day are allowed (EQUA_GROUP_CREATE_LIMIT).",
        f"Try again in {_in_words(retry_after)}, link an existing group instead, or ask an operator to raise "
        "EQUA_GROUP_CREATE_LIMIT.",
        headers={"Retry-After": str(retry_after)},
        extra={"limit": limit, "retryAfterSeconds": retry_after},
    )


def _in_words(seconds: int) -> str:
    if seconds >= 3600:
        hours = math.ceil(seconds / 3600)
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
