"""The exclusions ("Removed by hand") page like the other lists of the API: newest first, a signed-cursor page at a
time (`cursor`, `limit`, `nextCursor`); a cursor it did not give out, or a bad limit, answers 422 and changes nothing.
The settings page shows the first page and "Show more"."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sync_support import directory_user, load_tenant, make_team

from equa.db.base import utcnow
from equa.microsoft.models import MicrosoftExclusion
from equa.organizations.models import Membership, Role
from equa.web.microsoft_intent_pages import EXCLUSIONS_PAGE

pytestmark = pytest.mark.retry_budget("sync")

PEOPLE = 5


def url(org_id: Any, path: str) -> str:
    return f"/api/v1/organizations/{org_id}/microsoft/{path}"


async def team_with_people_removed_by_hand(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> tuple[Any, dict[str, str], list[Any]]:
    """An organization whose sync added PEOPLE team members, every one then removed from the group by hand, in
    order (the last removed is the newest exclusion)."""
    users = [directory_user(i) for i in range(PEOPLE)]
    tenant = load_tenant(emu, users)
    org, admin, team = await make_team(session_factory, [u["mail"] for u in users], group_id=tenant.group_id)
    headers = await bearer(admin)
    run = await client.post(url(org.id, "sync-members?wait=30"), headers=headers)
    assert run.status_code == 200 and run.json()["counts"]["added"] == PEOPLE, run.text
    for person in users:
        removed = await client.delete(url(org.id, f"group/members/{person['id']}"), headers=headers)
        assert removed.status_code == 204, removed.text
    return org, headers, team


async def all_pages(
    client: httpx.AsyncClient, org_id: Any, headers: dict[str, str], limit: int
) -> list[list[str]]:
    """The user ids of every page, following nextCursor to the end (a list that never ends fails, not hangs)."""
    pages: list[list[str]] = []
    params: dict[str, Any] = {"limit": limit}
    for _ in range(PEOPLE + 1):
        response = await client.get(url(org_id, "exclusions"), params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "nextCursor"}
        pages.append([item["userId"] for item in body["items"]])
        if body["nextCursor"] is None:
            return pages
        params = {"cursor": body["nextCursor"]}  # the cursor keeps the page size
    raise AssertionError(f"more pages than people: {pages}")


async def test_exclusions_page_newest_first_and_every_person_is_listed_once(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    org, headers, team = await team_with_people_removed_by_hand(client, emu, session_factory, bearer)

    pages = await all_pages(client, org.id, headers, limit=2)

    assert [len(page) for page in pages] == [2, 2, 1]
    listed = [user_id for page in pages for user_id in page]
    assert listed == [str(person.id) for person in reversed(team)]  # the last removed first
    everyone = await client.get(url(org.id, "exclusions"), headers=headers)
    assert [item["userId"] for item in everyone.json()["items"]] == listed  # the default page holds them all
    assert everyone.json()["nextCursor"] is None


async def test_allowing_someone_again_between_pages_skips_nobody_on_the_next_page(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    org, headers, team = await team_with_people_removed_by_hand(client, emu, session_factory, bearer)
    first = (await client.get(url(org.id, "exclusions"), params={"limit": 2}, headers=headers)).json()
    assert [item["userId"] for item in first["items"]] == [str(team[4].id), str(team[3].id)]

    allowed = await client.delete(url(org.id, f"exclusions/{team[4].id}"), headers=headers)
    assert allowed.status_code == 204, allowed.text
    second = await client.get(
        url(org.id, "exclusions"), params={"cursor": first["nextCursor"]}, headers=headers
    )

    assert second.status_code == 200, second.text
    assert [item["userId"] for item in second.json()["items"]] == [str(team[2].id), str(team[1].id)]


async def test_a_bad_cursor_or_limit_answers_422_and_changes_nothing(
    client: httpx.AsyncClient, emu: Any, session_factory: Any, bearer: Any
) -> None:
    org, headers, _ = await team_with_people_removed_by_hand(client, emu, session_factory, bearer)
    first = (await client.get(url(org.id, "exclusions"), params={"limit": 2}, headers=headers)).json()
    cursor = first["nextCursor"]
    audit_cursor = (await client.get(url(org.id, "audit"), params={"limit": 1}, headers=headers)).json()[
        "nextCursor"
    ]
    assert audit_cursor

    attempts = {
        "not a cursor": {"cursor": "not-a-cursor"},
        "a broken signature": {"cursor": cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")},
        "the audit trail's cursor": {"cursor": audit_cursor},
        "a page of none": {"limit": 0},
        "a page beyond the largest": {"limit": 201},
    }
    for what, params in attempts.items():
        refused = await client.get(url(org.id, "exclusions"), params=params, headers=headers)
        assert refused.status_code == 422, (what, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json"), what
        assert refused.json()["code"] == "validation_failed", what
        field = "cursor" if "cursor" in params else "limit"
        assert refused.json()["errors"][0]["field"] == field, (what, refused.json())

    again = await client.get(url(org.id, "exclusions"), headers=headers)
    assert len(again.json()["items"]) == PEOPLE  # nobody was allowed again by a refused request
    honest = await client.get(url(org.id, "exclusions"), params={"cursor": cursor}, headers=headers)
    assert honest.status_code == 200 and len(honest.json()["items"]) == 2


async def test_the_settings_page_shows_the_first_page_and_show_more_brings_the_rest(
    client: httpx.AsyncClient, session_factory: Any, make_user: Any, sign_in: Any
) -> None:
    people = EXCLUSIONS_PAGE + 2
    org, admin, team = await make_team(
        session_factory, [f"removed-{i:02}@equa.example" for i in range(people)], group_id=str(uuid.uuid4())
    )
    # Removed by hand one after another, a minute apart: the newest (the last) is listed first.
    start = utcnow() - timedelta(hours=1)
    page_admin = await make_user(password="a long passphrase 1")
    async with session_factory() as session:
        session.add(Membership(organization_id=org.id, user_id=page_admin.id, role=Role.ADMIN))
        for i, person in enumerate(team):
            session.add(
                MicrosoftExclusion(
                    organization_id=org.id,
                    user_id=person.id,
                    excluded_by=admin.id,
                    created_at=start + timedelta(minutes=i),
                )
            )
        await session.commit()
    csrf = {"X-CSRF-Token": await sign_in(page_admin, "a long passphrase 1")}
    base = f"/organizations/{org.id}/settings/microsoft"
    first_page, rest = team[2:], team[:2]

    first = await client.get(f"{base}/exclusions")
    assert first.status_code == 200, first.text
    assert all(f'data-user-id="{person.id}"' in first.text for person in first_page)
    assert not any(f'data-user-id="{person.id}"' in first.text for person in rest)
    assert f"Showing {EXCLUSIONS_PAGE} people; more below." in first.text
    more_link = first.text.split('data-action="more-exclusions" hx-get="', 1)[1].split('"', 1)[0]

    more = await client.get(more_link.replace("&amp;", "&"))
    assert more.status_code == 200, more.text
    assert [f'data-user-id="{person.id}"' in more.text for person in team].count(True) == 2
    assert all(f'data-user-id="{person.id}"' in more.text for person in rest)
    assert 'id="ms-exclusions-footer" hx-swap-oob="true"' in more.text
    assert f"Showing {people} people." in more.text and "more-exclusions" not in more.text

    # Allow again from a row of the second page: the whole list comes back from its first page, without them.
    allowed = await client.post(f"{base}/exclusions/{team[0].id}/allow", headers=csrf)
    assert allowed.status_code == 200, allowed.text
    assert "allowed again" in allowed.text and f'data-user-id="{team[0].id}"' not in allowed.text
    assert f"Showing {EXCLUSIONS_PAGE} people; more below." in allowed.text

    stale = await client.get(f"{base}/exclusions", params={"cursor": "not-a-cursor"})
    assert stale.status_code == 200
    assert stale.headers["HX-Retarget"] == "#ms-exclusions" and stale.headers["HX-Reswap"] == "innerHTML"
    assert "is not a cursor this list gave out" in stale.text and 'id="ms-exclusions-list"' in stale.text
