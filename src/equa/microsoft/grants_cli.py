"""`equa microsoft grant-group ORG_ID GROUP_ID`, `revoke-group ORG_ID GROUP_ID` and `grants [ORG_ID]`.

The operator at the shell acts for the installation: audit events of these commands carry no actor. Heavy modules
are imported inside the commands so `equa --help` stays instant.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from equa.microsoft.graph import GraphClient
    from equa.settings import Settings

T = TypeVar("T")

OrgArgument = Annotated[uuid.UUID, typer.Argument(help="The organization's id.", metavar="ORG_ID")]
GroupArgument = Annotated[
    uuid.UUID, typer.Argument(help="The Microsoft 365 group's object id.", metavar="GROUP_ID")
]


def _settings(*, graph: bool) -> Settings:
    from equa.cli_support import fail, migrated_or_exit, settings_or_exit

    settings = settings_or_exit()
    if graph and not settings.ms_auth_enabled:
        raise fail(
            "MS_AUTH_ENABLED is not true: granting checks the group with Microsoft Graph, which is off"
        )
    migrated_or_exit(settings)
    return settings


def _run(
    settings: Settings,
    work: Callable[[AsyncSession, GraphClient | None], Awaitable[T]],
    *,
    graph: bool,
) -> T:
    """`work` in one session committed at the end, like a request; AppErrors and Graph errors become one line."""
    import asyncio
    import contextlib

    from equa.cli_support import fail
    from equa.db.engine import create_engine_for, create_session_factory
    from equa.errors import AppError
    from equa.microsoft.graph import GraphError, build_graph_client

    async def main() -> T:
        engine = create_engine_for(settings.resolved_database_url)
        try:
            async with contextlib.AsyncExitStack() as stack:
                client = None
                if graph:
                    client = await stack.enter_async_context(build_graph_client(settings))
                async with create_session_factory(engine)() as session:
                    result = await work(session, client)
                    await session.commit()
                    return result
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except AppError as exc:
        raise fail(exc.message + (f" {exc.action}" if exc.action else "")) from None
    except GraphError as exc:
        raise fail(f"Microsoft Graph: {exc.message}" + (f" {exc.action}" if exc.action else "")) from None


def grant_group_command(organization_id: OrgArgument, group_id: GroupArgument) -> None:
    """Let an organization link and manage an existing group (checked with Graph: it exists and is manageable)."""
    from equa.microsoft.grants import grant_group, graph_of_organization

    settings = _settings(graph=True)

    async def work(session: AsyncSession, graph: GraphClient | None) -> str:
        assert graph is not None
        # Multi-tenant mode: the group is looked up in the organization's connected tenant.
        graph = await graph_of_organization(session, graph, settings, organization_id)
        result = await grant_group(session, graph, organization_id, group_id, None)
        name = result.grant.group_name or "(no name)"
        if not result.created:
            return f"Group {result.grant.group_id} ({name}) was already granted to {organization_id}; nothing changed."
        return f"Granted group {result.grant.group_id} ({name}) to organization {organization_id}."

    typer.echo(_run(settings, work, graph=True))


def revoke_group_command(organization_id: OrgArgument, group_id: GroupArgument) -> None:
    """Take a group back from an organization; unlinks it there if linked (the group stays in Microsoft 365)."""
    from equa.microsoft.grants import revoke_group

    settings = _settings(graph=False)

    async def work(session: AsyncSession, _: GraphClient | None) -> str:
        result = await revoke_group(session, organization_id, group_id, None)
        unlinked = (
            " It was linked and has been unlinked; the group stays in Microsoft 365."
            if result.unlinked
            else ""
        )
        return f"Revoked group {result.group_id} from organization {organization_id}.{unlinked}"

    typer.echo(_run(settings, work, graph=False))


def grants_command(
    organization_id: Annotated[
        uuid.UUID | None, typer.Argument(help="Only this organization's grants.", metavar="[ORG_ID]")
    ] = None,
) -> None:
    """List granted and created groups: organization, group, origin, name, when."""
    from equa.microsoft.grants import linked_without_grant, list_grants

    settings = _settings(graph=False)

    async def work(session: AsyncSession, _: GraphClient | None) -> tuple[list[str], list[str]]:
        rows = await list_grants(session, organization_id)
        granted = [
            "\t".join(
                (
                    str(row.organization_id),
                    row.group_id,
                    row.origin,
                    row.granted_at.strftime("%Y-%m-%d %H:%M"),
                    # Names come from Microsoft: printed as one line of plain text, never interpreted.
                    (row.group_name or "").replace("\t", " ").replace("\n", " "),
                )
            )
            for row in rows
        ]
        ungranted = [f"{org}\t{group}" for org, group in await linked_without_grant(session, organization_id)]
        return granted, ungranted

    lines, ungranted = _run(settings, work, graph=False)
    if not lines:
        typer.echo(
            "No groups are granted." if organization_id is None else "This organization has no grants."
        )
    else:
        typer.echo("organization\tgroup\torigin\tgranted\tname")
        for line in lines:
            typer.echo(line)
    if ungranted:
        # Links made before the group scope existed (or while the service ran tenant-wide): grant those to keep.
        typer.echo("")
        typer.echo("Linked without a grant (out of scope unless MS_GROUP_SCOPE reaches them):")
        typer.echo("organization\tgroup")
        for line in ungranted:
            typer.echo(line)


def register_grant_commands(app: typer.Typer) -> None:
    app.command("grant-group")(grant_group_command)
    app.command("revoke-group")(revoke_group_command)
    app.command("grants")(grants_command)
