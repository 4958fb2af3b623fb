"""The `equa` command line: serve, migrate, and manage users, organizations and tokens.

Heavy modules (FastAPI, SQLAlchemy, uvicorn) are imported inside commands so `equa --help` answers at once.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from equa.cli_support import fail, migrated_or_exit, run_in_session, settings_or_exit, team_change_note

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from equa.settings import Settings

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

DEMO_DATA_DIR = Path(".equa-demo")


@app.callback()
def main_options(
    context: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Data directory (SQLite database, generated secret key) for every command; default "
            "EQUA_DATA_DIR or .equa. EQUA_DATABASE_URL, when set, still names the database. "
            "The demo's: --data-dir .equa-demo.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Equa's Microsoft 365 integration: serve the API, migrate the database, manage accounts."""
    context.obj = {"data_dir": data_dir}
    if data_dir is not None:
        # Every command reads its settings from the environment; this makes the option one of them.
        os.environ["EQUA_DATA_DIR"] = str(data_dir)


class RoleChoice(StrEnum):
    admin = "admin"
    member = "member"


@app.command()
def demo(
    context: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the demo keeps its database and the emulator's certificates "
            "(default: the global --data-dir, else .equa-demo)."
        ),
    ] = None,
    multi_tenant: Annotated[
        bool,
        typer.Option(
            "--multi-tenant",
            help="Multi-tenant mode: two tenants and two organizations, one connected and one to connect "
            "through the admin consent page.",
        ),
    ] = False,
) -> None:
    """Try everything offline: a Microsoft 365 emulator, a seeded tenant and organization, and the app."""
    try:
        from equa.demo import run_demo
        from equa.demo_multi_tenant import run_multi_tenant_demo
    except ImportError:
        raise fail("the demo needs the emulator package (graph_emulator), installed with equa") from None
    directory = data_dir or (context.obj or {}).get("data_dir") or DEMO_DATA_DIR
    if multi_tenant:
        run_multi_tenant_demo(host, port, directory)
        return
    run_demo(host, port, directory)


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
    from alembic.util.exc import CommandError

    from equa.db.migrate import upgrade_database

    try:
        upgrade_database(settings.resolved_database_url, revision)
    except CommandError as exc:  # e.g. a revision this version does not know: the database is newer
        raise fail(f"{exc} (see docs/operations.md, Upgrades and rollback)") from None
    typer.echo(f"Database is at revision {revision}.")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[
        str | None,
        typer.Argument(help="Target revision (e.g. 0002, or base); default: the previous revision."),
    ] = None,
) -> None:
    """Undo migrations: the rollback after an upgrade (stop the new version first; see docs/operations.md)."""
    settings = settings_or_exit()
    from alembic.util.exc import CommandError

    from equa.db.migrate import MigrationRefused, downgrade_database

    try:
        reached = downgrade_database(settings.resolved_database_url, revision)
    except MigrationRefused as exc:
        raise fail(str(exc)) from None
    except CommandError as exc:  # an unknown target revision
        raise fail(f"{exc} (see docs/operations.md, Upgrades and rollback)") from None
    typer.echo(f"Database is at revision {reached}.")


@db_app.command("backup")
def db_backup(
    path: Annotated[Path, typer.Argument(help="The backup file to write (must not exist).")],
) -> None:
    """Write a consistent backup while the service runs: SQLite online backup, or pg_dump for PostgreSQL."""
    settings = settings_or_exit()
    from equa.db.backup import BackupError, backup_database

    try:
        typer.echo(backup_database(settings.resolved_database_url, path))
    except BackupError as exc:
        raise fail(str(exc)) from None
    typer.echo("Keep EQUA_SECRET_KEY and the Microsoft credential with it (they are not in the database).")


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
    """Set a user's password (a forgotten password, or a member added without one) and lift their sign-in block;
    their sessions stay."""
    settings = settings_or_exit()
    from equa.accounts.models import User
    from equa.accounts.service import set_password

    if len(password) < 10:
        raise fail("password: use at least 10 characters")

    async def work(session: AsyncSession) -> str:
        user = await _user_by_email_or_fail(session, email)
        assert isinstance(user, User)
        await set_password(session, user, password)
        return user.email

    address = run_in_session(settings, work)
    typer.echo(f"{address}: password set")
    # After the commit: the new password is in place before the block is gone.
    typer.echo(_lift_sign_in_block(settings, address))


@users_app.command("unblock")
def users_unblock(email: str) -> None:
    """Lift a user's sign-in block after failed sign-ins; their password stays, guessers' addresses stay throttled."""
    settings = settings_or_exit()
    from equa.accounts.models import User

    async def work(session: AsyncSession) -> str:
        user = await _user_by_email_or_fail(session, email)
        assert isinstance(user, User)
        return user.email

    typer.echo(_lift_sign_in_block(settings, run_in_session(settings, work)))


def _lift_sign_in_block(settings: Settings, address: str) -> str:
    import asyncio

    from equa.accounts.unblock import lift_sign_in_block, lifted_block_report

    return lifted_block_report(address, asyncio.run(lift_sign_in_block(settings, address)))


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
    """Add a team member by address (an unknown address becomes an invited user); a linked group gets them at the
    next sync cycle."""
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
        added = f"{membership.user.email} is now {membership.role.value} of {organization.name}"
        note = team_change_note(settings, organization)
        return added if note is None else f"{added}\n{note}"

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
    if settings.api_token_max_age_days is not None:
        typer.echo(
            f"It expires in {settings.api_token_max_age_days} day(s) (EQUA_API_TOKEN_MAX_AGE_DAYS).", err=True
        )


@tokens_app.command("list")
def tokens_list(email: str) -> None:
    """List a user's API tokens: id, name, prefix, created, last used, expiry and state (never the token)."""
    settings = settings_or_exit()
    from equa.accounts.models import User
    from equa.accounts.tokens import list_api_tokens, token_expires_at
    from equa.db.base import utcnow

    def when(value: object) -> str:
        return "-" if value is None else f"{value:%Y-%m-%d %H:%M}Z"

    async def work(session: AsyncSession) -> list[list[str]]:
        user = await _user_by_email_or_fail(session, email)
        assert isinstance(user, User)
        now = utcnow()
        rows = []
        for token in await list_api_tokens(session, user):
            expires = token_expires_at(token, settings.api_token_max_age)
            state = "revoked" if token.revoked_at else "expired" if expires and expires <= now else "active"
            rows.append(
                [
                    str(token.id),
                    token.name,
                    token.prefix + "…",
                    when(token.created_at),
                    when(token.last_used_at),
                    "never" if expires is None else when(expires),
                    state,
                ]
            )
        return rows

    rows = run_in_session(settings, work)
    if not rows:
        typer.echo(f"{email} has no API tokens.")
        return
    table = [["ID", "NAME", "PREFIX", "CREATED", "LAST USED", "EXPIRES", "STATE"], *rows]
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    for row in table:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(metavar="TOKEN_ID", help="The id shown by `equa tokens list`.")],
) -> None:
    """Revoke an API token of any user at once (running API processes refuse it within the read cache's life)."""
    settings = settings_or_exit()
    import uuid

    from equa.accounts.tokens import revoke_api_token_by_id

    try:
        parsed = uuid.UUID(token_id)
    except ValueError:
        raise fail("TOKEN_ID: not a token id (a UUID, as `equa tokens list EMAIL` shows)") from None

    async def work(session: AsyncSession) -> str:
        token, revoked_now = await revoke_api_token_by_id(session, parsed)
        await session.refresh(token, ["user"])
        label = f"API token {token.prefix}… ({token.name}) of {token.user.email}"
        return f"{label} revoked" if revoked_now else f"{label} was already revoked"

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
