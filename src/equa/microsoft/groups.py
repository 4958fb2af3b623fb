"""The business rules of an organization's Microsoft 365 group: link, create, unlink, details, members, search.

These functions are what the JSON routes and the settings pages call. Each takes the request's session (it only
adds and flushes; the caller commits once) and the shared GraphClient. Graph failures are raised as GraphError and
reach a user as problem+json through equa.microsoft.problems; the business rules raise AppError.

One exception to "the caller commits": `create_group` commits the caller's session once, before asking Graph to
create anything, so that the record of the attempt (its Idempotency-Key and mailNickname) survives a failure of
the request and a retry finds the group instead of making a second one.

When Graph says the linked group no longer exists, the functions clear the link and raise `GroupMissing`. The
clearing is in the caller's session: callers must commit it even though an error is returned (the routes do so by
rendering GroupMissing as a response instead of letting it roll the request back).
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.models import User, normalize_email
from equa.db.base import utcnow
from equa.errors import AppError
from equa.microsoft.audit import FAILURE, SUCCESS, record_audit
from equa.microsoft.create_limit import check_create_limit
from equa.microsoft.graph import (
    GraphAlreadyExists,
    GraphClient,
    GraphError,
    GraphNotFound,
    GraphTransient,
    while_replicating,
)
from equa.microsoft.models import GrantOrigin, GroupCreation, MicrosoftGroupGrant, MicrosoftMember
from equa.microsoft.own_writes import own_writes
from equa.microsoft.scope import (
    GroupScope,
    grant_of,
    granted_elsewhere,
    granted_group_ids,
    normalize_group_id,
)
from equa.organizations.models import Membership, Organization
from equa.pagination import Cursor, Cursors, invalid_cursor, skip_token_of
from equa.settings import GroupScopeMode

log = logging.getLogger("equa.microsoft.groups")

T = TypeVar("T")

GROUP_FIELDS = (
    "id,displayName,description,mail,mailNickname,visibility,groupTypes,mailEnabled,securityEnabled,"
    "onPremisesSyncEnabled,isAssignableToRole,createdDateTime,membershipRule"
)
MEMBER_FIELDS = "id,displayName,mail,userPrincipalName,userType"
USER_FIELDS = "id,displayName,mail,userPrincipalName,userType"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
SEARCH_PAGE_SIZE = 25
# Graph may answer 404 for a group (or refuse references to it) for a short while after creating it.
REPLICATION_WINDOW = timedelta(minutes=2)
REPLICATION_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)
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

# --- link, reasons a group cannot be linked ----------------------------------------------------------------


@dataclass(frozen=True)
class LinkRefusal:
    """Why a group cannot be linked, and what to do instead."""

    code: str
    reason: str
    action: str


def linkability(group: dict[str, Any]) -> LinkRefusal | None:
    """Why Equa cannot manage this group's membership (None: it can). `group` is a Graph group resource."""
    group_types = group.get("groupTypes") or []
    unified = "Unified" in group_types
    if "DynamicMembership" in group_types or group.get("membershipRule"):
        return LinkRefusal(
            "dynamic_membership",
            "Its membership is set by a rule (dynamic group), so members cannot be added or removed.",
            "Link a group with assigned membership, or change the rule in Microsoft Entra.",
        )
    if group.get("onPremisesSyncEnabled"):
        return LinkRefusal(
            "synced_from_on_premises",
            "It is synced from on-premises Active Directory; Microsoft Graph cannot change its members.",
            "Manage it in Active Directory, or link or create a cloud Microsoft 365 group.",
        )
    if group.get("mailEnabled") and not unified:
        if group.get("securityEnabled"):
            return LinkRefusal(
                "mail_enabled_security",
                "It is a mail-enabled security group; Microsoft Graph cannot change its members.",
                "Manage it in Exchange, or link or create a Microsoft 365 group.",
            )
        return LinkRefusal(
            "distribution_list",
            "It is a distribution list; Microsoft Graph cannot change its members.",
            "Manage it in Exchange, or link or create a Microsoft 365 group.",
        )
    if group.get("visibility") == "HiddenMembership":
        return LinkRefusal(
            "hidden_membership",
            "Its membership is hidden: only its owners and members may see who is in it, and listing or "
            "changing its members here would show them to the organization's admins.",
            "Link or create a group whose membership is not hidden.",
        )
    if group.get("isAssignableToRole"):
        return LinkRefusal(
            "role_assignable",
            "It can be assigned directory roles: whoever manages its members would grant admin roles.",
            "Link or create a group that is not role-assignable.",
        )
    return None


def _refusal_error(refusal: LinkRefusal) -> AppError:
    return AppError(
        422,
        "microsoft_group_unlinkable",
        f"This group cannot be linked. {refusal.reason}",
        refusal.action,
        extra={"reason": refusal.code},
    )


class GroupMissing(AppError):
    """The linked group no longer exists in Microsoft 365; the link has been cleared in the caller's session."""

    def __init__(self, group_id: str) -> None:
        super().__init__(
            409,
            "microsoft_group_missing",
            f"The linked Microsoft 365 group {group_id} no longer exists (it was deleted outside Equa); "
            "the link has been removed.",
            "Link another group or create a new one.",
            extra={"groupId": group_id},
        )


def not_linked() -> AppError:
    return AppError(
        409,
        "microsoft_group_not_linked",
        "This organization has no linked Microsoft 365 group.",
        "Link an existing group or create one first.",
    )


def linked_group_id(organization: Organization) -> str | None:
    """The linked group's object id as Graph writes it, or None."""
    return str(organization.microsoft_group) if organization.microsoft_group else None


def _require_linked(organization: Organization) -> str:
    group_id = linked_group_id(organization)
    if group_id is None:
        raise not_linked()
    return group_id


def recently_linked(organization: Organization) -> bool:
    linked_at = organization.microsoft_group_linked_at
    return linked_at is not None and utcnow() - linked_at < REPLICATION_WINDOW


async def _tolerating_replication_lag(call: Callable[[], Awaitable[T]], *, recent: bool) -> T:
    """Run `call`; when the group is new, retry a GraphNotFound a few times (bounded) while Graph replicates it."""
    return await while_replicating(call, REPLICATION_RETRY_DELAYS if recent else ())


async def fetch_group(graph: GraphClient, group_id: str) -> dict[str, Any]:
    response = await graph.get(f"groups/{group_id}", params={"$select": GROUP_FIELDS})
    body: dict[str, Any] = response.json() or {}
    return body


async def clear_stale_link(
    session: AsyncSession,
    organization: Organization,
    *,
    actor_id: uuid.UUID | None,
    request_id: str | None,
    found_by: str,
) -> str | None:
    """Forget a linked group that Graph says is gone (spec risk table); returns the group id that was cleared."""
    group_id = linked_group_id(organization)
    if group_id is None:
        return None
    organization.microsoft_group = None
    organization.microsoft_group_linked_by = None
    organization.microsoft_group_linked_at = None
    record_audit(
        session,
        organization_id=organization.id,
        actor_id=actor_id,
        action="group.missing",
        target=group_id,
        detail=f"Microsoft Graph answered 404 for the linked group ({found_by}); the link was cleared.",
        request_id=request_id,
    )
    await session.flush()
    log.warning("organization %s: linked group %s no longer exists; link cleared", organization.id, group_id)
    return group_id


async def require_linked_in_scope(
    session: AsyncSession, graph: GraphClient, organization: Organization, scope: GroupScope
) -> str:
    """The linked group's id, once MS_GROUP_SCOPE says the organization may still reach it.

    A linked group can leave the scope after it was linked (removed from the administrative unit, the scope
    narrowed by the operator): every Graph call on it asks again, and the admin gets the 403 and its action.
    """
    group_id = _require_linked(organization)
    await scope.check(session, graph, organization.id, group_id)
    return group_id


async def _linked_group(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    actor: User | None,
    found_by: str,
    *,
    scope: GroupScope | None,
) -> dict[str, Any]:
    """The linked group from Graph; GroupMissing (after clearing the link) when Graph no longer has it.

    `scope` None only where the caller has just checked it.
    """
    group_id = (
        _require_linked(organization)
        if scope is None
        else await require_linked_in_scope(session, graph, organization, scope)
    )
    recent = recently_linked(organization)
    try:
        return await _tolerating_replication_lag(lambda: fetch_group(graph, group_id), recent=recent)
    except GraphNotFound as error:
        if recent:
            # Still inside the replication window: not evidence of a deletion yet.
            raise GraphTransient(
                "The new group is not visible in Microsoft 365 yet.",
                code="replication_lag",
                request_id=error.request_id,
                action="Microsoft 365 is still replicating the new group; try again in a minute.",
            ) from None
        await clear_stale_link(
            session,
            organization,
            actor_id=actor.id if actor else None,
            request_id=error.request_id,
            found_by=found_by,
        )
        raise GroupMissing(group_id) from None


async def _organization_linked_to(
    session: AsyncSession, group_id: uuid.UUID, other_than: uuid.UUID
) -> uuid.UUID | None:
    return await session.scalar(
        select(Organization.id).where(Organization.microsoft_group == group_id, Organization.id != other_than)
    )


def _linked_elsewhere() -> AppError:
    # Deliberately does not say which organization: that would leak another customer's name.
    return AppError(
        409,
        "microsoft_group_linked_elsewhere",
        "This group is already linked to another Equa organization; one group cannot serve two organizations "
        "(their admins would manage each other's membership).",
        "Choose another group, or create a new one for this organization.",
    )


def _already_linked_to_other(current: str) -> AppError:
    return AppError(
        409,
        "microsoft_group_already_linked",
        f"This organization is already linked to group {current}.",
        "Unlink the current group first, then link the new one.",
        extra={"groupId": current},
    )


def _set_link(organization: Organization, group_id: uuid.UUID, actor: User) -> None:
    organization.microsoft_group = group_id
    organization.microsoft_group_linked_by = actor.id
    organization.microsoft_group_linked_at = utcnow()


async def _flush_link(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError:
        # Another organization linked the same group between our check and this write (unique index).
        raise _linked_elsewhere() from None


@dataclass(frozen=True)
class LinkResult:
    group: dict[str, Any]
    changed: bool


async def link_group(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    actor: User,
    group_id: uuid.UUID,
    *,
    scope: GroupScope,
) -> LinkResult:
    """Link an existing group to `organization`.

    Raises AppError: 403 microsoft_group_out_of_scope when MS_GROUP_SCOPE does not reach the group (checked
    before Graph is asked about it); 409 when this organization is linked to another group (unlink first) or the
    group serves another organization; 404 when the tenant has no such group; 422 (code
    microsoft_group_unlinkable, extra `reason`) for groups whose membership Equa cannot manage. Linking the same
    group again changes nothing.
    """
    current = linked_group_id(organization)
    if current is not None and current != str(group_id):
        raise _already_linked_to_other(current)
    await scope.check(session, graph, organization.id, group_id)
    if await _organization_linked_to(session, group_id, organization.id) is not None:
        raise _linked_elsewhere()
    try:
        group = await fetch_group(graph, str(group_id))
    except GraphNotFound as error:
        raise AppError(
            404,
            "microsoft_group_not_found",
            f"The tenant has no group with id {group_id}.",
            "Check the id (Microsoft Entra admin center > Groups > Object ID), or pick the group from the list.",
            extra={"microsoftRequestId": error.request_id} if error.request_id else None,
        ) from None
    if current is not None:
        return LinkResult(group, changed=False)
    refusal = linkability(group)
    if refusal is not None:
        raise _refusal_error(refusal)
    _set_link(organization, group_id, actor)
    record_audit(
        session,
        organization_id=organization.id,
        actor_id=actor.id,
        action="group.link",
        target=str(group_id),
        detail=f"Linked {group.get('displayName')!r}.",
    )
    await _flush_link(session)
    return LinkResult(group, changed=True)


async def unlink_group(session: AsyncSession, organization: Organization, actor: User) -> str:
    """Clear the link (the group stays in Microsoft 365, spec section 6). Returns the group id that was linked."""
    group_id = _require_linked(organization)
    organization.microsoft_group = None
    organization.microsoft_group_linked_by = None
    organization.microsoft_group_linked_at = None
    record_audit(
        session,
        organization_id=organization.id,
        actor_id=actor.id,
        action="group.unlink",
        target=group_id,
        detail="Unlinked; the group was left in Microsoft 365.",
    )
    await session.flush()
    return group_id


# --- create ------------------------------------------------------------------------------------------------


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


def _odata_quote(value: str) -> str:
    return value.replace("'", "''")


async def find_group_by_nickname(graph: GraphClient, nickname: str) -> dict[str, Any] | None:
    response = await graph.get(
        "groups", params={"$filter": f"mailNickname eq '{_odata_quote(nickname)}'", "$select": GROUP_FIELDS}
    )
    found = (response.json() or {}).get("value") or []
    return found[0] if found else None


async def find_tenant_user(graph: GraphClient, address: str) -> dict[str, Any] | None:
    """The tenant user whose mail or userPrincipalName is `address` (None when there is none)."""
    quoted = _odata_quote(address.strip())
    response = await graph.get(
        "users",
        params={
            "$filter": f"mail eq '{quoted}' or userPrincipalName eq '{quoted}'",
            "$select": USER_FIELDS,
        },
    )
    found = (response.json() or {}).get("value") or []
    return found[0] if found else None


def _nickname_taken(nickname: str) -> AppError:
    return AppError(
        409,
        "microsoft_nickname_taken",
        f"The mail alias {nickname!r} is already used by another group or mailbox in the tenant.",
        "Choose another mailNickname, or leave it out to have one derived from the name.",
        extra={"mailNickname": nickname},
    )


@dataclass(frozen=True)
class CreateResult:
    group: dict[str, Any]
    replayed: bool


async def _reserve_creation(
    session: AsyncSession, organization: Organization, key: str | None, nickname: str
) -> GroupCreation | None:
    if key is None:
        return None
    creation = GroupCreation(organization_id=organization.id, idempotency_key=key, mail_nickname=nickname)
    session.add(creation)
    try:
        # Committed before Graph is asked, so that a retry after any failure of this request finds it.
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise AppError(
            409,
            "idempotency_key_in_use",
            "An identical create-group request is still being processed.",
            "Wait a moment and repeat the request with the same Idempotency-Key.",
        ) from None
    return creation


async def _existing_creation(
    session: AsyncSession, organization: Organization, key: str | None
) -> GroupCreation | None:
    if key is None:
        return None
    return await session.scalar(
        select(GroupCreation).where(
            GroupCreation.organization_id == organization.id, GroupCreation.idempotency_key == key
        )
    )


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
    Those retry paths adopt only a group this attempt made (see `_require_adoptable`). The group is recorded as created
    for this organization (it stays in its scope after an unlink); in the administrative-unit scope it is created
    inside the unit. At most `daily_limit` attempts per organization per day (429 with Retry-After beyond).
    Commits `session` once before calling Graph (see the module docstring).
    """
    if idempotency_key is None:
        requested = mail_nickname if mail_nickname is not None else derive_mail_nickname(display_name)
        idempotency_key = IMPLICIT_KEY_PREFIX + requested.lower()
        previous = await _unfinished_implicit_creation(session, organization, idempotency_key)
    else:
        previous = await _existing_creation(session, organization, idempotency_key)
    if previous is not None and previous.group_id is not None:
        if linked_group_id(organization) == previous.group_id:
            await scope.check(session, graph, organization.id, previous.group_id)
            replayed = await _tolerating_replication_lag(
                lambda: fetch_group(graph, previous.group_id or ""), recent=True
            )
            return CreateResult(replayed, replayed=True)
        raise AppError(
            409,
            "idempotency_key_reused",
            "This Idempotency-Key was used for a group that is no longer linked to this organization.",
            "Send a new Idempotency-Key to create another group.",
        )
    current = linked_group_id(organization)
    if current is not None:
        raise _already_linked_to_other(current)

    explicit = mail_nickname is not None
    if previous is not None:
        nickname = previous.mail_nickname
    elif mail_nickname is not None:
        problem = mail_nickname_problem(mail_nickname)
        if problem:
            raise AppError(
                422,
                "validation_failed",
                f"mailNickname: {problem}",
                "Correct the highlighted field and send the request again.",
                extra={"errors": [{"field": "mailNickname", "message": problem}]},
            )
        nickname = mail_nickname
    else:
        nickname = derive_mail_nickname(display_name)

    if previous is not None:
        # An earlier attempt with this key may have created the group before failing: adopt it.
        adopted = await find_group_by_nickname(graph, nickname)
        if adopted is not None:
            await _require_adoptable(session, organization, previous, adopted)
            return await _finish_creation(session, organization, actor, adopted, previous, adopted_from=True)
    else:
        await check_create_limit(session, organization.id, daily_limit)
        nickname = await _free_nickname(graph, nickname, explicit=explicit)

    owner = await find_tenant_user(graph, actor.email)
    creation = previous or await _reserve_creation(session, organization, idempotency_key, nickname)

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

    create_path = "groups"
    if scope.mode is GroupScopeMode.ADMINISTRATIVE_UNIT and scope.unit_id:
        # Created inside the unit, so the group stays in the scope it was made for.
        create_path = f"directory/administrativeUnits/{scope.unit_id}/members"
        body = {"@odata.type": "#microsoft.graph.group", **body}

    for _ in range(NICKNAME_SUFFIX_TRIES):
        try:
            response = await graph.post(create_path, json=body)
        except GraphAlreadyExists:
            # Taken between our lookup and the create (or by a mailbox, which the group lookup cannot see).
            if previous is not None:
                # Perhaps by the earlier attempt this request repeats, still finishing in Microsoft 365.
                adopted = await find_group_by_nickname(graph, body["mailNickname"])
                if adopted is not None and creation is not None:
                    await _require_adoptable(session, organization, creation, adopted)
                    return await _finish_creation(
                        session, organization, actor, adopted, creation, adopted_from=True
                    )
            if explicit or previous is not None:
                raise _nickname_taken(body["mailNickname"]) from None
            body["mailNickname"] = await _free_nickname(graph, _next_nickname(body["mailNickname"]), False)
            if creation is not None:
                creation.mail_nickname = body["mailNickname"]
                await session.commit()
            continue
        except GraphError as error:
            adopted = None
            if isinstance(error, GraphTransient) and error.code == "network_error":
                # The request may have reached Graph and created the group before the connection failed.
                adopted = await find_group_by_nickname(graph, body["mailNickname"])
            if adopted is None:
                record_audit(
                    session,
                    organization_id=organization.id,
                    actor_id=actor.id,
                    action="group.create",
                    target=body["mailNickname"],
                    outcome="failure",
                    detail=error.message,
                    request_id=error.request_id,
                )
                raise
            if creation is not None:
                await _require_adoptable(session, organization, creation, adopted)
            return await _finish_creation(session, organization, actor, adopted, creation, adopted_from=True)
        group: dict[str, Any] = response.json() or {}
        return await _finish_creation(
            session, organization, actor, group, creation, request_id=response.request_id
        )
    raise _nickname_taken(body["mailNickname"])


def _next_nickname(nickname: str) -> str:
    match = re.fullmatch(r"(.*)-(\d+)", nickname)
    if match:
        return _with_suffix(match.group(1), int(match.group(2)) + 1)
    return _with_suffix(nickname, 2)


async def _free_nickname(graph: GraphClient, nickname: str, explicit: bool) -> str:
    """`nickname` when no group uses it; else 409 (explicit) or the first free suffixed variant (derived)."""
    candidate = nickname
    for _ in range(NICKNAME_SUFFIX_TRIES):
        if await find_group_by_nickname(graph, candidate) is None:
            return candidate
        if explicit:
            raise _nickname_taken(nickname)
        candidate = _next_nickname(candidate)
    raise _nickname_taken(nickname)


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
        linked_elsewhere = await _organization_linked_to(session, group_id, organization.id) is not None
    if not made_after_attempt or recorded_elsewhere or linked_elsewhere or linkability(group) is not None:
        log.warning(
            "organization %s: create-group retry found alias %s on a group it did not make; not adopted",
            organization.id,
            creation.mail_nickname,
        )
        raise _nickname_taken(creation.mail_nickname)


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
    await session.execute(select(Organization.id).where(Organization.id == organization.id).with_for_update())
    if creation is not None:
        creation.group_id = group_id
    await _record_created(session, organization, actor, group, creation)
    _set_link(organization, uuid.UUID(group_id), actor)
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
    await _flush_link(session)
    return CreateResult(group, replayed=False)


# --- details and members -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupDetails:
    group: dict[str, Any]
    member_count: int | None
    refusal: LinkRefusal | None


async def member_count(graph: GraphClient, group_id: str) -> int:
    # Graph's count lags behind member changes; ours made in the last minutes are counted already.
    return own_writes.member_count(graph.tenant, group_id, await graph.count(f"groups/{group_id}/members"))


async def group_details(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    actor: User | None,
    *,
    scope: GroupScope,
) -> GroupDetails:
    """The linked group as Graph has it now. GroupMissing when it was deleted outside Equa (link cleared)."""
    group_id = await require_linked_in_scope(session, graph, organization, scope)
    # The group and its member count are two Graph round trips; ask for both at once.
    counting = asyncio.create_task(
        _tolerating_replication_lag(
            lambda: member_count(graph, group_id), recent=recently_linked(organization)
        )
    )
    try:
        group = await _linked_group(session, graph, organization, actor, "reading the group", scope=None)
    except BaseException:
        counting.cancel()
        await asyncio.gather(counting, return_exceptions=True)
        raise
    count = await counting
    return GroupDetails(group, count, linkability(group))


@dataclass(frozen=True)
class GroupMember:
    id: str
    object_type: str
    display_name: str | None
    mail: str | None
    user_principal_name: str | None
    user_type: str | None
    equa_user_id: uuid.UUID | None


@dataclass(frozen=True)
class MembersPage:
    items: list[GroupMember]
    next_cursor: str | None


async def team_directory(
    session: AsyncSession, organization: Organization
) -> tuple[dict[str, uuid.UUID], ...]:
    """(address -> Equa user id, directory id -> Equa user id) for the organization's team."""
    rows = await session.execute(
        select(User.email_normalized, User.id)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.organization_id == organization.id)
    )
    by_email = {email: user_id for email, user_id in rows}
    links = await session.execute(
        select(MicrosoftMember.directory_id, MicrosoftMember.user_id).where(
            MicrosoftMember.organization_id == organization.id
        )
    )
    by_directory_id = {directory_id.lower(): user_id for directory_id, user_id in links}
    return by_email, by_directory_id


def _member_from_graph(
    item: dict[str, Any], by_email: dict[str, uuid.UUID], by_directory_id: dict[str, uuid.UUID]
) -> GroupMember:
    object_type = str(item.get("@odata.type") or "#microsoft.graph.user").rsplit(".", 1)[-1]
    mail = item.get("mail")
    upn = item.get("userPrincipalName")
    equa_user_id = by_directory_id.get(str(item.get("id", "")).lower())
    if equa_user_id is None and object_type == "user":
        for address in (mail, upn):
            if address and normalize_email(address) in by_email:
                equa_user_id = by_email[normalize_email(address)]
                break
    return GroupMember(
        id=str(item.get("id")),
        object_type=object_type,
        display_name=item.get("displayName"),
        mail=mail,
        user_principal_name=upn,
        user_type=item.get("userType"),
        equa_user_id=equa_user_id,
    )


async def list_group_members(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    actor: User | None,
    *,
    scope: GroupScope,
    cursors: Cursors,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
) -> MembersPage:
    """One page of the linked group's members (one Graph page, never the whole group), each matched to Equa."""
    group_id = await require_linked_in_scope(session, graph, organization, scope)
    members_url = graph.url_for(f"groups/{group_id}/members")
    limit = max(1, min(MAX_PAGE_SIZE, limit))
    params = {"$select": MEMBER_FIELDS, "$top": str(limit)}
    if cursor is not None:
        # The next request is ours, rebuilt from the signed skip token and page size; nothing else is taken.
        position = cursors.read(cursor, max_size=MAX_PAGE_SIZE)
        if position.skip_token is None:
            raise invalid_cursor()
        limit = position.size
        params = {"$select": MEMBER_FIELDS, "$top": str(limit), "$skiptoken": position.skip_token}

    async def read_page() -> Any:
        return await graph.get(members_url, params=params)

    try:
        response = await _tolerating_replication_lag(read_page, recent=recently_linked(organization))
    except GraphNotFound:
        await _linked_group(session, graph, organization, actor, "listing members", scope=None)
        raise
    body = response.json() or {}
    by_email, by_directory_id = await team_directory(session, organization)
    next_link = body.get("@odata.nextLink")
    # Graph may not list a member added (or may still list one removed) here a moment ago: show ours.
    listed = own_writes.members_page(graph.tenant, group_id, body.get("value") or [], last_page=not next_link)
    items = [_member_from_graph(item, by_email, by_directory_id) for item in listed]
    skip_token = skip_token_of(next_link)
    return MembersPage(items, cursors.sign(size=limit, skip_token=skip_token) if skip_token else None)


def _unmanageable(refusal: LinkRefusal) -> AppError:
    return AppError(
        422,
        "microsoft_group_unmanageable",
        f"The members of this group cannot be changed through Microsoft Graph. {refusal.reason}",
        refusal.action,
        extra={"reason": refusal.code},
    )


def _user_not_found(what: str) -> AppError:
    return AppError(
        404,
        "microsoft_user_not_found",
        f"No user in the Microsoft 365 tenant matches {what}.",
        "Check the address or id; people outside the tenant must first be invited as guests in Microsoft Entra.",
    )


async def _resolve_user(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    *,
    user_id: uuid.UUID | None,
    email: str | None,
    equa_user_id: uuid.UUID | None,
) -> dict[str, Any]:
    if user_id is not None:
        try:
            response = await graph.get(f"users/{user_id}", params={"$select": USER_FIELDS})
        except GraphNotFound:
            raise _user_not_found(f"the id {user_id}") from None
        user: dict[str, Any] = response.json() or {}
        return user
    if equa_user_id is not None:
        row = await session.execute(
            select(User)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.organization_id == organization.id, User.id == equa_user_id)
        )
        equa_user = row.scalar_one_or_none()
        if equa_user is None:
            raise AppError(
                404,
                "equa_user_not_found",
                "equaUserId: this person is not a member of the organization.",
                "Pick someone from the organization's team.",
            )
        linked = await session.scalar(
            select(MicrosoftMember.directory_id).where(
                MicrosoftMember.organization_id == organization.id, MicrosoftMember.user_id == equa_user.id
            )
        )
        if linked is not None:
            try:
                response = await graph.get(f"users/{linked}", params={"$select": USER_FIELDS})
                found: dict[str, Any] = response.json() or {}
                return found
            except GraphNotFound:
                pass  # the directory user was deleted since; fall back to the address
        email = equa_user.email
    assert email is not None
    found_user = await find_tenant_user(graph, email)
    if found_user is None:
        raise _user_not_found(f"the address {email}")
    return found_user


@dataclass(frozen=True)
class MemberChange:
    member: GroupMember
    added: bool


async def add_group_member(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    actor: User,
    *,
    scope: GroupScope,
    user_id: uuid.UUID | None = None,
    email: str | None = None,
    equa_user_id: uuid.UUID | None = None,
) -> MemberChange:
    """Add one user (by directory id, address, or Equa team member) to the linked group.

    added=False when they already were a member (not an error). 404 when the tenant has no such user, 422 for
    guests the tenant's policy keeps out (via GraphGuestBlocked) and for groups whose members cannot change.
    """
    group = await _linked_group(session, graph, organization, actor, "adding a member", scope=scope)
    refusal = linkability(group)
    if refusal is not None:
        raise _unmanageable(refusal)
    user = await _resolve_user(
        session, graph, organization, user_id=user_id, email=email, equa_user_id=equa_user_id
    )
    group_id = str(group["id"])
    target = str(user.get("userPrincipalName") or user.get("mail") or user["id"])
    added = True
    request_id: str | None = None
    try:
        response = await _tolerating_replication_lag(
            lambda: graph.post(
                f"groups/{group_id}/members/$ref",
                json={"@odata.id": graph.url_for(f"directoryObjects/{user['id']}")},
            ),
            recent=recently_linked(organization),
        )
        request_id = response.request_id
    except GraphAlreadyExists as error:
        added = False
        request_id = error.request_id
    except GraphError as error:
        _audit_member_change(session, organization, actor, "member.add", target, failure=error)
        raise
    _audit_member_change(
        session,
        organization,
        actor,
        "member.add",
        target,
        request_id=request_id,
        detail=None if added else "Already a member; nothing changed.",
    )
    if added:
        listed = {"@odata.type": "#microsoft.graph.user", **user}
        own_writes.changed(graph.tenant, group_id, str(user["id"]), present=True, member=listed)
    by_email, by_directory_id = await team_directory(session, organization)
    return MemberChange(_member_from_graph(user, by_email, by_directory_id), added)


async def remove_group_member(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    actor: User,
    member_id: uuid.UUID,
    *,
    scope: GroupScope,
) -> bool:
    """Remove a member from the linked group; True when they were a member (either way they are not now)."""
    group = await _linked_group(session, graph, organization, actor, "removing a member", scope=scope)
    refusal = linkability(group)
    if refusal is not None:
        raise _unmanageable(refusal)
    removed = True
    request_id: str | None = None
    try:
        response = await graph.delete(f"groups/{group['id']}/members/{member_id}/$ref")
        request_id = response.request_id
    except GraphNotFound as error:
        removed = False
        request_id = error.request_id
    except GraphError as error:
        _audit_member_change(session, organization, actor, "member.remove", str(member_id), failure=error)
        raise
    _audit_member_change(
        session,
        organization,
        actor,
        "member.remove",
        str(member_id),
        request_id=request_id,
        detail=None if removed else "Was not a member; nothing changed.",
    )
    if removed:
        own_writes.changed(graph.tenant, str(group["id"]), str(member_id), present=False)
    return removed


def _audit_member_change(
    session: AsyncSession,
    organization: Organization,
    actor: User,
    action: str,
    target: str,
    *,
    failure: GraphError | None = None,
    request_id: str | None = None,
    detail: str | None = None,
) -> None:
    """The audit event of one member added or removed by an admin, or of the attempt that failed."""
    record_audit(
        session,
        organization_id=organization.id,
        actor_id=actor.id,
        action=action,
        target=target,
        outcome=FAILURE if failure is not None else SUCCESS,
        detail=failure.message if failure is not None else detail,
        request_id=failure.request_id if failure is not None else request_id,
    )


# --- search (the group picker) -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupChoice:
    group: dict[str, Any]
    refusal: LinkRefusal | None
    linked_here: bool


@dataclass(frozen=True)
class GroupSearchPage:
    items: list[GroupChoice]
    next_cursor: str | None


_LINKED_ELSEWHERE = LinkRefusal(
    "linked_to_another_organization",
    "It is already linked to another Equa organization.",
    "Choose another group, or create a new one.",
)


async def search_groups(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    *,
    scope: GroupScope,
    cursors: Cursors,
    search: str | None = None,
    cursor: str | None = None,
    limit: int = SEARCH_PAGE_SIZE,
) -> GroupSearchPage:
    """The group picker: groups the organization may link under MS_GROUP_SCOPE, each marked linkable or not.

    `granted`: its granted and created groups. `administrative-unit`: those (first page), then the unit's groups.
    `tenant`: every group of the tenant. `search` keeps groups with a word of the displayName starting with it.
    Groups out of scope are never listed, whatever the search text or cursor.
    """
    limit = max(1, min(MAX_PAGE_SIZE, limit))
    position: Cursor | None = None
    if cursor is not None:
        # A next page continues the search the cursor was signed for, whatever `search` says now.
        position = cursors.read(cursor, max_size=MAX_PAGE_SIZE)
        limit, search = position.size, position.search
    term = (search or "").replace('"', " ").replace("\\", " ").strip()
    page = _PickerPage(cursors, term, position, limit)
    if scope.tenant_wide:
        return await _search_tenant(session, graph, organization, page)
    if scope.mode is GroupScopeMode.ADMINISTRATIVE_UNIT:
        return await _search_unit(session, graph, organization, scope, page)
    return await _search_granted(session, graph, organization, page)


@dataclass(frozen=True)
class _PickerPage:
    """Which page of the picker is asked for: the signed cursor's position (None on the first page) and the term."""

    cursors: Cursors
    term: str
    position: Cursor | None
    limit: int

    def skip_token(self) -> str | None:
        """Graph's skip token of a next page (None on the first page); a cursor without one was not ours."""
        if self.position is None:
            return None
        if self.position.skip_token is None:
            raise invalid_cursor()
        return self.position.skip_token

    def next_from_graph(self, body: dict[str, Any]) -> str | None:
        token = skip_token_of(body.get("@odata.nextLink"))
        return self.cursors.sign(size=self.limit, skip_token=token, search=self.term) if token else None


def _matches(group: dict[str, Any], term: str) -> bool:
    """Graph's displayName search, approximately: a word of the name starts with the term (case-insensitive)."""
    if not term:
        return True
    name = str(group.get("displayName") or "").casefold()
    wanted = term.casefold()
    return name.startswith(wanted) or any(
        word.startswith(wanted) for word in re.split(r"[\s\-_.,:;()]+", name)
    )


async def _granted_groups(graph: GraphClient, group_ids: list[str]) -> list[dict[str, Any]]:
    """The groups as Graph has them now, in the order given; those deleted in Microsoft 365 are left out."""

    async def one(group_id: str) -> dict[str, Any] | None:
        try:
            return await fetch_group(graph, group_id)
        except GraphNotFound:
            return None

    found = await asyncio.gather(*(one(group_id) for group_id in group_ids))
    return [group for group in found if group is not None]


async def _choices(
    session: AsyncSession, organization: Organization, groups: list[dict[str, Any]]
) -> list[GroupChoice]:
    """Each group with why it cannot be linked (its kind, or another organization has it), or None."""
    ids: list[uuid.UUID] = []
    for group in groups:
        try:
            ids.append(uuid.UUID(str(group.get("id"))))
        except ValueError:
            continue
    linked_rows = await session.execute(
        select(Organization.microsoft_group, Organization.id).where(Organization.microsoft_group.in_(ids))
    )
    linked_to = {str(group_id): org_id for group_id, org_id in linked_rows}
    grant_rows = await session.execute(
        select(MicrosoftGroupGrant.group_id, MicrosoftGroupGrant.organization_id).where(
            MicrosoftGroupGrant.group_id.in_([str(i) for i in ids])
        )
    )
    granted_to = {group_id: org_id for group_id, org_id in grant_rows}
    items = []
    for group in groups:
        key = str(group.get("id")).lower()
        owner = linked_to.get(key)
        holder = granted_to.get(key)
        here = owner == organization.id
        elsewhere = (owner is not None and not here) or (holder is not None and holder != organization.id)
        refusal = linkability(group) or (_LINKED_ELSEWHERE if elsewhere else None)
        items.append(GroupChoice(group, refusal, here))
    return items


async def _search_tenant(
    session: AsyncSession, graph: GraphClient, organization: Organization, page: _PickerPage
) -> GroupSearchPage:
    params: dict[str, str] = {"$select": GROUP_FIELDS, "$top": str(page.limit)}
    if page.term:
        params["$search"] = f'"displayName:{page.term}"'
        params["$orderby"] = "displayName"
        params["$count"] = "true"
    skip_token = page.skip_token()
    if skip_token is not None:
        params["$skiptoken"] = skip_token
    response = await graph.get(
        graph.url_for("groups"), params=params, headers={"ConsistencyLevel": "eventual"}
    )
    body = response.json() or {}
    groups: list[dict[str, Any]] = body.get("value") or []
    return GroupSearchPage(await _choices(session, organization, groups), page.next_from_graph(body))


async def _search_granted(
    session: AsyncSession, graph: GraphClient, organization: Organization, page: _PickerPage
) -> GroupSearchPage:
    """The organization's granted and created groups, oldest grant first, paged by position."""
    offset = 0
    if page.position is not None:
        if len(page.position.position) != 1 or not page.position.position[0].isdigit():
            raise invalid_cursor()
        offset = int(page.position.position[0])
    limit, term = page.limit, page.term
    group_ids = await granted_group_ids(session, organization.id)
    if term:
        # A search has to read every granted group to compare names; an organization has a handful.
        matching = [group for group in await _granted_groups(graph, group_ids) if _matches(group, term)]
        found = matching[offset : offset + limit]
        more = offset + limit < len(matching)
    else:
        found = await _granted_groups(graph, group_ids[offset : offset + limit])
        more = offset + limit < len(group_ids)
    next_cursor = (
        page.cursors.sign(size=limit, position=(str(offset + limit),), search=term) if more else None
    )
    return GroupSearchPage(await _choices(session, organization, found), next_cursor)


async def _search_unit(
    session: AsyncSession,
    graph: GraphClient,
    organization: Organization,
    scope: GroupScope,
    page: _PickerPage,
) -> GroupSearchPage:
    """The first page starts with the organization's granted and created groups, then the unit's groups follow."""
    own_ids = await granted_group_ids(session, organization.id)
    first: list[dict[str, Any]] = []
    params = {"$select": GROUP_FIELDS, "$top": str(page.limit)}
    skip_token = page.skip_token()
    if skip_token is not None:
        params["$skiptoken"] = skip_token
    else:
        first = [group for group in await _granted_groups(graph, own_ids) if _matches(group, page.term)]
    response = await graph.get(graph.url_for(scope.unit_members_path()), params=params)
    body = response.json() or {}
    own = set(own_ids)
    unit_groups = [
        group
        for group in body.get("value") or []
        if str(group.get("id", "")).lower() not in own and _matches(group, page.term)
    ]
    choices = await _choices(session, organization, first + unit_groups)
    # A unit group another organization holds is out of this organization's reach: not listed at all.
    visible = [choice for choice in choices if choice.refusal is not _LINKED_ELSEWHERE or choice.linked_here]
    return GroupSearchPage(visible, page.next_from_graph(body))
