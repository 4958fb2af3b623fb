"""The `equa` command line: serve, migrate, and manage users, organizations and tokens.

Heavy modules (FastAPI, SQLAlchemy, uvicorn) are imported inside commands so `equa --help` answers at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from equa.settings import Settings

T = TypeVar("T")

app = typer.Typer(
    help="Equa's Microsoft 365 integration: serve the API, migrate the database, manage accounts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="Equa user accounts.", no_args_is_help=True)
orgs_app = typer.Typer(help="Organizations and their team members.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(orgs_app, name="orgs")
app.add_typer(tokens_app, name="tokens")

try:
    from equa.microsoft.cli import microsoft_app
except ImportError:  # the Microsoft commands are optional until their package is present
    pass
else:
    app.add_typer(microsoft_app, name="microsoft")

from equa.microsoft.sync.cli import register_sync_commands  # noqa: E402

register_sync_commands(app)


class RoleChoice(StrEnum):
    admin = "admin"
    member = "member"


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def settings_or_exit() -> Settings:
    from equa.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        raise fail(str(exc), code=2) from None


def migrated_or_exit(settings: Settings) -> None:
    from equa.db.migrate import check_migrated

    problem = check_migrated(settings.resolved_database_url)
    if problem is not None:
        raise fail(problem)


def run_in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one session committed at the end, like a request; AppErrors become one-line errors."""
    import asyncio

    from equa.db.engine import create_engine_for, create_session_factory
    from equa.errors import AppError

    async def main() -> T:
        engine = create_engine_for(settings.resolved_database_url)
        try:
            async with create_session_factory(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    migrated_or_exit(settings)
    try:
        return asyncio.run(main())
    except AppError as exc:
        raise fail(exc.message) from None


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    data_dir: Annotated[
        Path, typer.Option(help="Where the demo keeps its database and the emulator's certificates.")
    ] = Path(".equa-demo"),
) -> None:
    """Try everything offline: a Microsoft 365 emulator, a seeded tenant and organization, and the app."""
    try:
        from equa.demo import run_demo
    except ImportError:
        raise fail("the demo needs the emulator package (graph_emulator), installed with equa") from None
    run_demo(host, port, data_dir)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Serve the web app and API (refuses a database that `equa db upgrade` has not migrated)."""
    settings = settings_or_exit()
    migrated_or_exit(settings)

    import uvicorn

    from equa.app import create_app
    from equa.logging_setup import configure_logging

    configure_logging(settings)
    # log_config=None keeps the redacting handler configured above instead of uvicorn's own.
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Option(help="Target revision.")] = "head") -> None:
    """Create or update the database schema."""
    settings = settings_or_exit()
    from equa.db.migrate import upgrade_database

    upgrade_database(settings.resolved_database_url, revision)
    typer.echo(f"Database is at revision {revision}.")


@users_app.command("create")
def users_create(
    email: str,
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    password: Annotated[
        str | None, typer.Option(help="Password for signing in; without it the user is invited only.")
    ] = None,
    platform_admin: Annotated[bool, typer.Option(help="Operator of this Equa installation.")] = False,
) -> None:
    """Create a user and print their id."""
    settings = settings_or_exit()
    from email_validator import EmailNotValidError, validate_email

    from equa.accounts.service import create_user

    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        raise fail(f"email: {exc}") from None

    async def work(session: AsyncSession) -> str:
        user = await create_user(session, email, name, password, is_platform_admin=platform_admin)
        return str(user.id)

    typer.echo(run_in_session(settings, work))


async def _user_by_email_or_fail(session: AsyncSession, email: str) -> object:
    from equa.accounts.service import get_user_by_email
    from equa.errors import AppError

    user = await get_user_by_email(session, email)
    if user is None:
        raise AppError(
            404, "user_not_found", f"No user has the address {email}; create it with `equa users create`."
        )
    return user


@users_app.command("set-password")
def users_set_password(
    email: str,
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, help="The new password (asked for)."
        ),
    ],
) -> None:
    """Set a user's password (a forgotten password, or a member added without one); their sessions stay."""
    settings = settings_or_exit()
    from equa.accounts.models import User
    from equa.accounts.service import set_password

    if len(password) < 10:
        raise fail("password: use at least 10 characters")

    async def work(session: AsyncSession) -> str:
        user = await _user_by_email_or_fail(session, email)
        assert isinstance(user, User)
        await set_password(session, user, password)
        return f"{user.email}: password set"

    typer.echo(run_in_session(settings, work))


@users_app.command("invite-link")
def users_invite_link(email: str) -> None:
    """Make a new invitation link for each organization this address was invited to (the old links stop working)."""
    settings = settings_or_exit()
    from equa.organizations.invitations import new_links_for

    async def work(session: AsyncSession) -> str:
        issued = await new_links_for(session, email)
        if not issued:
            from equa.errors import AppError

            raise AppError(
                404,
                "invitation_not_found",
                f"No organization has invited {email}; an organization admin invites them from the team settings.",
            )
        return "\n".join(f"{org.name}: {settings.public_link(i.path)}" for org, i in issued)

    typer.echo(run_in_session(settings, work))
    if not settings.public_url:
        typer.echo("Set EQUA_PUBLIC_URL to print full links; prefix these paths with the service's address.")


@users_app.command("sign-out")
def users_sign_out(
    email: str,
    tokens: Annotated[bool, typer.Option(help="Also revoke every API token of the user.")] = False,
) -> None:
    """End every browser session of a user at once (and with --tokens their API tokens): a lost laptop, a leaver."""
    settings = settings_or_exit()
    from equa.accounts.models import User
    from equa.accounts.sessions import end_all_sessions
    from equa.accounts.tokens import revoke_all_api_tokens

    async def work(session: AsyncSession) -> str:
        user = await _user_by_email_or_fail(session, email)
        assert isinstance(user, User)
        ended = await end_all_sessions(session, user)
        revoked = await revoke_all_api_tokens(session, user) if tokens else None
        summary = f"{user.email}: {ended} browser session(s) ended"
        return summary + (f", {revoked} API token(s) revoked" if revoked is not None else "")

    typer.echo(run_in_session(settings, work))
    if settings.effective_read_cache_seconds:
        typer.echo(f"Running API processes refuse them within {settings.effective_read_cache_seconds:g} s.")


@orgs_app.command("create")
def orgs_create(
    name: str,
    admin: Annotated[str, typer.Option("--admin", help="Email of the existing user who becomes its admin.")],
) -> None:
    """Create an organization and print its id."""
    settings = settings_or_exit()
    from equa.accounts.models import User
    from equa.organizations.models import ORGANIZATION_NAME_MAX_LENGTH
    from equa.organizations.service import create_organization

    name = name.strip()
    if not 1 <= len(name) <= ORGANIZATION_NAME_MAX_LENGTH:
        raise fail(f"name: must be 1 to {ORGANIZATION_NAME_MAX_LENGTH} characters")

    async def work(session: AsyncSession) -> str:
        user = await _user_by_email_or_fail(session, admin)
        assert isinstance(user, User)
        return str((await create_organization(session, name, user)).id)

    typer.echo(run_in_session(settings, work))


@orgs_app.command("add-member")
def orgs_add_member(
    org_id: str,
    email: str,
    role: Annotated[RoleChoice, typer.Option(help="Role in the organization.")] = RoleChoice.member,
) -> None:
    """Add a team member by address (an unknown address becomes an invited user)."""
    settings = settings_or_exit()
    import uuid

    from email_validator import EmailNotValidError, validate_email

    from equa.errors import not_found
    from equa.organizations.models import Organization, Role
    from equa.organizations.service import add_member

    try:
        organization_id = uuid.UUID(org_id)
    except ValueError:
        raise fail("ORG_ID: not a valid organization id (a UUID)") from None
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        raise fail(f"email: {exc}") from None

    async def work(session: AsyncSession) -> str:
        organization = await session.get(Organization, organization_id)
        if organization is None:
            raise not_found("organization")
        membership = await add_member(session, organization, email, Role(role.value))
        return f"{membership.user.email} is now {membership.role.value} of {organization.name}"

    typer.echo(run_in_session(settings, work))


@tokens_app.command("create")
def tokens_create(
    email: str, name: Annotated[str, typer.Option(help="A label to recognise the token by.")] = "cli"
) -> None:
    """Create an API token for a user and print it (it cannot be shown again)."""
    settings = settings_or_exit()
    from equa.accounts.models import User
    from equa.accounts.tokens import create_api_token

    async def work(session: AsyncSession) -> str:
        user = await _user_by_email_or_fail(session, email)
        assert isinstance(user, User)
        _, token = await create_api_token(session, user, name)
        return token

    typer.echo(run_in_session(settings, work))


@app.command(
    "emulator",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def emulator(context: typer.Context) -> None:
    """Run the offline Microsoft 365 emulator (arguments go to it; `equa emulator --help`)."""
    try:
        from graph_emulator.cli import main as emulator_main
    except ImportError:
        raise fail("the emulator is not installed with this copy of equa") from None
    result = emulator_main(list(context.args))
    raise typer.Exit(int(result or 0))


def main() -> None:
    app(prog_name="equa")


if __name__ == "__main__":
    main()
