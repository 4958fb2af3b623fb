"""In-memory directory: tenants, apps, users, groups, memberships and the change log that feeds delta queries."""

from __future__ import annotations

import bisect
import datetime as dt
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

GUID_LENGTH = 36


def is_guid(value: str) -> bool:
    if len(value) != GUID_LENGTH:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def iso_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Secret:
    value: str
    expires: dt.datetime | None = None
    key_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Certificate:
    thumbprint_hex: str  # SHA-1 of the DER certificate, upper-case hex (the x5t header)
    public_key: Any | None = None  # set when the seed gave the PEM
    sha256_hex: str | None = None  # SHA-256 thumbprint (the x5t#S256 header), known when the PEM was given


@dataclass
class App:
    client_id: str
    display_name: str
    secrets: list[Secret]
    certificates: list[Certificate]
    roles: set[str]  # application permissions granted by admin consent
    requested_roles: set[str]  # what admin consent grants
    service_principal_id: str
    # The registration's own settings (shared by its service principals in other tenants).
    home_tenant_id: str = ""
    multi_tenant: bool = False  # signInAudience AzureADMultipleOrgs: other tenants may consent to it
    redirect_uris: list[str] = field(default_factory=list)  # empty: any redirect is accepted


@dataclass
class Account:
    """A person who can sign in to the consent page: a user of the tenant, with a password."""

    user_id: str
    user_principal_name: str
    password: str
    admin: bool  # a Global Administrator (may grant tenant-wide admin consent)


class MemberSet:
    """Members of one group: a set for membership tests and a sorted list for cheap paging."""

    __slots__ = ("_ids", "_sorted")

    def __init__(self, ids: set[str] | None = None) -> None:
        self._ids: set[str] = set(ids or ())
        self._sorted: list[str] | None = None

    def __contains__(self, object_id: object) -> bool:
        return object_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, object_id: str) -> None:
        if object_id in self._ids:
            return
        self._ids.add(object_id)
        if self._sorted is not None:
            bisect.insort(self._sorted, object_id)

    def discard(self, object_id: str) -> None:
        if object_id not in self._ids:
            return
        self._ids.discard(object_id)
        if self._sorted is not None:
            index = bisect.bisect_left(self._sorted, object_id)
            del self._sorted[index]

    def ordered(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self._ids)
        return self._sorted

    def ids(self) -> set[str]:
        return self._ids


@dataclass
class Pending:
    """A change Graph has made but not yet replicated: readers still see `base` (None: the object is not there)."""

    base: Any
    since: float


@dataclass
class ChangeEvent:
    seq: int
    group_id: str
    kind: str  # "group" (created/updated), "add", "remove", "deleted"
    member_id: str | None = None


@dataclass
class DeletedMemberships:
    """What a soft-deleted group had, so that restoring it brings its members back (deleted_items.py)."""

    members: MemberSet
    owners: MemberSet
    deleted_at: float  # time.monotonic() of the deletion; retention is measured on it, following time_scale


@dataclass
class Tenant:
    id: str
    domain: str
    size: str
    display_name: str
    apps: dict[str, App] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, MemberSet] = field(default_factory=dict)
    owners: dict[str, MemberSet] = field(default_factory=dict)
    deleted_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted_memberships: dict[str, DeletedMemberships] = field(default_factory=dict)
    units: dict[str, dict[str, Any]] = field(default_factory=dict)  # administrative units by id
    unit_members: dict[str, MemberSet] = field(default_factory=dict)
    # Directory roles held within a unit only (scopedRoleMembers): unit id -> app id -> role names. Keyed by the
    # app's client id rather than its service principal's object id, so that a service principal made later (by
    # admin consent in multi-tenant mode) finds the assignment its seed gave it.
    unit_roles: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    upn_index: dict[str, str] = field(default_factory=dict)
    mail_index: dict[str, str] = field(default_factory=dict)
    proxy_index: dict[str, set[str]] = field(default_factory=dict)
    nickname_index: dict[str, str] = field(default_factory=dict)
    allow_guests_in_groups: bool = True
    decline_consent: bool = False
    accounts: dict[str, Account] = field(default_factory=dict)  # by lower-case sign-in name
    verified_domains: list[str] = field(default_factory=list)  # custom domains beside the initial one
    # Replication: what readers still see of groups and memberships changed through Graph in the last lag.
    stale_groups: dict[str, Pending] = field(default_factory=dict)
    stale_members: dict[str, Pending] = field(default_factory=dict)
    new_users: dict[str, float] = field(default_factory=dict)  # user created through Graph -> when
    changes: list[ChangeEvent] = field(default_factory=list)
    changes_by_group: dict[str, list[ChangeEvent]] = field(default_factory=dict)  # the same events, per group
    indexed_changes: int = 0  # how many of `changes` the per-group index holds
    next_seq: int = 1
    users_sorted: list[str] | None = None

    # ---- users -------------------------------------------------------------------------------
    def put_user(self, user: dict[str, Any]) -> None:
        old = self.users.get(user["id"])
        if old is not None:
            self._unindex_user(old)
        self.users[user["id"]] = user
        self.upn_index[user["userPrincipalName"].lower()] = user["id"]
        if user.get("mail"):
            self.mail_index[user["mail"].lower()] = user["id"]
        for address in user.get("proxyAddresses") or []:
            self.proxy_index.setdefault(address.lower(), set()).add(user["id"])
        self.users_sorted = None

    def _unindex_user(self, user: dict[str, Any]) -> None:
        self.upn_index.pop(user["userPrincipalName"].lower(), None)
        if user.get("mail"):
            self.mail_index.pop(user["mail"].lower(), None)
        for address in user.get("proxyAddresses") or []:
            self.proxy_index.get(address.lower(), set()).discard(user["id"])

    def ordered_user_ids(self) -> list[str]:
        if self.users_sorted is None:
            self.users_sorted = sorted(self.users)
        return self.users_sorted

    def find_user(self, id_or_upn: str) -> dict[str, Any] | None:
        user = self.users.get(id_or_upn)
        if user is None:
            object_id = self.upn_index.get(id_or_upn.lower())
            user = self.users.get(object_id) if object_id else None
        return user

    # ---- groups ------------------------------------------------------------------------------
    def put_group(self, group: dict[str, Any], *, record: bool = True) -> None:
        old = self.groups.get(group["id"])
        if old is not None and old.get("mailNickname"):
            self.nickname_index.pop(old["mailNickname"].lower(), None)
        self.groups[group["id"]] = group
        if "Unified" in (group.get("groupTypes") or []) and group.get("mailNickname"):
            self.nickname_index[group["mailNickname"].lower()] = group["id"]
        self.members.setdefault(group["id"], MemberSet())
        self.owners.setdefault(group["id"], MemberSet())
        if record:
            self.record(group["id"], "group")

    def remove_group(self, group_id: str) -> dict[str, Any] | None:
        group = self.groups.pop(group_id, None)
        if group is None:
            return None
        if group.get("mailNickname"):
            self.nickname_index.pop(group["mailNickname"].lower(), None)
        members = self.members.pop(group_id, None) or MemberSet()
        owners = self.owners.pop(group_id, None) or MemberSet()
        # A deletion is seen at once (readers that saw the group get 404 from now on).
        self.stale_groups.pop(group_id, None)
        self.stale_members.pop(group_id, None)
        # Microsoft 365 groups go to deleted items for 30 days; security groups are gone for good at once.
        if "Unified" in (group.get("groupTypes") or []):
            self.deleted_groups[group_id] = {**group, "deletedDateTime": iso_now()}
            self.deleted_memberships[group_id] = DeletedMemberships(members, owners, time.monotonic())
        self.record(group_id, "deleted")
        # A deleted group leaves every group it belonged to.
        for other_id, members in self.members.items():
            if group_id in members:
                members.discard(group_id)
                self.record(other_id, "remove", group_id)
        for unit_members in self.unit_members.values():
            unit_members.discard(group_id)
        return group

    # ---- administrative units ----------------------------------------------------------------
    def put_unit(self, unit: dict[str, Any]) -> None:
        self.units[unit["id"]] = unit
        self.unit_members.setdefault(unit["id"], MemberSet())
        self.unit_roles.setdefault(unit["id"], {})

    def set_unit_roles(self, unit_id: str, client_id: str, roles: list[str] | set[str]) -> None:
        """The directory roles app `client_id` holds scoped to the unit (an empty list removes them all)."""
        held = self.unit_roles.setdefault(unit_id, {})
        if roles:
            held[client_id] = set(roles)
        else:
            held.pop(client_id, None)

    def unit_roles_of(self, unit_id: str, client_id: str) -> set[str]:
        return self.unit_roles.get(unit_id, {}).get(client_id, set())

    def find_object(self, object_id: str) -> tuple[str, dict[str, Any]] | None:
        if object_id in self.users:
            return "user", self.users[object_id]
        if object_id in self.groups:
            return "group", self.groups[object_id]
        for app in self.apps.values():
            if app.service_principal_id == object_id:
                return "servicePrincipal", {
                    "id": object_id,
                    "appId": app.client_id,
                    "displayName": app.display_name,
                }
        return None

    def add_member(self, group_id: str, object_id: str) -> None:
        members = self.members[group_id]
        if object_id not in members:
            members.add(object_id)
            self.record(group_id, "add", object_id)

    def remove_member(self, group_id: str, object_id: str) -> None:
        members = self.members[group_id]
        if object_id in members:
            members.discard(object_id)
            self.record(group_id, "remove", object_id)

    def record(self, group_id: str, kind: str, member_id: str | None = None) -> None:
        event = ChangeEvent(self.next_seq, group_id, kind, member_id)
        self.changes.append(event)
        if self.indexed_changes == len(self.changes) - 1:
            self.changes_by_group.setdefault(group_id, []).append(event)
            self.indexed_changes += 1
        self.next_seq += 1

    def group_events(self, group_id: str) -> list[ChangeEvent]:
        """The change events of one group, in sequence order (the index is rebuilt if `changes` was edited)."""
        if self.indexed_changes != len(self.changes):
            self.changes_by_group = {}
            for event in self.changes:
                self.changes_by_group.setdefault(event.group_id, []).append(event)
            self.indexed_changes = len(self.changes)
        return self.changes_by_group.get(group_id, [])

    # ---- replication lag -----------------------------------------------------------------------
    # Graph writes land at once; reads, counts and the advanced-query index see them only after `lag` seconds.
    # A change within the lag of an earlier one keeps the older base and restarts the wait, as a replica that
    # keeps receiving writes stays behind.

    def note_group_change(self, group_id: str, lag: float, *, new: bool = False) -> None:
        if lag <= 0:
            return
        now = time.monotonic()
        entry = self.stale_groups.get(group_id)
        if entry is not None and now - entry.since < lag:
            entry.since = now
            return
        base = None if new else dict(self.groups[group_id])
        self.stale_groups[group_id] = Pending(base, now)

    def note_members_change(self, group_id: str, lag: float) -> None:
        if lag <= 0:
            return
        now = time.monotonic()
        entry = self.stale_members.get(group_id)
        if entry is not None and now - entry.since < lag:
            entry.since = now
            return
        self.stale_members[group_id] = Pending(MemberSet(set(self.members[group_id].ids())), now)

    def visible_group(self, group_id: str, lag: float) -> dict[str, Any] | None:
        """The group as a reader sees it now: None while a new group has not replicated."""
        entry = self.stale_groups.get(group_id)
        if entry is not None:
            if lag > 0 and time.monotonic() - entry.since < lag:
                return entry.base  # type: ignore[no-any-return]
            del self.stale_groups[group_id]
        return self.groups.get(group_id)

    def visible_members(self, group_id: str, lag: float) -> MemberSet:
        entry = self.stale_members.get(group_id)
        if entry is not None:
            if lag > 0 and time.monotonic() - entry.since < lag:
                return entry.base  # type: ignore[no-any-return]
            del self.stale_members[group_id]
        return self.members[group_id]

    def lagging_groups(self, lag: float) -> set[str]:
        """Groups whose last change (or membership change) has not replicated yet."""
        if lag <= 0:
            return set()
        horizon = time.monotonic() - lag
        return {
            group_id
            for stale in (self.stale_groups, self.stale_members)
            for group_id, entry in stale.items()
            if entry.since > horizon
        }

    def is_new_and_unreplicated(self, group_id: str, lag: float) -> bool:
        return group_id in self.groups and self.visible_group(group_id, lag) is None

    def unreplicated_users(self, lag: float) -> set[str]:
        """Users created through Graph within the lag: not found, listed or counted yet."""
        if not self.new_users:
            return set()
        horizon = time.monotonic() - lag
        for user_id in [u for u, at in self.new_users.items() if lag <= 0 or at <= horizon]:
            del self.new_users[user_id]
        return set(self.new_users)

    def settle(self) -> None:
        """Everything replicated at once (POST /_emulator/replicate-now)."""
        self.stale_groups.clear()
        self.stale_members.clear()
        self.new_users.clear()


@dataclass
class Directory:
    """Every tenant the emulator serves, by id and by domain."""

    tenants: dict[str, Tenant] = field(default_factory=dict)
    by_domain: dict[str, str] = field(default_factory=dict)
    default_tenant_id: str = ""
    # App registrations by client id (each in its home tenant), and the layout of a generated fleet.
    registrations: dict[str, App] = field(default_factory=dict)
    fleet: dict[str, Any] | None = None

    def add(self, tenant: Tenant) -> None:
        self.tenants[tenant.id] = tenant
        self.by_domain[tenant.domain.lower()] = tenant.id
        for domain in tenant.verified_domains:
            self.by_domain.setdefault(domain.lower(), tenant.id)
        if not self.default_tenant_id:
            self.default_tenant_id = tenant.id
        for app in tenant.apps.values():
            if app.home_tenant_id == tenant.id:
                self.registrations.setdefault(app.client_id, app)

    def find_account(self, sign_in_name: str) -> tuple[Tenant, Account] | None:
        """The tenant and account a sign-in name belongs to, in any tenant."""
        key = sign_in_name.strip().lower()
        for tenant in self.tenants.values():
            account = tenant.accounts.get(key)
            if account is not None:
                return tenant, account
        return None

    def resolve(self, tenant_ref: str) -> Tenant | None:
        tenant = self.tenants.get(tenant_ref.lower())
        if tenant is None:
            tenant_id = self.by_domain.get(tenant_ref.lower())
            tenant = self.tenants.get(tenant_id) if tenant_id else None
        return tenant

    @property
    def default(self) -> Tenant:
        return self.tenants[self.default_tenant_id]
