"""Organization services used by the API, the web pages and sync."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.accounts.models import User
from equa.organizations.models import Organization, Role
from equa.organizations.service import add_member, list_members, team_emails


async def test_team_emails_are_normalized_and_skip_inactive_users(
    make_user: Callable[..., Awaitable[User]],
    make_org: Callable[..., Awaitable[Organization]],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    admin = await make_user("Boss@Example.com")
    gone = await make_user("gone@example.com")
    org = await make_org(admin, members=[gone])
    async with session_factory() as session:
        stored_gone = await session.get(User, gone.id)
        assert stored_gone is not None
        stored_gone.is_active = False
        organization = await session.get(Organization, org.id)
        assert organization is not None
        await add_member(session, organization, "Zed@Example.org", Role.MEMBER)
        await session.commit()

        assert await team_emails(session, organization) == ["boss@example.com", "zed@example.org"]
        members = await list_members(session, organization)
        assert [m.user.email for m in members] == ["Boss@Example.com", "gone@example.com", "Zed@Example.org"]
