"""`equa sync ORG_ID [--dry-run]`, `equa worker` and `equa scheduler`.

Heavy modules are imported inside the commands so `equa --help` stays instant.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Awaitable, Callable

    from equa.microsoft.models import SyncRun
    from equa.settings import Settings

ROWS_SHOWN = 50


def _settings_for_jobs() -> Settings:
    from equa.cli_support import fail, migrated_or_exit, settings_or_exit
    from equa.logging_setup import configure_logging

    settings = settings_or_exit()
    configure_logging(settings)
    if not settings.ms_auth_enabled:
        raise fail(
            "MS_AUTH_ENABLED is not true: the Microsoft 365 integration is off, there is nothing to sync"
        )
    migrated_or_exit(settings)
    return settings


def _run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)` and set `stop` on SIGINT/SIGTERM, so work in flight finishes or records its state."""
    import asyncio
    import signal

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await main(stop)

    asyncio.run(runner())


def sync_command(
    organization_id: Annotated[uuid.UUID, typer.Argument(help="The organization's id.", metavar="ORG_ID")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would change; write nothing.")
    ] = False,
) -> None:
    """Sync an organization's team with its Microsoft 365 group now, in this process, and print the outcome."""
    import asyncio

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from equa.cli_support import fail
    from equa.errors import AppError
    from equa.microsoft.sync.execute import Progress as RunProgress
    from equa.microsoft.tasks import run_in_foreground

    settings = _settings_for_jobs()
    console = Console(stderr=True)
    tracker = RunProgress()
    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def show(progress: RunProgress) -> None:
            bar.update(
                task,
                description=progress.phase,
                completed=progress.done,
                total=progress.total or None,
            )

        tracker.listeners.append(show)
        try:
            run = asyncio.run(run_in_foreground(settings, organization_id, dry_run=dry_run, progress=tracker))
        except AppError as error:
            raise fail(error.message + (f" {error.action}" if error.action else "")) from None
    asyncio.run(_print_outcome(settings, run))
    if run.status not in ("succeeded", "partial"):
        raise typer.Exit(1)


async def _print_outcome(settings: Settings, run: SyncRun) -> None:
    from rich.console import Console
    from rich.table import Table

    from equa.db.engine import create_engine_for, create_session_factory
    from equa.microsoft.sync.runs import list_outcomes
    from equa.microsoft.vocabulary import OUTCOME_ORDER
    from equa.pagination import Cursors, cursor_key

    console = Console()
    title = f"{'Dry run' if run.dry_run else 'Sync'} {run.id}: {run.status}"
    counts = Table(title=title)
    counts.add_column("outcome")
    counts.add_column("members", justify="right")
    for name in OUTCOME_ORDER:
        counts.add_row(name, str((run.counts or {}).get(name, 0)))
    console.print(counts)
    if run.error_message:
        console.print(f"[bold]{run.error_message}[/bold] {run.error_action or ''}")
    engine = create_engine_for(settings.resolved_database_url)
    try:
        async with create_session_factory(engine)() as session:
            cursors = Cursors(
                cursor_key(settings.session_secret.get_secret_value()), "sync-outcomes", str(run.id)
            )
            rows, more = await list_outcomes(session, run, cursors=cursors, limit=ROWS_SHOWN)
    finally:
        await engine.dispose()
    if rows:
        detail = Table(title="Members" + (f" (first {ROWS_SHOWN})" if more else ""))
        for column in ("outcome", "name", "email", "message"):
            detail.add_column(column)
        for row in rows:
            detail.add_row(
                row.outcome, row.display_name or "", row.email or row.directory_id or "", row.message or ""
            )
        console.print(detail)


def worker_command(
    concurrency: Annotated[int, typer.Option(help="Syncs this process runs at once.", min=1, max=100)] = 10,
) -> None:
    """Run sync tasks from the Redis queue (EQUA_BROKER_URL) until stopped."""
    from equa.cli_support import fail
    from equa.microsoft.tasks import run_worker

    settings = _settings_for_jobs()
    if not settings.broker_url:
        raise fail("EQUA_BROKER_URL is not set: without a shared queue the API process runs syncs itself")
    _run_until_signalled(lambda stop: run_worker(settings, stop, concurrency=concurrency))


def scheduler_command() -> None:
    """Enqueue the periodic syncs (autoSync organizations, every EQUA_SYNC_INTERVAL) and the health checks."""
    from equa.cli_support import fail
    from equa.microsoft.tasks import run_scheduler_process

    settings = _settings_for_jobs()
    if not settings.broker_url:
        raise fail(
            "EQUA_BROKER_URL is not set: without a shared queue the API process schedules syncs itself"
        )
    _run_until_signalled(lambda stop: run_scheduler_process(settings, stop))


def register_sync_commands(app: typer.Typer) -> None:
    app.command("sync")(sync_command)
    app.command("worker")(worker_command)
    app.command("scheduler")(scheduler_command)
