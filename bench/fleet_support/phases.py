"""The bench's phases, in order, on one emulator fleet and one Equa database: first reconcile, a cycle with no
changes, a cycle after changes on both sides (then convergence), fairness with one tenant throttled hard, a cycle
with no changes after 10 % of the organizations unlinked their group (once the rounds are merged), and throughput
by number of workers. Each phase answers its figures; fleet_bench.py prints and writes them."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fleet_support import checks
from fleet_support.changes import Expectations, change_equa_side, change_microsoft_side
from fleet_support.cluster import Cluster, peak_rss_mb, wait_for_runs
from fleet_support.model import FleetModel

CYCLES_TO_SETTLE = 6  # cycles after changes until one asks for no run and no tenant failed


@dataclass
class Figures:
    values: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Bench:
    emu: Any  # graph_emulator.testing.RunningEmulator (this process)
    cluster: Cluster
    resources: Any  # equa.microsoft.tasks.JobResources of this (scheduler) process
    model: FleetModel
    run_timeout: float
    figures: Figures = field(default_factory=Figures)
    hand: set[tuple[str, str]] = field(default_factory=set)  # (group, member) the bench changed by hand
    rng: random.Random = field(default_factory=lambda: random.Random(5))
    first_cycle_runs: list[uuid.UUID] = field(default_factory=list)
    # Graph requests of a phase until its first cycle that asked for no run: where it would end had no run failed
    # (what follows is the retry of failed runs and the cycles that waited for it, reported apart).
    quiet_requests: int | None = None

    @property
    def emulator(self) -> Any:
        return self.emu.emulator

    def marks(self) -> dict[str, int]:
        return checks.change_marks(self.emulator, self.model.tenants().keys())

    def peak_rss(self) -> float:
        if self.cluster.processes:
            return self.cluster.workers_peak_rss_mb()
        return peak_rss_mb()  # one process: the app's runs, the scheduler and the emulator together

    async def wait(self, run_ids: list[uuid.UUID]) -> None:
        await wait_for_runs(
            self.resources.session_factory, run_ids, self.run_timeout, self.cluster.lease_seconds
        )

    async def cycle(self, now: datetime | None = None) -> tuple[Any, float, float]:
        """One fleet cycle and the runs it asked for, to the end: (report, cycle seconds, seconds to the last run)."""
        from equa.microsoft.fleet.cycle import run_fleet_cycle

        started = time.perf_counter()
        report = await run_fleet_cycle(self.resources, now=now)
        cycle_seconds = time.perf_counter() - started
        await self.wait(report.run_ids)
        return report, cycle_seconds, time.perf_counter() - started

    async def settle(self) -> tuple[int, float, list[Any]]:
        """Cycles until one asks for no run with every tenant served and no organization waiting to try a run
        again: (runs asked for, seconds, reports)."""
        from equa.db.base import utcnow

        runs = 0
        started, since = time.perf_counter(), utcnow()
        reports = []
        self.quiet_requests = None
        for _ in range(CYCLES_TO_SETTLE):
            report, _, _ = await self.cycle()
            reports.append(report)
            runs += len(report.run_ids)
            if report.failed_tenants:
                self.figures.values["failed_tenant_cycles"] = self.figures.values.get(
                    "failed_tenant_cycles", 0
                ) + len(report.failed_tenants)
            elif not report.run_ids:
                if self.quiet_requests is None:
                    self.quiet_requests = self.emu.stats()["graph_requests"]
                if not await self.awaiting_retry(since) and not await self.changes_waiting():
                    break
                # A run that did not succeed (a SQLite writer timed out on a loaded machine) is asked for again
                # once its lease has passed, as the scheduler does, and the changes of its organization wait
                # until then: wait for that turn rather than stop short.
                await asyncio.sleep(self.resources.settings.sync_lease_seconds)
        return runs, time.perf_counter() - started, reports

    async def changes_waiting(self) -> bool:
        """Whether some organization has changes that no run has carried yet (it waits after a failed run)."""
        from equa.microsoft.fleet import repository as fleet_repository

        async with self.resources.session_factory() as session:
            waiting = await fleet_repository.unassigned_changes_of(session, [o.id for o in self.model.orgs])
        return bool(waiting)

    async def awaiting_retry(self, since: datetime) -> bool:
        """Whether some organization's latest run since `since` did not succeed."""
        latest: dict[uuid.UUID, checks.RunFacts] = {}
        for run in await checks.run_facts(self.resources.session_factory, since):
            if run.organization_id not in latest or run.created_at >= latest[run.organization_id].created_at:
                latest[run.organization_id] = run
        return any(r.status not in ("succeeded", "partial") for r in latest.values())

    async def double_work(self, since: datetime, marks: dict[str, int], phase: str) -> int:
        """Double work since the phase began; also notes the phase's runs that did not succeed."""
        runs = await checks.run_facts(self.resources.session_factory, since)
        if phase == "change":
            first_cycle = set(self.first_cycle_runs)
            delays, _ = checks.start_delays(runs, since, only=first_cycle)
            self.figures.values["change_p95_start_delay_s"] = round(checks.percentile(delays, 0.95), 2)
            self.figures.values["change_max_start_delay_s"] = round(max(delays, default=0.0), 2)
        unsuccessful = sorted(r.status for r in runs if r.status not in ("succeeded", "partial"))
        self.figures.values[f"{phase}_unsuccessful_runs"] = len(unsuccessful)
        if unsuccessful:
            self.figures.notes.append(
                f"{phase}: {len(unsuccessful)} run(s) {', '.join(sorted(set(unsuccessful)))}"
            )
        return checks.overlapping_runs(runs) + checks.twice_written(self.emulator, marks, self.hand)

    async def runs_of(self, organization_id: uuid.UUID, since: datetime) -> list[str]:
        """One line per run of the organization since `since`: what an unconverged organization went through."""
        from sqlalchemy import select

        from equa.microsoft.models import SyncRun

        async with self.resources.session_factory() as session:
            runs = await session.scalars(
                select(SyncRun)
                .where(SyncRun.organization_id == organization_id, SyncRun.created_at >= since)
                .order_by(SyncRun.created_at)
            )
            return [
                f"  run {run.id} {run.trigger} {run.status} {run.error_code or ''} {run.counts}"
                for run in runs
            ]

    def progress(self, text: str) -> None:
        print(f"  [{time.strftime('%H:%M:%S')}] {text}", flush=True)

    # --- phases ------------------------------------------------------------------------------------------

    async def first_reconcile(self) -> None:
        from equa.db.base import utcnow

        self.progress("first reconcile of the whole fleet")
        lower = checks.first_lower_bound(self.emulator, self.model)
        quota = checks.write_quota_seconds(self.emulator, self.model, self.resources.settings)
        self.emu.reset_stats()
        since, marks = utcnow(), self.marks()
        runs, seconds, _ = await self.settle()
        stats = self.emu.stats()
        until_quiet = stats["graph_requests"] if self.quiet_requests is None else self.quiet_requests
        self.figures.values.update(
            first_requests=until_quiet,
            first_retry_requests=stats["graph_requests"] - until_quiet,
            first_lower_bound=lower,
            first_429=stats["throttled"],
            first_runs=runs,
            first_seconds=round(seconds, 1),
            first_write_quota_s=round(quota, 1),
            first_double_work=await self.double_work(since, marks, "first"),
            first_requests_by_route=dict(stats["requests"]),
        )

    async def idle_cycle(self) -> None:
        self.progress("a cycle with no changes")
        self.emu.reset_stats()
        report, cycle_seconds, _ = await self.cycle()
        self.figures.values.update(
            idle_requests=self.emu.stats()["graph_requests"],
            idle_bound=checks.idle_bound(self.model),
            idle_runs=len(report.run_ids),
            idle_seconds=round(cycle_seconds, 2),
        )

    async def changes(self, share: float = 0.01) -> None:
        from equa.db.base import utcnow
        from equa.microsoft.fleet.outbox import install_outbox_hook

        count = max(2, round(share * self.model.memberships))
        self.progress(f"{count} changes on each side, then cycles until the fleet is in step")
        expect = Expectations()
        touched: set[tuple[uuid.UUID, str]] = set()
        before = {
            (o.group_id, d)
            for o in self.model.orgs
            for d in self.emulator.directory.tenants[o.tenant_id].members[o.group_id].ordered()
        }
        change_microsoft_side(self.emulator, self.model, count, expect, touched, self.rng)
        after = {
            (o.group_id, d)
            for o in self.model.orgs
            for d in self.emulator.directory.tenants[o.tenant_id].members[o.group_id].ordered()
        }
        self.hand |= before ^ after
        sync_added = await checks.added_by_sync(self.resources.session_factory)
        # The team changes are recorded as the API process records them (its outbox hook); the API's immediate
        # push is left out, so the cycle carries them, as it does after a restart or for a busy organization.
        remove_hook = install_outbox_hook(self.resources.session_factory)
        try:
            await change_equa_side(
                self.resources.session_factory, self.model, count, expect, touched, sync_added, self.rng
            )
        finally:
            remove_hook()
        self.emu.reset_stats()
        since, marks = utcnow(), self.marks()
        runs, seconds, reports = await self.settle()
        self.first_cycle_runs = list(reports[0].run_ids) if reports else []
        problems = await checks.unconverged(self.resources.session_factory, self.emulator, self.model, expect)
        self.figures.notes += problems[:5]
        for line in problems[:5]:
            self.figures.notes += await self.runs_of(uuid.UUID(line.split(":", 1)[0]), since)
        self.figures.values.update(
            change_requests=self.emu.stats()["graph_requests"],
            change_delta_requests=sum(r.delta_requests for r in reports),
            changes=expect.changes,
            microsoft_changes=expect.microsoft_changes,
            equa_changes=expect.equa_changes,
            change_runs=runs,
            change_seconds=round(seconds, 1),
            change_429=self.emu.stats()["throttled"],
            converged=not problems,
            unconverged_organizations=len(problems),
            change_double_work=await self.double_work(since, marks, "change"),
        )

    async def fairness(self) -> None:
        """Every organization gets a change by hand; the busiest tenant answers 429 to everything meanwhile.
        Delay: from the cycle's start (when every organization's run was due) to the run's start, other
        tenants' organizations only."""
        from equa.db.base import utcnow

        self.progress("fairness: a change in every organization, the busiest tenant throttled hard")
        tenants = self.model.tenants()
        throttled = max(tenants, key=lambda t: len(tenants[t]))
        throttled_orgs = {o.id for o in tenants[throttled]}
        for org in self.model.orgs:
            tenant = self.emulator.directory.tenants[org.tenant_id]
            members = tenant.members[org.group_id]
            team = {self.model.directory_of_user[u] for u in org.team}
            outsiders = [
                d for d in self.model.users_of_tenant[org.tenant_id] if d not in members and d not in team
            ]
            if outsiders:
                stranger = self.rng.choice(outsiders)
                tenant.add_member(org.group_id, stranger)
                self.hand.add((org.group_id, stranger))
        self.emu.throttle_tenant(throttled, 1.0, retry_after_seconds=2)
        due = utcnow()
        marks = self.marks()
        try:
            from equa.microsoft.fleet.cycle import run_fleet_cycle

            report = await run_fleet_cycle(self.resources)
            await wait_for_runs_of_others(self, report.run_ids, throttled_orgs)
            runs = await checks.run_facts(self.resources.session_factory, due)
        finally:
            self.emu.throttle_tenant(throttled, 0)
        delays, queued = checks.start_delays(runs, due, leave_out=throttled_orgs)
        await self.settle()  # the throttled tenant catches up
        self.figures.values.update(
            p95_start_delay_s=round(checks.percentile(delays, 0.95), 2),
            max_start_delay_s=round(max(delays, default=0.0), 2),
            fairness_p95_request_to_start_s=round(checks.percentile(queued, 0.95), 2),
            fairness_runs=len(delays),
            throttled_tenant_organizations=len(throttled_orgs),
            fairness_double_work=await self.double_work(due, marks, "fairness"),
        )

    async def after_unlinks(self, share: float = 0.1) -> None:
        """A share of the organizations unlink their group; the cycles go on until the rounds left with free places
        are merged (the cycles' clock moves past the merged rounds' settling time), then a cycle with no changes."""
        from datetime import timedelta

        from sqlalchemy import update

        from equa.db.base import utcnow
        from equa.microsoft.fleet.compaction import SETTLE
        from equa.organizations.models import Organization

        self.progress(f"a cycle with no changes after {share:.0%} of the organizations unlinked their group")
        unlinked = {
            o.id for o in self.rng.sample(self.model.orgs, max(1, round(share * len(self.model.orgs))))
        }
        async with self.resources.session_factory() as session:
            await session.execute(
                update(Organization).where(Organization.id.in_(unlinked)).values(microsoft_group=None)
            )
            await session.commit()
        self.model.orgs = [o for o in self.model.orgs if o.id not in unlinked]
        await self.cycle()  # the rounds are read; those with free places get their successors
        later = utcnow() + SETTLE + timedelta(seconds=1)
        self.emu.reset_stats()
        merging, _, _ = await self.cycle(now=later)  # the old rounds read a last time, then replaced
        before = self.emu.stats()["graph_requests"]
        self.emu.reset_stats()
        idle, _, _ = await self.cycle(now=later)
        self.figures.values.update(
            unlinked_organizations=len(unlinked),
            unlink_requests_before_merge=before,
            unlink_merged_rounds=merging.merged_rounds,
            unlink_idle_requests=self.emu.stats()["graph_requests"],
            unlink_idle_bound=checks.idle_bound(self.model),
            unlink_idle_runs=len(idle.run_ids),
        )

    async def throughput(self, worker_counts: list[int], sample: int) -> None:
        """Full syncs of `sample` organizations by 1, 2, 4... `equa worker` processes: runs per minute."""
        from equa.db.base import utcnow
        from equa.microsoft.sync.runs import request_sync
        from equa.organizations.models import Organization

        results: dict[str, Any] = {}
        orgs = self.model.orgs[:sample]
        for count in worker_counts:
            self.progress(f"throughput: {len(orgs)} full syncs by {count} worker(s)")
            self.cluster.stop_workers()
            self.cluster.start_workers(self.emu, count)
            since, marks = utcnow(), self.marks()
            started = time.perf_counter()
            run_ids = []
            async with self.resources.session_factory() as session:
                for org in orgs:
                    organization = await session.get(Organization, org.id)
                    run = await request_sync(session, organization, None, False, "schedule")
                    run_ids.append(run.id)
                await session.commit()
            await self.wait(run_ids)
            seconds = time.perf_counter() - started
            results[str(count)] = {
                "runs": len(run_ids),
                "seconds": round(seconds, 2),
                "runs_per_minute": round(60 * len(run_ids) / seconds, 1),
                "double_work": await self.double_work(since, marks, f"throughput_{count}"),
                "peak_rss_mb": round(self.cluster.workers_peak_rss_mb(), 1),
            }
        self.figures.values["throughput"] = results


async def wait_for_runs_of_others(bench: Bench, run_ids: list[uuid.UUID], throttled: set[uuid.UUID]) -> None:
    """Wait for the runs of every tenant but the throttled one (whose runs wait out its 429s)."""
    from sqlalchemy import select

    from equa.microsoft.models import SyncRun

    async with bench.resources.session_factory() as session:
        rows = await session.execute(
            select(SyncRun.id, SyncRun.organization_id).where(SyncRun.id.in_(run_ids))
        )
        others = [run_id for run_id, org_id in rows if org_id not in throttled]
    await bench.wait(others)
