"""Who operates this Equa installation: users created with --platform-admin, or listed in EQUA_PLATFORM_ADMINS."""

from __future__ import annotations

from equa.accounts.models import User, normalize_email
from equa.errors import AppError
from equa.settings import Settings


def is_platform_admin(user: User, settings: Settings) -> bool:
    """The stored flag or the setting: the setting lets operators name themselves without touching the database."""
    return user.is_platform_admin or normalize_email(user.email) in settings.platform_admin_emails


def platform_admin_required(
    message: str = "Only an operator of this Equa installation can do this.",
) -> AppError:
    return AppError(
        403,
        "platform_admin_required",
        message,
        "Ask an operator of this Equa installation (a platform admin: listed in EQUA_PLATFORM_ADMINS, "
        "or created with `equa users create --platform-admin`).",
    )
