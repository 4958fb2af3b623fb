"""plan.py: unit tests of each rule and property tests (apply then re-plan is empty; nothing outside the rules
is removed; flagged and team never overlap)."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from equa.microsoft.sync.plan import (
    DirectoryUser,
    IdentityLink,
    SyncPlan,
    SyncPolicy,
    TeamMember,
    plan_sync,
)


def uid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n + 1)


def did(n: int) -> str:
    return str(uuid.UUID(int=10_000 + n))


def person(n: int) -> DirectoryUser:
    return DirectoryUser(did(n), f"p{n}@contoso.example", f"p{n}@contoso.example", f"P {n}")


def member(n: int) -> TeamMember:
    return TeamMember(uid(n), f"p{n}@contoso.example", f"P {n}")


def test_team_member_in_the_directory_and_not_in_the_group_is_added() -> None:
    plan = plan_sync([member(1)], [], [], SyncPolicy(), resolved={"p1@contoso.example": person(1)})
    assert [(a.email, a.directory_id) for a in plan.adds] == [("p1@contoso.example", did(1))]
    assert plan.links[0].directory_id == did(1)


def test_group_member_matching_by_address_needs_no_lookup_and_any_case_matches() -> None:
    shouting = DirectoryUser(did(1), "P1@Contoso.Example", None, "P 1")
    team = [member(1), member(2)]
    from equa.microsoft.sync.plan import SyncPlanner

    planner = SyncPlanner(team, [], SyncPolicy())
    planner.observe(shouting)
    assert planner.addresses_to_resolve() == ["p2@contoso.example"]
    plan = planner.finish({})
    assert [m.email for m in plan.already_members] == ["p1@contoso.example"]
    assert [m.email for m in plan.not_in_tenant] == ["p2@contoso.example"]


def test_a_valid_link_skips_the_lookup_and_a_changed_address_is_looked_up_again() -> None:
    from equa.microsoft.sync.plan import SyncPlanner

    links = [
        IdentityLink(uid(1), did(1), "p1@contoso.example", "mail"),
        IdentityLink(uid(2), did(2), "old@contoso.example", "mail"),
    ]
    planner = SyncPlanner([member(1), member(2)], links, SyncPolicy())
    assert planner.addresses_to_resolve() == ["p2@contoso.example"]


def test_strangers_are_flagged_unless_dismissed_and_non_users_are_ignored() -> None:
    nested_group = DirectoryUser(did(50), "team@contoso.example", None, "Team", is_user=False)
    plan = plan_sync(
        [member(1)],
        [person(1), person(2), person(3), nested_group],
        [],
        SyncPolicy(),
        dismissed=[did(3)],
    )
    assert [f.id for f in plan.flagged] == [did(2)]
    assert plan.dismissed_in_group == 1


def test_removal_needs_the_setting_an_added_by_sync_link_a_departure_and_no_ownership() -> None:
    links = [
        IdentityLink(uid(5), did(5), "p5@contoso.example", "mail", added_by_sync=True),
        IdentityLink(uid(6), did(6), "p6@contoso.example", "mail", added_by_sync=False),
        IdentityLink(uid(7), did(7), "p7@contoso.example", "mail", added_by_sync=True),
    ]
    group = [person(5), person(6), person(7)]
    off = plan_sync([], group, links, SyncPolicy(remove_departed=False))
    assert off.removals == []
    assert {f.id for f in off.flagged} == {did(5), did(6), did(7)}
    on = plan_sync([], group, links, SyncPolicy(remove_departed=True), owners=[did(7)])
    assert [r.directory_id for r in on.removals] == [did(5)]
    assert {f.id for f in on.flagged} == {did(6), did(7)}


def test_someone_on_the_team_is_never_removed_even_with_a_departed_link_to_the_same_id() -> None:
    links = [IdentityLink(uid(5), did(1), "p5@contoso.example", "mail", added_by_sync=True)]
    plan = plan_sync([member(1)], [person(1)], links, SyncPolicy(remove_departed=True))
    assert plan.removals == []
    assert [m.directory_id for m in plan.already_members] == [did(1)]


# --- properties ------------------------------------------------------------------------------------------

people = st.integers(min_value=0, max_value=30)


@st.composite
def situations(draw: st.DrawFn) -> dict:  # type: ignore[type-arg]
    team = sorted(draw(st.sets(people, max_size=15)))
    in_tenant = draw(st.sets(people, max_size=25))
    group = sorted(draw(st.sets(people, max_size=15)) & in_tenant)
    linked = draw(st.sets(people, max_size=15))
    added_by_sync = draw(st.sets(people, max_size=15))
    owners = sorted(draw(st.sets(people, max_size=5)))
    dismissed = sorted(draw(st.sets(people, max_size=5)))
    remove_departed = draw(st.booleans())
    links = [
        IdentityLink(uid(n), did(n), f"p{n}@contoso.example", "mail", n in added_by_sync)
        for n in sorted(linked & in_tenant)
    ]
    return {
        "team": [member(n) for n in team],
        "group": [person(n) for n in group],
        "links": links,
        "resolved": {f"p{n}@contoso.example": person(n) for n in in_tenant},
        "owners": [did(n) for n in owners],
        "dismissed": [did(n) for n in dismissed],
        "policy": SyncPolicy(remove_departed=remove_departed),
    }


def plan_of(s: dict, group: list[DirectoryUser], links: list[IdentityLink]) -> SyncPlan:  # type: ignore[type-arg]
    return plan_sync(
        s["team"],
        group,
        links,
        s["policy"],
        resolved=s["resolved"],
        owners=s["owners"],
        dismissed=s["dismissed"],
    )


def applied(plan: SyncPlan, group: list[DirectoryUser], links: list[IdentityLink], resolved: dict) -> tuple:  # type: ignore[type-arg]
    by_id = {u.id: u for u in resolved.values()}
    ids = {u.id for u in group} | {a.directory_id for a in plan.adds}
    ids -= {r.directory_id for r in plan.removals}
    new_links = {link.user_id: link for link in links}
    for link in plan.links:
        new_links[link.user_id] = link
    for add in plan.adds:
        old = new_links[add.user_id]
        new_links[add.user_id] = IdentityLink(
            old.user_id, old.directory_id, old.matched_email, old.matched_by, True
        )
    for user_id in plan.forget_links:
        new_links.pop(user_id, None)
    return [by_id[i] for i in sorted(ids)], list(new_links.values())


@settings(max_examples=300, deadline=None)
@given(situations())
def test_applying_a_plan_then_planning_again_changes_nothing(s: dict) -> None:  # type: ignore[type-arg]
    plan = plan_of(s, s["group"], s["links"])
    group, links = applied(plan, s["group"], s["links"], s["resolved"])
    again = plan_of(s, group, links)
    assert again.adds == [] and again.removals == []
    assert {f.id for f in again.flagged} == {f.id for f in plan.flagged}


@settings(max_examples=300, deadline=None)
@given(situations())
def test_nothing_outside_the_rules_is_ever_removed(s: dict) -> None:  # type: ignore[type-arg]
    plan = plan_of(s, s["group"], s["links"])
    team_ids = {m.user_id for m in s["team"]}
    links = {link.directory_id: link for link in s["links"]}
    group_ids = {u.id for u in s["group"]}
    for removal in plan.removals:
        assert s["policy"].remove_departed
        link = links[removal.directory_id]
        assert link.added_by_sync and link.user_id not in team_ids
        assert removal.directory_id in group_ids
        assert removal.directory_id not in s["owners"]
        assert removal.directory_id not in {m.directory_id for m in plan.already_members + plan.adds}


@settings(max_examples=300, deadline=None)
@given(situations())
def test_flagged_members_and_the_team_never_overlap(s: dict) -> None:  # type: ignore[type-arg]
    plan = plan_of(s, s["group"], s["links"])
    team_emails = {m.email for m in s["team"]}
    team_ids = {m.directory_id for m in plan.already_members + plan.adds}
    for flagged in plan.flagged:
        assert flagged.id not in team_ids
        assert not set(flagged.addresses()) & team_emails
        assert flagged.id not in s["dismissed"]


def test_an_excluded_member_is_not_added_nor_looked_up_but_stays_when_already_in_the_group() -> None:
    from equa.microsoft.sync.plan import SyncPlanner

    planner = SyncPlanner([member(1), member(2)], [], SyncPolicy(), excluded=[uid(1), uid(2)])
    planner.observe(person(2))
    assert planner.addresses_to_resolve() == []
    plan = planner.finish({})
    assert [m.email for m in plan.excluded] == ["p1@contoso.example"]
    assert plan.adds == [] and [m.email for m in plan.already_members] == ["p2@contoso.example"]
    assert plan.counts()["excluded"] == 1


def test_an_explicit_link_holds_whatever_the_address_and_people_added_by_hand_are_not_flagged() -> None:
    link = IdentityLink(uid(1), did(7), "old@equa.example", "explicit")
    plan = plan_sync([member(1)], [person(7), person(8)], [link], SyncPolicy(), chosen=[did(8)])
    assert [(m.email, m.directory_id) for m in plan.already_members] == [("p1@contoso.example", did(7))]
    assert plan.flagged == [] and plan.not_in_tenant == []
    assert [(x.directory_id, x.matched_by) for x in plan.links] == [(did(7), "explicit")]


def test_adds_and_removals_are_named_as_microsoft_365_names_them() -> None:
    departed = IdentityLink(uid(9), did(9), "p9@contoso.example", "mail", added_by_sync=True)
    plan = plan_sync(
        [TeamMember(uid(1), "p1@contoso.example", "p1")],
        [person(9)],
        [departed],
        SyncPolicy(remove_departed=True),
        resolved={"p1@contoso.example": person(1)},
    )
    assert [a.display_name for a in plan.adds] == ["P 1"]
    assert [r.display_name for r in plan.removals] == ["P 9"]
