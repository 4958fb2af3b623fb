"""PURE sync planning: (team, group members, identity links, policy) -> SyncPlan; no I/O, no SQL, no HTTP.

The planner is fed the group's members one at a time (they arrive page by page from Graph) and keeps only what a
decision needs: the set of member ids, and the members that match nobody on the team. A 100,000-member group
therefore never sits in memory as full objects.

Rules (spec section 6, issue 6):
- every team member whose address resolves to a directory user not in the group is added, except those an admin
  removed from the group (excluded: never added back until allowed again);
- a link an admin made (explicit: this directory account is that team member's) holds whatever the addresses say;
- group members matching no team member are flagged (unless an admin dismissed them, or added them by hand),
  never turned into accounts;
- removals only with remove_departed on, only of members the sync itself added, who left the team, never owners.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from equa.microsoft.models import MatchedBy


def normalize_address(address: str | None) -> str | None:
    """Addresses compare case-insensitively, like Exchange does."""
    if not address:
        return None
    value = address.strip().lower()
    return value or None


@dataclass(frozen=True, slots=True)
class TeamMember:
    """An active member of the Equa organization; `email` is normalized."""

    user_id: uuid.UUID
    email: str
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class IdentityLink:
    """What microsoft_members remembers: the directory user an Equa user resolved to, and from which address."""

    user_id: uuid.UUID
    directory_id: str
    matched_email: str
    matched_by: str
    added_by_sync: bool = False


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """A directory object as Graph lists it; only users take part in matching."""

    id: str
    mail: str | None = None
    user_principal_name: str | None = None
    display_name: str | None = None
    user_type: str | None = None
    is_user: bool = True
    # How a lookup found this user (resolve.py fills it); None for group members.
    matched_by: str | None = None

    def addresses(self) -> tuple[str, ...]:
        found = (normalize_address(self.mail), normalize_address(self.user_principal_name))
        return tuple(a for a in found if a)


@dataclass(frozen=True, slots=True)
class SyncPolicy:
    remove_departed: bool = False


@dataclass(frozen=True, slots=True)
class PlannedMember:
    """A team member and the directory user they are (or will be) in the group as."""

    user_id: uuid.UUID
    email: str
    display_name: str | None
    directory_id: str


@dataclass(frozen=True, slots=True)
class PlannedRemoval:
    user_id: uuid.UUID
    email: str
    directory_id: str
    display_name: str | None = None


@dataclass
class SyncPlan:
    """What a run does; a dry run reports it as is."""

    adds: list[PlannedMember] = field(default_factory=list)
    already_members: list[PlannedMember] = field(default_factory=list)
    removals: list[PlannedRemoval] = field(default_factory=list)
    flagged: list[DirectoryUser] = field(default_factory=list)
    not_in_tenant: list[TeamMember] = field(default_factory=list)
    # Team members an admin removed from the group: not added back.
    excluded: list[TeamMember] = field(default_factory=list)
    # Links to store (new or changed); added_by_sync is kept from the old link and set by apply for adds.
    links: list[IdentityLink] = field(default_factory=list)
    # Links of people who left the team and are no longer in the group (or were just removed): to forget.
    forget_links: list[uuid.UUID] = field(default_factory=list)
    dismissed_in_group: int = 0

    @property
    def changes_microsoft(self) -> bool:
        return bool(self.adds or self.removals)

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.adds),
            "alreadyMember": len(self.already_members),
            "removed": len(self.removals),
            "flagged": len(self.flagged),
            "notInTenant": len(self.not_in_tenant),
            "excluded": len(self.excluded),
        }


def _holds(link: IdentityLink, address: str) -> bool:
    """Whether a link still names the team member with this address: one an admin made always does, one found
    by address until the member's address changes."""
    return link.matched_by == MatchedBy.EXPLICIT.value or link.matched_email == address


class SyncPlanner:
    """Builds a SyncPlan in three steps: observe every group member, resolve what is left, finish.

    ```
    planner = SyncPlanner(team, links, policy, dismissed, excluded=..., chosen=...)
    for member in group_members: planner.observe(member)
    addresses = planner.addresses_to_resolve()        # lookups happen outside, in resolve.py
    plan = planner.finish(resolved, owners)            # owners only matter if planner.removal_candidates()
    ```
    """

    def __init__(
        self,
        team: Iterable[TeamMember],
        links: Iterable[IdentityLink],
        policy: SyncPolicy,
        dismissed: Iterable[str] = (),
        *,
        excluded: Iterable[uuid.UUID] = (),
        chosen: Iterable[str] = (),
    ) -> None:
        self._policy = policy
        # Directory ids nobody flags: dismissed by an admin, or added to the group by hand.
        self._dismissed = set(dismissed)
        self._chosen = set(chosen)
        self._excluded = set(excluded)
        self._team: dict[uuid.UUID, TeamMember] = {}
        self._team_by_email: dict[str, uuid.UUID] = {}
        for member in team:
            self._team[member.user_id] = member
            self._team_by_email.setdefault(member.email, member.user_id)
        self._old_links: dict[uuid.UUID, IdentityLink] = {}
        # Directory id -> team member, from links still valid for the member's current address.
        self._linked: dict[str, uuid.UUID] = {}
        # Directory id -> link of someone who left the team.
        self._departed: dict[str, IdentityLink] = {}
        for link in links:
            self._old_links[link.user_id] = link
            linked_member = self._team.get(link.user_id)
            if linked_member is None:
                self._departed.setdefault(link.directory_id, link)
            elif _holds(link, linked_member.email):
                self._linked.setdefault(link.directory_id, link.user_id)
        self._group_ids: set[str] = set()
        # Team member -> directory id seen in the group.
        self._present: dict[uuid.UUID, str] = {}
        self._present_by: dict[uuid.UUID, str] = {}
        # Group members that matched nobody (yet): flag or removal candidates, by directory id.
        self._unmatched: dict[str, DirectoryUser] = {}
        self._finished = False

    # --- step 1 -------------------------------------------------------------------------------------------

    def observe(self, member: DirectoryUser) -> None:
        """Take one group member into account (call once per member, in any order)."""
        if member.id in self._group_ids:
            return
        self._group_ids.add(member.id)
        if not member.is_user:
            return  # nested groups, devices and service principals are not people to match
        user_id = self._linked.get(member.id)
        if user_id is not None and user_id not in self._present:
            self._present[user_id] = member.id
            return
        for address in member.addresses():
            candidate = self._team_by_email.get(address)
            if candidate is None or candidate in self._present:
                continue
            old = self._old_links.get(candidate)
            if old is not None and _holds(old, address) and old.directory_id != member.id:
                # The member's valid link points at another directory user; that one decides.
                continue
            self._present[candidate] = member.id
            self._present_by[candidate] = (
                MatchedBy.MAIL.value
                if normalize_address(member.mail) == address
                else MatchedBy.USER_PRINCIPAL_NAME.value
            )
            return
        self._unmatched[member.id] = member

    # --- step 2 -------------------------------------------------------------------------------------------

    def _target_of(self, member: TeamMember) -> str | None:
        """The directory id a team member is known to be, without a lookup."""
        present = self._present.get(member.user_id)
        if present is not None:
            return present
        link = self._old_links.get(member.user_id)
        if link is not None and _holds(link, member.email):
            return link.directory_id
        return None

    def addresses_to_resolve(self) -> list[str]:
        """Addresses of team members with no known directory user: they need a lookup (the excluded do not)."""
        return sorted(
            member.email
            for member in self._team.values()
            if self._target_of(member) is None and member.user_id not in self._excluded
        )

    def removal_candidates(self) -> list[str]:
        """Directory ids that may be removed (before the owner check); empty unless remove_departed is on."""
        if not self._policy.remove_departed:
            return []
        return sorted(
            directory_id
            for directory_id, link in self._departed.items()
            if link.added_by_sync and directory_id in self._unmatched
        )

    # --- step 3 -------------------------------------------------------------------------------------------

    def finish(self, resolved: Mapping[str, DirectoryUser | None], owners: Iterable[str] = ()) -> SyncPlan:
        """The plan, given the lookups of addresses_to_resolve() (missing or None: not in the tenant)."""
        if self._finished:
            raise RuntimeError("a SyncPlanner makes one plan")
        self._finished = True
        owner_ids = set(owners)
        plan = SyncPlan()
        claimed: set[str] = set()
        planned_adds: set[str] = set()
        for member in sorted(self._team.values(), key=lambda m: m.email):
            old = self._old_links.get(member.user_id)
            directory_id = self._target_of(member)
            matched_by = self._present_by.get(member.user_id)
            name = member.display_name
            if member.user_id in self._excluded and member.user_id not in self._present:
                plan.excluded.append(member)
                continue
            if directory_id is None:
                found = resolved.get(member.email)
                if found is None:
                    plan.not_in_tenant.append(member)
                    continue
                directory_id = found.id
                matched_by = found.matched_by or MatchedBy.MAIL.value
                # People are named as Microsoft 365 names them (the members table's names), when it was asked.
                name = found.display_name or name
            if old is None or old.directory_id != directory_id or old.matched_email != member.email:
                plan.links.append(
                    IdentityLink(
                        user_id=member.user_id,
                        directory_id=directory_id,
                        matched_email=member.email,
                        matched_by=matched_by or (old.matched_by if old else MatchedBy.MAIL.value),
                        # A new directory user was not added by us (yet): apply marks it when it adds it.
                        added_by_sync=bool(old and old.directory_id == directory_id and old.added_by_sync),
                    )
                )
            planned = PlannedMember(member.user_id, member.email, name, directory_id)
            claimed.add(directory_id)
            if directory_id in self._group_ids or directory_id in planned_adds:
                plan.already_members.append(planned)
            else:
                planned_adds.add(directory_id)
                plan.adds.append(planned)

        removable = set(self.removal_candidates()) - owner_ids - claimed
        for directory_id in sorted(removable):
            link = self._departed[directory_id]
            name = self._unmatched[directory_id].display_name
            plan.removals.append(PlannedRemoval(link.user_id, link.matched_email, directory_id, name))
        for user_id in sorted(self._old_links, key=str):
            if user_id in self._team:
                continue
            link = self._old_links[user_id]
            if link.directory_id not in self._group_ids or link.directory_id in removable:
                plan.forget_links.append(user_id)

        for directory_id in sorted(self._unmatched):
            if directory_id in claimed or directory_id in removable:
                continue
            unmatched = self._unmatched[directory_id]
            if any(address in self._team_by_email for address in unmatched.addresses()):
                # A second directory object carrying a team member's address: that person is on the team.
                continue
            if directory_id in self._chosen:
                continue  # an admin added them by hand: they chose this person
            if directory_id in self._dismissed:
                plan.dismissed_in_group += 1
                continue
            plan.flagged.append(unmatched)
        return plan


def plan_sync(
    team: Iterable[TeamMember],
    group_members: Iterable[DirectoryUser],
    links: Iterable[IdentityLink],
    policy: SyncPolicy,
    *,
    resolved: Mapping[str, DirectoryUser | None] | None = None,
    owners: Iterable[str] = (),
    dismissed: Iterable[str] = (),
    excluded: Iterable[uuid.UUID] = (),
    chosen: Iterable[str] = (),
) -> SyncPlan:
    """The whole plan in one call, when the group and the lookups are already at hand (tests, small groups)."""
    planner = SyncPlanner(team, links, policy, dismissed, excluded=excluded, chosen=chosen)
    for member in group_members:
        planner.observe(member)
    return planner.finish(resolved or {}, owners)
