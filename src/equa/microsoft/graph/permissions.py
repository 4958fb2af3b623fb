"""The one list of Microsoft Graph application permissions the service needs, per feature and per group scope mode.

The action messages of permission errors, the consent page text, `equa microsoft check` and
docs/entra-app-registration.md all read this list (a test compares the docs with it), so they cannot disagree.

Multi-tenant mode (MS_AUTH_TENANT_ID=organizations) needs one permission more in every scope mode: connecting an
organization's tenant proves it by reading its organization object, and the scheduled check reads it again.

The group scope mode is MS_GROUP_SCOPE: `granted` (the default: groups created here or granted by an operator),
`tenant` (any group of the tenant) or `administrative-unit:<id>` (also the groups of one Microsoft Entra
administrative unit). The unit mode reads the unit's groups and creates groups inside the unit, which takes two more
permissions. In every mode the app's Graph permissions are tenant-wide; the scope is what Equa lets an
organization reach with them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

from equa.settings import GroupScopeMode, Settings

# One vocabulary of modes with the setting (and equa.microsoft.scope, the policy that applies it).
ScopeKind = GroupScopeMode


@dataclass(frozen=True)
class ScopeSetting:
    """MS_GROUP_SCOPE as the permission list needs it: the mode, and the unit in the administrative-unit mode; and
    whether organizations connect their own tenants (multi-tenant mode), which takes one more permission."""

    kind: ScopeKind
    unit_id: str | None = None
    multi_tenant: bool = False

    def __str__(self) -> str:
        return f"{self.kind}:{self.unit_id}" if self.unit_id else str(self.kind)


DEFAULT_SCOPE = ScopeSetting(ScopeKind.GRANTED)


class GroupScopeError(ValueError):
    pass


def parse_group_scope(value: str | None) -> ScopeSetting:
    """`granted` | `tenant` | `administrative-unit:<id>` (empty: granted)."""
    text = (value or "").strip()
    if not text or text.lower() == ScopeKind.GRANTED:
        return ScopeSetting(ScopeKind.GRANTED)
    if text.lower() == ScopeKind.TENANT:
        return ScopeSetting(ScopeKind.TENANT)
    kind, _, unit_id = text.partition(":")
    if kind.lower() == ScopeKind.ADMINISTRATIVE_UNIT and unit_id.strip():
        return ScopeSetting(ScopeKind.ADMINISTRATIVE_UNIT, unit_id.strip())
    raise GroupScopeError(
        "MS_GROUP_SCOPE must be `granted`, `tenant` or `administrative-unit:<id>` (the unit's object id)"
    )


def group_scope_of(settings: Settings) -> ScopeSetting:
    """The configured scope; `granted` where the setting does not exist or does not parse (start-up checks it)."""
    try:
        scope = parse_group_scope(getattr(settings, "ms_group_scope", None))
    except GroupScopeError:
        scope = ScopeSetting(ScopeKind.GRANTED)
    return replace(scope, multi_tenant=bool(getattr(settings, "multi_tenant", False)))


class Feature(StrEnum):
    READ_GROUPS = "read and choose groups"
    MANAGE_MEMBERS = "list, add and remove members"
    LOOK_UP_USERS = "look up team members"
    CREATE_GROUPS = "create groups"
    RESTORE_GROUPS = "restore a deleted group"
    READ_ORGANIZATION = "prove a connected tenant"


@dataclass(frozen=True)
class Permission:
    name: str
    feature: Feature
    why: str
    # Broader permissions that include this one: a token holding any of them lacks nothing.
    covered_by: tuple[str, ...] = ()
    # Other features that need this permission as well as their own.
    also_for: tuple[Feature, ...] = ()

    def serves(self, feature: Feature) -> bool:
        return feature == self.feature or feature in self.also_for


_BASE = (
    Permission(
        "GroupMember.ReadWrite.All",
        Feature.MANAGE_MEMBERS,
        "add and remove members of the linked group (single adds, `members@odata.bind` in batches of 20, "
        "`DELETE .../members/{id}/$ref`), and list its members for the members page and for sync",
        ("Group.ReadWrite.All", "Directory.ReadWrite.All"),
    ),
    Permission(
        "Group.Read.All",
        Feature.READ_GROUPS,
        "read the linked group's properties (name, kind, `isAssignableToRole`, dynamic membership rule, "
        "on-premises sync) to decide whether it can be managed, search groups by name or `mailNickname` "
        "when linking or before creating one, and look a vanished group up among deleted items "
        "(`GET /directory/deletedItems/{id}`) to tell a deleted group from one not replicated yet",
        ("Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"),
    ),
    Permission(
        "Group.Create",
        Feature.CREATE_GROUPS,
        "create a new private Microsoft 365 group from the settings page; without it everything else works and "
        "creating a group answers `microsoft_permission_missing`",
        ("Group.ReadWrite.All", "Directory.ReadWrite.All"),
    ),
    Permission(
        "User.Read.All",
        Feature.LOOK_UP_USERS,
        "look team members up in the directory by email address (`mail`, `userPrincipalName`, proxy "
        "addresses), to know which directory user each Equa member is, and to make the creating admin an owner "
        "of a new group",
        ("User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"),
    ),
)

_ADMINISTRATIVE_UNIT = (
    Permission(
        "AdministrativeUnit.Read.All",
        Feature.READ_GROUPS,
        "list the groups of the administrative unit named by `MS_GROUP_SCOPE`, the groups organizations may link, "
        "and, with `Group.Create`, create new groups inside the unit (`POST /directory/administrativeUnits/{id}/"
        "members`), so they stay in scope",
        ("AdministrativeUnit.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"),
        # Microsoft's page for creating a group inside a unit asks for Group.Create and AdministrativeUnit.Read.All
        # (not ReadWrite.All, which adding an existing object takes and this service never does).
        also_for=(Feature.CREATE_GROUPS,),
    ),
)

_MULTI_TENANT = (
    Permission(
        "Organization.Read.All",
        Feature.READ_ORGANIZATION,
        "multi-tenant mode only: connecting an organization's tenant proves it by reading its organization object "
        "(`GET /organization`: display name, verified domains), and the scheduled check reads it to notice a "
        "revoked consent",
        ("Organization.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"),
    ),
)


# Not required: what works without them says so when it is asked for (`equa microsoft check` does not miss them).
OPTIONAL_PERMISSIONS = (
    Permission(
        "Group.ReadWrite.All",
        Feature.RESTORE_GROUPS,
        "restore the organization's deleted Microsoft 365 group from deleted items within its 30 days "
        "(`POST /directory/deletedItems/{id}/restore`, the Restore button, `restore-group`); without it "
        "everything else works and restoring answers `microsoft_permission_missing`. It also lets the app change "
        "and delete any group of the tenant: grant it only if admins should restore groups from Equa",
        ("Directory.ReadWrite.All",),
    ),
)


def required_permissions(scope: ScopeSetting) -> tuple[Permission, ...]:
    """Every permission the service needs in this scope mode, in the order the docs list them."""
    needed: tuple[Permission, ...] = _BASE
    if scope.kind == ScopeKind.ADMINISTRATIVE_UNIT:
        needed += _ADMINISTRATIVE_UNIT
    if scope.multi_tenant:
        needed += _MULTI_TENANT
    return needed


def permission_names(scope: ScopeSetting, feature: Feature | None = None) -> list[str]:
    """The required permissions (of one feature, optional ones included, when `feature` is given)."""
    if feature is None:
        return [p.name for p in required_permissions(scope)]
    return [p.name for p in (*required_permissions(scope), *OPTIONAL_PERMISSIONS) if p.serves(feature)]


def feature_of(method: str, route: str) -> Feature | None:
    """What a Graph request (method and path template, like `POST /groups/{id}/members/$ref`) is for."""
    path = route.lower()
    method = method.upper()
    if path.startswith("/organization"):
        return Feature.READ_ORGANIZATION
    if path.startswith("/directory/deleteditems"):
        return Feature.RESTORE_GROUPS if method == "POST" else Feature.READ_GROUPS
    if path.startswith("/users"):
        return Feature.LOOK_UP_USERS
    if path.startswith("/groups/{id}/members") or path.startswith("/groups/{id}/owners"):
        return Feature.MANAGE_MEMBERS
    if method == "POST" and (path == "/groups" or path.startswith("/directory/administrativeunits")):
        return Feature.CREATE_GROUPS
    if path.startswith("/groups") or path.startswith("/directory/administrativeunits"):
        return Feature.MANAGE_MEMBERS if method in ("PATCH", "DELETE") else Feature.READ_GROUPS
    return None


def missing_permissions(granted: Iterable[str], scope: ScopeSetting) -> list[Permission]:
    """The required permissions that the granted roles (a token's `roles` claim) neither hold nor cover."""
    held = {role.lower() for role in granted}
    return [
        p
        for p in required_permissions(scope)
        if p.name.lower() not in held and not any(c.lower() in held for c in p.covered_by)
    ]


def grant_instruction(scope: ScopeSetting, feature: Feature | None = None) -> str:
    """`Group.Read.All, ... and User.Read.All`: what to add in the app registration (for one feature or all)."""
    names = permission_names(scope, feature) or permission_names(scope)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


# Creating a group inside an administrative unit takes a directory role scoped to the unit on top of the permissions
# (Microsoft's page for POST /directory/administrativeUnits/{id}/members); Groups Administrator is the narrowest.
UNIT_GROUP_CREATOR_ROLE = "Groups Administrator"


def unit_role_instruction(scope: ScopeSetting) -> str:
    """What a tenant administrator assigns so that create-group can create inside the unit of MS_GROUP_SCOPE."""
    return (
        f"Creating a group inside administrative unit {scope.unit_id} also takes the {UNIT_GROUP_CREATOR_ROLE} "
        "role scoped to that unit: a Privileged Role Administrator assigns it to this app in the Microsoft Entra "
        f"admin center (Admin units > the unit > Roles and administrators > {UNIT_GROUP_CREATOR_ROLE} > Add "
        "assignments > the app's enterprise application)."
    )


def consent_action(scope: ScopeSetting, consent_url: str | None, feature: Feature | None = None) -> str:
    """What a tenant administrator does when a permission is missing."""
    where = consent_url or "the app registration > API permissions > Grant admin consent"
    needed = grant_instruction(scope, feature)
    which = "permission" if " and " not in needed else "permissions"
    return (
        f"Add the Microsoft Graph application {which} {needed} to the app registration "
        f"(group scope `{scope}`), then a tenant administrator grants admin consent: {where}"
    )
