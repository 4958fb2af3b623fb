"""Run the real service for fuzz, chaos, crash and load runs: seeded database, `equa` processes, an emulator.

Shared by tests/fuzz, tests/chaos and bench/api_load.py (they put this folder on sys.path). Processes are started
with `python -m equa.cli`, exactly what an operator runs, and can be killed with SIGKILL to test crash recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from equa.accounts.service import create_user
from equa.accounts.tokens import create_api_token
from equa.db.engine import create_engine_for, create_session_factory
from equa.db.migrate import upgrade_database_async
from equa.organizations.models import Role
from equa.organizations.service import add_member, create_organization

SECRET_KEY = "harness-session-key-" + "h" * 32


class EmulatorEndpoints(Protocol):
    base_url: str
    graph_url: str
    ca_path: Any
    tenant_id: str
    client_id: str
    client_secret: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- the emulator in its own process (for load runs, where sharing the GIL would skew the numbers) ---------


@dataclass
class EmulatorProcess:
    """`python -m graph_emulator` on the default seed; the same attributes as RunningEmulator."""

    process: subprocess.Popen[str]
    base_url: str
    ca_path: Path
    tenant_id: str
    client_id: str
    client_secret: str
    control: Any = field(repr=False)

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/v1.0"

    def set_faults(self, **faults: Any) -> None:
        self.control.set_faults(**faults)

    def stop(self) -> None:
        self.control.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_emulator_process(
    data_dir: Path, *, throttling: bool = False, faults: dict[str, Any] | None = None
) -> EmulatorProcess:
    from graph_emulator import seeds
    from graph_emulator.testing import EmulatorControl

    data_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "graph_emulator", "--data-dir", str(data_dir), "--port", "0"]
    if not throttling:
        command.append("--no-throttling")
    if faults:
        command += ["--faults", json.dumps(faults)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    base_url = process.stdout.readline().strip()
    if not base_url.startswith("https://"):
        process.kill()
        raise RuntimeError(f"the emulator did not start (printed {base_url!r})")
    seed = seeds.default_seed()
    tenant = seed["tenants"][0]
    apps = {app["clientId"]: app for app in tenant.get("apps", [])}
    ca_path = data_dir / "ca.pem"
    deadline = time.monotonic() + 20
    while not ca_path.is_file():
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the emulator wrote no ca.pem")
        time.sleep(0.05)
    control = EmulatorControl(base_url, ca_path)
    control.health()
    return EmulatorProcess(
        process=process,
        base_url=base_url,
        ca_path=ca_path,
        tenant_id=tenant["id"],
        client_id=seeds.DEFAULT_CLIENT_ID,
        client_secret=apps[seeds.DEFAULT_CLIENT_ID]["secrets"][0]["value"],
        control=control,
    )


# --- settings and processes of the service -----------------------------------------------------------------


def service_environment(
    emulator: EmulatorEndpoints, database_url: str, data_dir: Path, **extra: str
) -> dict[str, str]:
    """The environment of an `equa` process pointed at the emulator (the same variables an operator sets)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MS_", "EQUA_"))}
    env.update(
        {
            "MS_AUTH_ENABLED": "true",
            "MS_AUTH_CLIENT_ID": emulator.client_id,
            "MS_AUTH_TENANT_ID": emulator.tenant_id,
            "MS_AUTH_SECRET": emulator.client_secret,
            "MS_AUTHORITY_HOST": emulator.base_url,
            "MS_GRAPH_URL": emulator.graph_url,
            "MS_CA_BUNDLE": str(emulator.ca_path),
            "EQUA_DATABASE_URL": database_url,
            "EQUA_DATA_DIR": str(data_dir),
            "EQUA_SECRET_KEY": SECRET_KEY,
            "EQUA_LOG_LEVEL": "WARNING",
            "EQUA_GRAPH_MAX_RETRY_WAIT": "20",
            # These suites link seeded groups directly; the group scope has its own tests.
            "MS_GROUP_SCOPE": "tenant",
            # These suites sync many times in a row; the pacing of admins' syncs has API tests of its own.
            "EQUA_SYNC_MIN_INTERVAL": "0",
        }
    )
    env.update(extra)
    return env


class ServiceProcess:
    """One `equa <command>` process; `kill()` is SIGKILL, with no chance to clean up (a crash)."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "equa.cli", *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the process: no lifespan shut-down, no final writes."""
        if self.alive():
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()

    def stop(self, timeout: float = 15.0) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class ServedApp(ServiceProcess):
    """`equa serve` on a free port, started and ready (its /readyz answers)."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        super().__init__(["serve", "--host", "127.0.0.1", "--port", str(self.port)], env, log_path)
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"equa serve exited:\n{self.output()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/readyz", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"equa serve did not become ready:\n{self.output()[-3000:]}")


# --- data --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeededOrganization:
    organization_id: uuid.UUID
    admin_id: uuid.UUID
    admin_email: str
    admin_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


async def seed_organization(
    database_url: str, *, admin_email: str, team: list[str], name: str = "Contoso team"
) -> SeededOrganization:
    """Migrate the database if needed, then an admin with an API token and an organization with `team`."""
    await upgrade_database_async(database_url)
    engine = create_engine_for(database_url)
    try:
        async with create_session_factory(engine)() as session:
            admin = await create_user(session, admin_email, None, "harness passphrase 1234")
            organization = await create_organization(session, name, admin)
            for email in team:
                if email.lower() != admin_email.lower():
                    await add_member(session, organization, email, Role.MEMBER)
            _, token = await create_api_token(session, admin, "harness")
            await session.commit()
            return SeededOrganization(organization.id, admin.id, admin.email, token)
    finally:
        await engine.dispose()


def seed_organization_sync(database_url: str, **kwargs: Any) -> SeededOrganization:
    return asyncio.run(seed_organization(database_url, **kwargs))


def tenant_member_emails(count: int) -> list[str]:
    """Addresses of member (not guest) users of the emulator's default tenant."""
    from graph_emulator.seeds import default_seed

    users = default_seed()["tenants"][0]["users"]
    return [u["mail"] for u in users if u["userType"] == "Member" and u.get("mail")][:count]


def seed_group_id(key: str) -> str:
    from graph_emulator.seeds import DEFAULT_TENANT_DOMAIN, stable_id

    return stable_id(DEFAULT_TENANT_DOMAIN, "seed-group", key)


FINAL_RUN_STATUSES = frozenset({"succeeded", "partial", "failed", "abandoned"})


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `predicate` every 0.1 s until it returns something truthy, which is returned; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def sync_run(http: httpx.Client, org_url: str, run_id: str) -> dict[str, Any]:
    """A sync run as the API shows it (`org_url` is the organization's .../microsoft prefix)."""
    response = http.get(f"{org_url}/sync-runs/{run_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def sqlite_path(database_url: str) -> Path:
    return Path(database_url.split(":///", 1)[1])


def sqlite_integrity_check(database_url: str) -> str:
    """`PRAGMA integrity_check` of the SQLite database: "ok" when the file is sound."""
    connection = sqlite3.connect(sqlite_path(database_url))
    try:
        rows = connection.execute("PRAGMA integrity_check").fetchall()
    finally:
        connection.close()
    return "; ".join(str(row[0]) for row in rows)


# --- PostgreSQL and Redis of the scaled-out shape ----------------------------------------------------------


def clear_redis_keys(redis_url: str, *patterns: str) -> None:
    """Delete the keys matching `patterns` (the sync queue, throttle gate state) so runs do not see each other."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        for pattern in patterns:
            keys = list(client.scan_iter(match=pattern))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


class Worker(ServiceProcess):
    """`equa worker`: takes sync tasks from the Redis queue."""

    def __init__(self, env: dict[str, str], log_path: Path, concurrency: int = 4) -> None:
        super().__init__(["worker", "--concurrency", str(concurrency)], env, log_path)
