"""Helpers of the browser tests: the world a test drives (app URLs, emulator, data factories, pages) and
screenshots for the README."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.accounts.models import User
from equa.accounts.service import create_user
from equa.db.base import utcnow
from equa.organizations.models import Membership, Organization, Role
from graph_emulator.testing import RunningEmulator

ROOT = Path(__file__).resolve().parents[2]
# A test run writes its screenshots outside the tracked tree; `make screenshots` points this at docs/screenshots.
SCREENSHOTS = Path(os.environ.get("EQUA_SCREENSHOTS_DIR") or ROOT / "test-results" / "screenshots")
PASSWORD = "correct-horse-battery-staple"


@dataclass
class WebWorld:
    """What a browser test needs: where the app runs, the emulator, data factories, and fresh pages."""

    url: str
    url_disabled: str
    url_granted: str  # MS_GROUP_SCOPE=granted (the other enabled server is tenant-wide)
    emulator: RunningEmulator
    sessions: async_sessionmaker[AsyncSession]
    browser: Any
    contexts: list[Any] = field(default_factory=list)

    async def user(self, email: str | None = None, *, password: str | None = PASSWORD) -> User:
        async with self.sessions() as session:
            user = await create_user(
                session, email or f"person-{uuid.uuid4().hex[:8]}@equa.example", None, password
            )
            await session.commit()
            return user

    async def organization(
        self, admin: User, name: str = "Northwind Partners", members: list[User] | tuple[User, ...] = ()
    ) -> Organization:
        async with self.sessions() as session:
            organization = Organization(name=name)
            session.add(organization)
            await session.flush()
            session.add(Membership(organization_id=organization.id, user_id=admin.id, role=Role.ADMIN))
            for member in members:
                session.add(Membership(organization_id=organization.id, user_id=member.id, role=Role.MEMBER))
            await session.commit()
            return organization

    async def link(self, organization_id: uuid.UUID, group_id: str, by: User) -> None:
        """Link a group directly in the database, for tests whose subject comes after linking."""
        async with self.sessions() as session:
            organization = await session.get(Organization, organization_id)
            assert organization is not None
            organization.microsoft_group = uuid.UUID(group_id)
            organization.microsoft_group_linked_by = by.id
            organization.microsoft_group_linked_at = utcnow()
            await session.commit()

    async def reload_organization(self, organization_id: uuid.UUID) -> Organization:
        async with self.sessions() as session:
            found = await session.get(Organization, organization_id)
            assert found is not None
            return found

    async def team_emails(self, organization_id: uuid.UUID) -> set[str]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(User.email_normalized)
                .join(Membership, Membership.user_id == User.id)
                .where(Membership.organization_id == organization_id)
            )
            return set(rows)

    async def invitation_emails(self, organization_id: uuid.UUID) -> set[str]:
        """Addresses with an unused invitation to the organization."""
        from equa.organizations.models import Invitation

        async with self.sessions() as session:
            rows = await session.scalars(
                select(Invitation.email_normalized).where(
                    Invitation.organization_id == organization_id, Invitation.used_at.is_(None)
                )
            )
            return set(rows)

    async def page(self, *, width: int = 1280, height: int = 900) -> Any:
        context = await self.browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(10_000)
        self.contexts.append(context)
        return await context.new_page()

    async def signed_in_page(self, user: User, *, base: str | None = None, width: int = 1280) -> Any:
        page = await self.page(width=width)
        await page.goto(f"{base or self.url}/login")
        await page.get_by_label("Email address").fill(user.email)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url("**/organizations")
        return page


async def screenshot(page: Any, name: str) -> None:
    """Save the Microsoft 365 section as it looks now (in docs/screenshots, for the README, with `make screenshots`)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.locator("#microsoft").screenshot(path=str(SCREENSHOTS / f"{name}.png"), animations="disabled")
