"""`equa microsoft ...` commands; heavy imports happen inside the commands so `equa --help` stays fast."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from equa.microsoft.grants_cli import register_grant_commands
from equa.microsoft.tenants.cli import register_tenant_commands

microsoft_app = typer.Typer(
    help="Microsoft 365 connection (check credentials, consent and Graph access) and the groups granted to organizations.",
    no_args_is_help=True,
)


@microsoft_app.callback()
def microsoft() -> None:
    """Microsoft 365 connection: check credentials, consent and Graph access."""


@microsoft_app.command("check")
def check(
    org: Annotated[
        uuid.UUID | None,
        typer.Option(
            "--org",
            metavar="ORG_ID",
            help="Check this organization's tenant (multi-tenant mode: the tenant it connected).",
        ),
    ] = None,
) -> None:
    """Sign in to Microsoft, read one page of groups, and print what works and what to fix."""
    import asyncio

    from rich.console import Console

    from equa.cli_support import fail, settings_or_exit
    from equa.microsoft.graph.diagnose import diagnose
    from equa.microsoft.tenants.cli import organization_tenant

    # A half-configured setup (MS_AUTH_ENABLED=true, a variable missing) is one line and exit status 2, as `serve`.
    settings = settings_or_exit()
    if org is None and settings.multi_tenant:
        raise fail(
            "Multi-tenant mode has no tenant of its own: give --org ORG_ID to check that organization's tenant "
            "(`equa microsoft connections` lists them)."
        )
    tenant = organization_tenant(settings, org) if org is not None else None
    console = Console()
    diagnosis = asyncio.run(diagnose(settings, tenant_id=tenant))
    for item in diagnosis.checks:
        mark = "[green]ok[/green]    " if item.ok else "[red]FAILED[/red]"
        console.print(f"{mark} {item.name}: {item.detail}", highlight=False, markup=True, soft_wrap=True)
        if item.action and not item.ok:
            console.print(f"       fix: {item.action}", highlight=False, markup=False, soft_wrap=True)
    if not diagnosis.ok:
        raise typer.Exit(code=1)
    console.print("The Microsoft 365 connection works.")


register_grant_commands(microsoft_app)
register_tenant_commands(microsoft_app)
