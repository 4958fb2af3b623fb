"""`equa microsoft ...` commands; heavy imports happen inside the commands so `equa --help` stays fast."""

from __future__ import annotations

import typer

from equa.microsoft.grants_cli import register_grant_commands

microsoft_app = typer.Typer(
    help="Microsoft 365 connection (check credentials, consent and Graph access) and the groups granted to organizations.",
    no_args_is_help=True,
)


@microsoft_app.callback()
def microsoft() -> None:
    """Microsoft 365 connection: check credentials, consent and Graph access."""


@microsoft_app.command("check")
def check() -> None:
    """Sign in to Microsoft, read one page of groups, and print what works and what to fix."""
    import asyncio

    from rich.console import Console

    from equa.cli_support import settings_or_exit
    from equa.microsoft.graph.diagnose import diagnose

    # A half-configured setup (MS_AUTH_ENABLED=true, a variable missing) is one line and exit status 2, as `serve`.
    settings = settings_or_exit()
    console = Console()
    diagnosis = asyncio.run(diagnose(settings))
    for item in diagnosis.checks:
        mark = "[green]ok[/green]    " if item.ok else "[red]FAILED[/red]"
        console.print(f"{mark} {item.name}: {item.detail}", highlight=False, markup=True, soft_wrap=True)
        if item.action and not item.ok:
            console.print(f"       fix: {item.action}", highlight=False, markup=False, soft_wrap=True)
    if not diagnosis.ok:
        raise typer.Exit(code=1)
    console.print("The Microsoft 365 connection works.")


register_grant_commands(microsoft_app)
