"""The app side of the bench: settings pointed at the emulator, this process's job resources (the scheduler's
side, and in one-process mode the runs too, on the embedded broker), and `equa worker` processes on Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECRET_KEY = "fleet-bench-secret-key-" + "k" * 32
WORKER_CONCURRENCY = 20


@dataclass
class Cluster:
    """Where the app's data lives and how its runs are carried out."""

    database_url: str
    broker_url: str | None  # None: one process, embedded broker
    data_dir: Path
    workers: int = 0
    lease_seconds: int = 120  # the app's default EQUA_SYNC_LEASE
    tenant_concurrency: int | None = None  # None: the app's default
    scheduler_pool_size: int | None = None  # EQUA_DB_POOL_SIZE of this (scheduler) process; None: the app's
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def environment(self, emulator: Any) -> dict[str, str]:
        """The settings of every process of the app, as `equa worker` reads them."""
        from graph_emulator.seeds import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

        values = {
            "EQUA_DATABASE_URL": self.database_url,
            "EQUA_SECRET_KEY": SECRET_KEY,
            "EQUA_LOG_LEVEL": "WARNING",
            "EQUA_SYNC_LEASE": str(self.lease_seconds),
            # A run a throttled tenant stops is queued again after seconds, not half a minute.
            "EQUA_SYNC_REQUEUE_BACKOFF": "2",
            "EQUA_GRAPH_MAX_RETRY_WAIT": "10",
            "EQUA_SYNC_INTERVAL": "3600",
            "EQUA_SYNC_MIN_INTERVAL": "0",
            "MS_AUTH_ENABLED": "true",
            "MS_AUTH_CLIENT_ID": DEFAULT_CLIENT_ID,
            "MS_AUTH_TENANT_ID": "organizations",
            "MS_AUTH_SECRET": DEFAULT_CLIENT_SECRET,
            "MS_AUTHORITY_HOST": emulator.base_url,
            "MS_GRAPH_URL": emulator.graph_url,
            "MS_CA_BUNDLE": str(emulator.ca_path),
            "MS_GROUP_SCOPE": "tenant",
            # Multi-tenant mode needs the consent callback's base; nothing in the bench opens it.
            "EQUA_PUBLIC_URL": "https://equa.example",
        }
        if self.broker_url:
            values["EQUA_BROKER_URL"] = self.broker_url
        if self.tenant_concurrency is not None:
            values["EQUA_SYNC_TENANT_CONCURRENCY"] = str(self.tenant_concurrency)
        return values

    def settings(self, emulator: Any) -> Any:
        from equa.settings import Settings

        values = {**self.environment(emulator), "EQUA_DATA_DIR": str(self.data_dir / "scheduler")}
        if self.scheduler_pool_size is not None:
            values["EQUA_DB_POOL_SIZE"] = str(self.scheduler_pool_size)
        return Settings(**values)  # type: ignore[arg-type]

    def start_workers(self, emulator: Any, count: int) -> None:
        equa = Path(sys.executable).with_name("equa")
        for _ in range(count):
            name = f"worker-{len(self.processes)}"
            env = {**os.environ, **self.environment(emulator), "EQUA_DATA_DIR": str(self.data_dir / name)}
            log = (self.data_dir / f"{name}.log").open("wb")
            command = [str(equa), "worker", "--concurrency", str(WORKER_CONCURRENCY)]
            self.processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=log))

    def workers_peak_rss_mb(self) -> float:
        """The largest peak RSS (VmHWM) of the running workers; 0 with none."""
        return max(
            (peak_rss_mb(process.pid) for process in self.processes if process.poll() is None), default=0.0
        )

    def stop_workers(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's own peak RSS (VmHWM), in MB."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@contextlib.asynccontextmanager
async def job_resources(settings: Any) -> AsyncIterator[Any]:
    """JobResources as the scheduler process (and, embedded, the API process) builds them, broker started."""
    from equa.microsoft.tasks import job_process

    async with job_process(settings) as resources:
        await resources.broker.startup()
        try:
            yield resources
        finally:
            await resources.broker.shutdown()


async def wait_for_runs(
    session_factory: Any, run_ids: Collection[uuid.UUID], timeout: float, lease_seconds: int
) -> float:
    """Wait until every run has ended (any final status, abandoned included); answers the seconds waited.

    While waiting it does what the scheduler's tick does: a run nobody runs (its task lost, say, to a claim that
    met a locked SQLite database) is abandoned once its lease has passed, so the wait ends and the next cycle
    asks again. Raises TimeoutError after `timeout` seconds."""
    from sqlalchemy import func, select

    from equa.microsoft.models import SyncRun
    from equa.microsoft.sync.lifecycle import abandon_stale_runs
    from equa.microsoft.sync.runs import FINISHED_STATUSES

    started = time.perf_counter()
    ids = list(run_ids)
    next_abandon = started + lease_seconds / 3
    while ids:
        async with session_factory() as session:
            done = 0
            for start in range(0, len(ids), 1000):
                done += int(
                    await session.scalar(
                        select(func.count())
                        .select_from(SyncRun)
                        .where(
                            SyncRun.id.in_(ids[start : start + 1000]), SyncRun.status.in_(FINISHED_STATUSES)
                        )
                    )
                    or 0
                )
            if done < len(ids) and time.perf_counter() >= next_abandon:
                await abandon_stale_runs(session, lease_seconds=lease_seconds)
                await session.commit()
                next_abandon = time.perf_counter() + lease_seconds / 3
        if done >= len(ids):
            break
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{len(ids) - done} of {len(ids)} run(s) unfinished after {timeout:.0f} s")
        await asyncio.sleep(0.25)
    return time.perf_counter() - started
