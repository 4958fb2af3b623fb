"""User look-up, creation and password authentication."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from equa.accounts.models import User, normalize_email
from equa.accounts.passwords import hash_password, needs_rehash, verify_password
from equa.db.session import release_connection
from equa.errors import AppError


def email_taken(email: str) -> AppError:
    return AppError(
        409,
        "email_taken",
        f"email: a user with the address {email} already exists.",
        "Use another address, or sign in with this one.",
        extra={"errors": [{"field": "email", "message": "already exists"}]},
    )


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email_normalized == normalize_email(email)))


def display_name_from_email(email: str) -> str:
    return email.split("@", 1)[0]


async def create_user(
    session: AsyncSession,
    email: str,
    display_name: str | None = None,
    password: str | None = None,
    *,
    is_platform_admin: bool = False,
) -> User:
    """Create a user; without a password the user is an invited member who cannot sign in with one yet."""
    email = email.strip()
    if await get_user_by_email(session, email) is not None:
        raise email_taken(email)
    password_hash = await hash_password(password) if password else None
    user = User(
        email=email,
        email_normalized=normalize_email(email),
        display_name=(display_name or "").strip() or display_name_from_email(email),
        password_hash=password_hash,
        is_platform_admin=is_platform_admin,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        # A concurrent request created the same address first; the caller's transaction is rolled back.
        raise email_taken(email) from exc
    return user


async def set_password(session: AsyncSession, user: User, password: str) -> None:
    user.password_hash = await hash_password(password)
    await session.flush()


async def authenticate(session: AsyncSession, email: str, password: str) -> User | None:
    """The active user with this email and password, or None (the same answer for every kind of failure)."""
    user = await get_user_by_email(session, email)
    # The check can queue behind other hashes for a while: give the connection back meanwhile, or a sign-in flood
    # holds the whole pool and every other request waits for a connection.
    await release_connection(session)
    if not await verify_password(user.password_hash if user else None, password):
        return None
    assert user is not None  # verify_password is only true for an existing hash
    if not user.is_active:
        return None
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = await hash_password(password)
    return user
