"""Creating a group for an organization (and linking it), safe to repeat.

A create is not idempotent in Graph, so every attempt is recorded (GroupCreation: its Idempotency-Key, or an
implicit key from its mailNickname, and the alias it uses). That record is committed before Graph is asked to
create anything: the one documented exception to "the caller commits once" (ARCHITECTURE, rule 2), so that a
retry after any failure of the request finds it and adopts the group the earlier attempt made instead of making
a second one.
"""

from __future__ import annotations

import logging
import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.models import User
from equa.db.base import utcnow
from equa.microsoft import repository
from equa.microsoft.audit import record_audit
from equa.microsoft.create_limit import check_create_limit
from equa.microsoft.graph import GraphAlreadyExists, GraphClient, GraphError, GraphTransient
from equa.microsoft.groups.linking import (
    GROUP_FIELDS,
    fetch_group,
    flush_link,
    linkability,
    linked_group_id,
    tolerating_replication_lag,
)
from equa.microsoft.groups.members import find_tenant_user, odata_quote
from equa.microsoft.groups.problems import (
    already_linked_to_other,
    idempotency_key_in_use,
    idempotency_key_reused,
    invalid_mail_nickname,
    nickname_taken,
)
from equa.microsoft.models import GrantOrigin, GroupCreation, MicrosoftGroupGrant
from equa.microsoft.scope import GroupScope, grant_of, granted_elsewhere, normalize_group_id
from equa.organizations.models import Organization
from equa.settings import GroupScopeMode

log = logging.getLogger("equa.microsoft.groups")

MAIL_NICKNAME_MAX = 64
# A create-group request without an Idempotency-Key is remembered under an implicit key (its mailNickname), so that
# repeating it after a failure whose outcome was unknown adopts the group the earlier attempt may have made instead
# of making a second one. Older unfinished attempts are not adopted: the alias may have been reused since.
IMPLICIT_KEY_PREFIX = "implicit:"
IMPLICIT_RETRY_WINDOW = timedelta(hours=1)
NICKNAME_SUFFIX_TRIES = 20
# A retry adopts a group found by its alias only if Graph made it after the attempt began; this much clock
# difference between Microsoft and this service is tolerated.
ADOPTION_CLOCK_SKEW = timedelta(minutes=5)
# Characters Microsoft does not allow in a mailNickname (plus "." which Exchange rejects at the ends, and which we
# keep out altogether so a derived alias is valid everywhere).
_NICKNAME_FORBIDDEN = set('@()\\[]";:<>,. ')
_DERIVED_NICKNAME_KEEP = re.compile(r"[^a-z0-9-]+")


def derive_mail_nickname(display_name: str) -> str:
    """A valid mailNickname from a display name: ASCII letters, digits and hyphens, at most 64 characters."""
    ascii_text = unicodedata.normalize("NFKD", display_name).encode("ascii", "ignore").decode("ascii")
    nickname = _DERIVED_NICKNAME_KEEP.sub("-", ascii_text.lower()).strip("-")
    nickname = re.sub(r"-{2,}", "-", nickname)[:MAIL_NICKNAME_MAX].strip("-")
    return nickname or "group"


def mail_nickname_problem(nickname: str) -> str | None:
    """Why Microsoft would refuse this mailNickname, or None."""
    if not nickname.isascii():
        return "must use ASCII characters only"
    bad = sorted({ch for ch in nickname if ch in _NICKNAME_FORBIDDEN or ord(ch) < 32 or ord(ch) == 127})
    if bad:
        shown = " ".join("space" if ch == " " else repr(ch) for ch in bad)
        return f"must not contain {shown}"
    if len(nickname) > MAIL_NICKNAME_MAX:
        return f"must be at most {MAIL_NICKNAME_MAX} characters"
    return None


def _with_suffix(base: str, number: int) -> str:
    suffix = f"-{number}"
    return base[: MAIL_NICKNAME_MAX - len(suffix)].rstrip("-") + suffix


async def find_group_by_nickname(graph: GraphClient, nickname: str) -> dict[str, Any] | None:
    response = await graph.get(
        "groups", params={"$filter": f"mailNickname eq '{odata_quote(nickname)}'", "$select": GROUP_FIELDS}
    )
    found = (response.json() or {}).get("value") or []
    return found[0] if found else None


@dataclass(frozen=True)
class CreateResult:
    group: dict[str, Any]
    replayed: bool


async def create_group(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    actor: User,
    *,
    display_name: str,
    description: str | None = None,
    mail_nickname: str | None = None,
    idempotency_key: str | None = None,
    scope: GroupScope,
    daily_limit: int,
) -> CreateResult:
    """Create a private Microsoft 365 group (Unified, mailEnabled, securityEnabled) and link it.

    mailNickname: derived from display_name when absent; a derived one that is taken gets "-2", "-3"...; an
    explicit one that is taken raises 409 microsoft_nickname_taken. The actor becomes an owner when their
    address resolves to a tenant user. Safe to retry: with the same idempotency_key the same group is returned
    (replayed=True); after a network failure the group is looked up by its mailNickname before creating again,
    and a keyless repeat of a failed request (same alias, within IMPLICIT_RETRY_WINDOW) adopts what it made.
    Those retry paths adopt only a group this attempt made (see `_require_adoptable`). The group is recorded as
    created for this organization (it stays in its scope after an unlink); in the administrative-unit scope it is
    created inside the unit. At most `daily_limit` attempts per organization per day (429 with Retry-After beyond).
    Commits `session` before calling Graph (see the module docstring).

    The ways out, in order: the replay of a finished attempt (`_replay`); the group an unfinished earlier attempt
    made, found by its alias (`_adoptable_group`); otherwise the create itself (`_send_create`), which ends with the
    new group, a group adopted after an unknown outcome, or an error.
    """
    key = idempotency_key
    if key is None:
        requested = mail_nickname if mail_nickname is not None else derive_mail_nickname(display_name)
        key = IMPLICIT_KEY_PREFIX + requested.lower()
        previous = await _unfinished_implicit_creation(session, organization, key)
    else:
        previous = await _existing_creation(session, organization, key)
    if previous is not None and previous.group_id is not None:
        return await _replay(session, graph, organization, previous.group_id, scope=scope)
    current = linked_group_id(organization)
    if current is not None:
        raise already_linked_to_other(current)

    if previous is not None:
        # A repeat of an attempt that did not finish: it may have created the group before failing.
        adopted = await _adoptable_group(session, graph, organization, previous)
        if adopted is not None:
            return await _finish_creation(session, organization, actor, adopted, previous, adopted_from=True)
        nickname = previous.mail_nickname
    else:
        nickname = _requested_nickname(display_name, mail_nickname)
        await check_create_limit(session, organization.id, daily_limit)
        nickname = await _free_nickname(graph, nickname, explicit=mail_nickname is not None)

    owner = await find_tenant_user(graph, actor.email)
    creation = previous or await _reserve_creation(session, organization, key, nickname)
    path, body = _create_request(graph, scope, display_name, description, nickname, owner)
    return await _send_create(
        session,
        graph,
        organization,
        actor,
        creation,
        path,
        body,
        fixed_alias=mail_nickname is not None or previous is not None,
        repeat=previous is not None,
    )


async def _replay(
    session: AsyncSession, graph: GraphClient, organization: Organization, group_id: str, *, scope: GroupScope
) -> CreateResult:
    """The answer to a repeat of a finished attempt: the group it made, if that is still this organization's."""
    if linked_group_id(organization) != group_id:
        raise idempotency_key_reused()
    await scope.check(session, graph, organization.id, group_id)
    group = await tolerating_replication_lag(lambda: fetch_group(graph, group_id), recent=True)
    return CreateResult(group, replayed=True)


def _requested_nickname(display_name: str, mail_nickname: str | None) -> str:
    """The alias asked for (checked: 422 when Microsoft would refuse it), or one derived from the name."""
    if mail_nickname is None:
        return derive_mail_nickname(display_name)
    problem = mail_nickname_problem(mail_nickname)
    if problem:
        raise invalid_mail_nickname(problem)
    return mail_nickname


def _create_request(
    graph: GraphClient,
    scope: GroupScope,
    display_name: str,
    description: str | None,
    nickname: str,
    owner: dict[str, Any] | None,
) -> tuple[str, dict[str, Any]]:
    """Where to POST the new group, and its body."""
    body: dict[str, Any] = {
        "displayName": display_name,
        "mailNickname": nickname,
        "groupTypes": ["Unified"],
        "mailEnabled": True,
        "securityEnabled": True,
        "visibility": "Private",
    }
    if description:
        body["description"] = description
    if owner is not None:
        body["owners@odata.bind"] = [graph.url_for(f"directoryObjects/{owner['id']}")]
    if scope.mode is GroupScopeMode.ADMINISTRATIVE_UNIT and scope.unit_id:
        # Created inside the unit, so the group stays in the scope it was made for.
        return (
            f"directory/administrativeUnits/{scope.unit_id}/members",
            {"@odata.type": "#microsoft.graph.group", **body},
        )
    return "groups", body


async def _send_create(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    actor: User,
    creation: GroupCreation,
    path: str,
    body: dict[str, Any],
    *,
    fixed_alias: bool,
    repeat: bool,
) -> CreateResult:
    """Ask Graph to create the group; a derived alias taken meanwhile moves on to the next free suffix.

    `fixed_alias`: the alias was asked for, or an earlier attempt chose it, so it is never changed here. `repeat`:
    this request repeats an unfinished attempt, whose group may be what now holds the alias.
    """
    for _ in range(NICKNAME_SUFFIX_TRIES):
        try:
            response = await graph.post(path, json=body)
        except GraphAlreadyExists:
            # Taken between our lookup and the create (or by a mailbox, which the group lookup cannot see).
            if repeat:
                # Perhaps by the earlier attempt this request repeats, still finishing in Microsoft 365.
                adopted = await _adoptable_group(session, graph, organization, creation)
                if adopted is not None:
                    return await _finish_creation(
                        session, organization, actor, adopted, creation, adopted_from=True
                    )
            if fixed_alias:
                raise nickname_taken(creation.mail_nickname) from None
            base = derive_mail_nickname(str(body.get("displayName") or ""))
            creation.mail_nickname = await _free_nickname(
                graph, base, False, start=_after(base, creation.mail_nickname)
            )
            body["mailNickname"] = creation.mail_nickname
            await _save_attempt(session)
            continue
        except GraphError as error:
            adopted = None
            if isinstance(error, GraphTransient) and error.code == "network_error":
                # The request may have reached Graph and created the group before the connection failed.
                adopted = await _adoptable_group(session, graph, organization, creation)
            if adopted is None:
                record_audit(
                    session,
                    organization_id=organization.id,
                    actor_id=actor.id,
                    action="group.create",
                    target=creation.mail_nickname,
                    outcome="failure",
                    detail=error.message,
                    request_id=error.request_id,
                )
                raise
            return await _finish_creation(session, organization, actor, adopted, creation, adopted_from=True)
        group: dict[str, Any] = response.json() or {}
        return await _finish_creation(
            session, organization, actor, group, creation, request_id=response.request_id
        )
    raise nickname_taken(creation.mail_nickname)


async def _save_attempt(session: AsyncSession) -> None:
    """Commit the attempt's record before Graph is asked to create: the documented exception to "the caller
    commits once" (ARCHITECTURE, rule 2), so that a retry after any failure of this request finds the attempt."""
    await session.commit()


async def _reserve_creation(
    session: AsyncSession, organization: Organization, key: str, nickname: str
) -> GroupCreation:
    creation = GroupCreation(organization_id=organization.id, idempotency_key=key, mail_nickname=nickname)
    session.add(creation)
    try:
        await _save_attempt(session)
    except IntegrityError:
        await session.rollback()
        raise idempotency_key_in_use() from None
    return creation


async def _existing_creation(
    session: AsyncSession, organization: Organization, key: str
) -> GroupCreation | None:
    return await repository.creation_by_key(session, organization.id, key)


async def _unfinished_implicit_creation(
    session: AsyncSession, organization: Organization, key: str
) -> GroupCreation | None:
    """An earlier keyless attempt for the same alias that did not end with a linked group, if recent enough."""
    previous = await _existing_creation(session, organization, key)
    if previous is None:
        return None
    if previous.group_id is None and utcnow() - previous.created_at < IMPLICIT_RETRY_WINDOW:
        return previous
    # Finished (this is a new request, not a repeat) or too old to trust: start afresh under the same key. The old
    # record is kept under a retired key, not deleted: it still counts towards EQUA_GROUP_CREATE_LIMIT, and a
    # created group's provenance still names its attempt.
    previous.idempotency_key = f"{key}#{previous.id}"
    await session.flush()
    return None


async def _adoptable_group(
    session: AsyncSession, graph: GraphClient, organization: Organization, creation: GroupCreation
) -> dict[str, Any] | None:
    """The group holding the attempt's alias, when the attempt can have made it (None: no group holds it)."""
    group = await find_group_by_nickname(graph, creation.mail_nickname)
    if group is not None:
        await _require_adoptable(session, organization, creation, group)
    return group


def nickname_candidates(base: str) -> list[str]:
    """`base`, then `base-2`, `base-3`, ...: a taken alias gets a suffix appended, never its own digits changed
    ("board-2025" goes on as "board-2025-2", not "board-2026")."""
    return [base] + [_with_suffix(base, number) for number in range(2, NICKNAME_SUFFIX_TRIES + 1)]


def _after(base: str, nickname: str) -> str:
    """The candidate that comes after `nickname` among `base`'s (the first suffixed one if it is not among them)."""
    candidates = nickname_candidates(base)
    if nickname in candidates and candidates.index(nickname) + 1 < len(candidates):
        return candidates[candidates.index(nickname) + 1]
    return candidates[1] if nickname not in candidates else nickname


async def _free_nickname(graph: GraphClient, base: str, explicit: bool, *, start: str | None = None) -> str:
    """`base` when no group uses it; else 409 (explicit) or the first free suffixed variant (derived), from
    `start` on."""
    candidates = nickname_candidates(base)
    if start is not None and start in candidates:
        candidates = candidates[candidates.index(start) :]
    for candidate in candidates:
        if await find_group_by_nickname(graph, candidate) is None:
            return candidate
        if explicit:
            raise nickname_taken(base)
    raise nickname_taken(base)


def _created_at(group: dict[str, Any]) -> datetime | None:
    value = group.get("createdDateTime")
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def _require_adoptable(
    session: AsyncSession, organization: Organization, creation: GroupCreation, group: dict[str, Any]
) -> None:
    """Refuse to adopt a group found by its alias unless this creation attempt can have made it.

    The alias alone proves nothing: another group (a VPN security group, another organization's group) may carry
    it. Adopted are only groups made after the attempt began, recorded for no one else (or for this attempt), and
    of a kind a link would accept; anything else is answered as an alias in use.
    """
    created = _created_at(group)
    made_after_attempt = created is not None and created >= creation.created_at - ADOPTION_CLOCK_SKEW
    try:
        group_id = uuid.UUID(str(group.get("id")))
    except ValueError:
        group_id = None
    recorded_elsewhere = linked_elsewhere = True
    if group_id is not None:
        grant = await grant_of(session, group_id)
        recorded_elsewhere = grant is not None and (
            grant.organization_id != organization.id
            or (grant.creation_id is not None and grant.creation_id != creation.id)
            or grant.origin != GrantOrigin.CREATED.value
        )
        linked_elsewhere = (
            await repository.organization_linked_to(session, group_id, organization.id) is not None
        )
    if not made_after_attempt or recorded_elsewhere or linked_elsewhere or linkability(group) is not None:
        log.warning(
            "organization %s: create-group retry found alias %s on a group it did not make; not adopted",
            organization.id,
            creation.mail_nickname,
        )
        raise nickname_taken(creation.mail_nickname)


async def _record_created(
    session: AsyncSession,
    organization: Organization,
    actor: User,
    group: dict[str, Any],
    creation: GroupCreation | None,
) -> None:
    """Provenance: the group was made here for this organization, so it stays in its scope after an unlink."""
    group_id = normalize_group_id(str(group["id"]))
    grant = await grant_of(session, group_id)
    if grant is not None:
        if grant.organization_id != organization.id:
            raise granted_elsewhere()
        return
    session.add(
        MicrosoftGroupGrant(
            organization_id=organization.id,
            group_id=group_id,
            origin=GrantOrigin.CREATED.value,
            group_name=str(group.get("displayName") or "")[:256] or None,
            granted_by=actor.id,
            creation_id=creation.id if creation is not None else None,
        )
    )


async def _finish_creation(
    session: AsyncSession,
    organization: Organization,
    actor: User,
    group: dict[str, Any],
    creation: GroupCreation | None,
    *,
    request_id: str | None = None,
    adopted_from: bool = False,
) -> CreateResult:
    group_id = str(group["id"])
    # Two attempts of the same creation (a double click, a retry) finish at the same time and both write the
    # organization's link and the creation record. Locking the organization's row first gives every such
    # transaction the same lock order, so PostgreSQL never has to break a deadlock between them.
    await repository.lock_organization(session, organization.id)
    if creation is not None:
        creation.group_id = group_id
    await _record_created(session, organization, actor, group, creation)
    repository.set_link(organization, uuid.UUID(group_id), actor.id)
    record_audit(
        session,
        organization_id=organization.id,
        actor_id=actor.id,
        action="group.create",
        target=group_id,
        detail=(
            f"Created {group.get('displayName')!r} ({group.get('mailNickname')})"
            + (" - found after a failed attempt" if adopted_from else "")
            + " and linked it."
        ),
        request_id=request_id,
    )
    await flush_link(session)
    return CreateResult(group, replayed=False)
