"""Helpers every `equa` command shares: one-line errors, settings, the migration check, a session per command.

Kept apart from equa.cli so command modules elsewhere (equa.microsoft.cli, equa.microsoft.sync.cli) use them
without importing the command line that registers them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from equa.organizations.models import Organization
    from equa.settings import Settings

T = TypeVar("T")


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def settings_or_exit() -> Settings:
    """The process settings, or exit status 2 with one line naming the variable to fix."""
    from equa.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        raise fail(str(exc), code=2) from None


def migrated_or_exit(settings: Settings) -> None:
    from equa.db.migrate import check_migrated

    problem = check_migrated(settings.resolved_database_url)
    if problem is not None:
        raise fail(f"{problem} {where_the_database_is(settings)}")


def where_the_database_is(settings: Settings) -> str:
    """A hint naming the database a command used, and how to point it at another one."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.resolved_database_url)
    if settings.database_url:
        shown = url.render_as_string(hide_password=True)
        return f"(database: {shown}, from EQUA_DATABASE_URL)"
    return (
        f"(database: {url.database}; choose another with `equa --data-dir DIR ...` or EQUA_DATABASE_URL; "
        "the demo's is `equa --data-dir .equa-demo ...`)"
    )


def run_in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one session committed at the end, like a request; AppErrors become one-line errors."""
    import asyncio

    from equa.db.engine import create_engine_for_settings, create_session_factory
    from equa.errors import AppError

    async def main() -> T:
        engine = create_engine_for_settings(settings)
        try:
            session_factory = create_session_factory(engine)
            stop_recording = record_team_changes(settings, session_factory)
            try:
                async with session_factory() as session:
                    result = await work(session)
                    await session.commit()
                    return result
            finally:
                stop_recording()
        finally:
            await engine.dispose()

    migrated_or_exit(settings)
    try:
        return asyncio.run(main())
    except AppError as exc:
        raise fail(exc.message) from None


def record_team_changes(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> Callable[[], None]:
    """With the integration on, the team changes a command makes (members added or removed, a user deactivated or
    re-addressed) are written to the outbox in the command's own transaction, as the API process writes them; the
    scheduler's next fleet cycle carries them to the linked groups. Returns the function that stops recording.

    A command never pushes to Graph itself: it ends before a push would finish, and the runs that change a group
    belong to the scheduler and the workers."""
    if not settings.ms_auth_enabled:
        # Nothing would carry the rows: the fleet cycle runs only with the integration on.
        return lambda: None
    from equa.microsoft.fleet.outbox import install_outbox_hook

    return install_outbox_hook(session_factory)


def team_change_note(settings: Settings, organization: Organization) -> str | None:
    """What a team change made at the shell means for the organization's linked group, or None with no group."""
    if not settings.ms_auth_enabled or organization.microsoft_group is None:
        return None
    if organization.microsoft_auto_sync:
        return "The linked Microsoft 365 group gets the change at the scheduler's next sync cycle."
    return (
        "Automatic sync is off for this organization: the linked Microsoft 365 group gets the change at its next "
        f"sync (`equa sync {organization.id}`)."
    )
