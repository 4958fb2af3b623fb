"""Who may create an organization through the API and the pages: EQUA_ORG_CREATION.

Creating an organization makes its creator an admin, and an admin can ask the Microsoft 365 integration to act. A
deployment that does not want self-service organizations restricts creation to its operators; the CLI
(`equa orgs create`) is an operator's tool and is never restricted.
"""

from __future__ import annotations

from equa.accounts.models import User
from equa.accounts.platform_admins import is_platform_admin
from equa.errors import AppError
from equa.settings import OrgCreation, Settings


def may_create_organization(user: User, settings: Settings) -> bool:
    return settings.org_creation is OrgCreation.ANYONE or is_platform_admin(user, settings)


def ensure_may_create_organization(user: User, settings: Settings) -> None:
    if not may_create_organization(user, settings):
        raise AppError(
            403,
            "organization_creation_restricted",
            "On this Equa installation, organizations are created by its operators.",
            "Ask an operator of this Equa installation to create it for you "
            "(`equa orgs create NAME --admin YOUR_EMAIL`), or to add you to an existing organization.",
        )
