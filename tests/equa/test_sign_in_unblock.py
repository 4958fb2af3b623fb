"""Lifting a sign-in block: an operator's new password or `equa users unblock` lets a locked-out person in at once,
through every serving process, while the addresses that guessed stay throttled; so does accepting an invitation."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from served_support import ADMIN_PASSWORD, SECRET_KEY, served_installation
from typer.testing import CliRunner

from equa.accounts.models import User
from equa.accounts.throttle import (
    KNOWN_BLOCK_TRUST_SECONDS,
    Backoff,
    DatabaseThrottleStore,
    SignInKeys,
    SignInThrottler,
)
from equa.app import create_app
from equa.cli import app as equa_cli
from equa.organizations.models import Organization
from equa.settings import Settings

EQUA = str(Path(sys.executable).with_name("equa"))
FREE_FAILURES = 4
NEW_PASSWORD = "a brand new passphrase 42"


def run_equa(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EQUA, *args], capture_output=True, text=True, timeout=120, env=env)


def some_address() -> str:
    """A client address no earlier run counted failures for (Redis keeps counts between runs)."""
    return f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"


def sign_in_from(base_url: str, email: str, password: str, address: str) -> httpx.Response:
    """A sign-in as the reverse proxy on this host passes it on, with the caller's address in X-Forwarded-For."""
    return httpx.post(
        f"{base_url}/api/v1/session",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": address},
        timeout=30,
    )


def lock_out(base_url: str, email: str, address: str, at_least: int) -> int:
    """Wrong guesses at `email` from `address` until the account must wait `at_least` seconds; returns the wait.

    Each burst is as many guesses at once as there are free failures (all are counted when they overlap), sent
    whenever the last block has ended: two bursts reach a 16 s wait after a 1 s one (more when they do not).
    """
    for _ in range(12):
        with ThreadPoolExecutor(FREE_FAILURES) as pool:
            guesses = [
                pool.submit(sign_in_from, base_url, email, "wrong guess", address)
                for _ in range(FREE_FAILURES)
            ]
            assert {guess.result().status_code for guess in guesses} <= {401, 429}
        probe = sign_in_from(base_url, email, "wrong guess", address)
        if probe.status_code == 429:
            wait = int(probe.headers["Retry-After"])
            if wait >= at_least:
                return wait
            time.sleep(wait)
    raise AssertionError(f"the account never had to wait {at_least} s")


def store_environment(store: str) -> dict[str, str]:
    settings = {"EQUA_FORWARDED_ALLOW_IPS": "127.0.0.1", "EQUA_LOGIN_FREE_FAILURES": str(FREE_FAILURES)}
    if store == "redis":
        url = os.environ.get("EQUA_TEST_REDIS_URL")
        if not url:
            pytest.skip("EQUA_TEST_REDIS_URL is not set: no Redis to count sign-in failures in")
        settings["EQUA_REDIS_URL"] = url
    return settings


@pytest.fixture
def forget_redis_counts() -> Iterator[Callable[[str, str], None]]:
    """Names the account and address a test counted in Redis, whose keys it removes afterwards."""
    counted: list[SignInKeys] = []
    throttler = SignInThrottler(DatabaseThrottleStore(None), Backoff(FREE_FAILURES, 900), SECRET_KEY)  # type: ignore[arg-type]  # keys only
    yield lambda email, address: counted.append(throttler.keys_for(email, address))
    url = os.environ.get("EQUA_TEST_REDIS_URL")
    if url and counted:
        import redis

        client = redis.Redis.from_url(url)
        client.delete(*(f"equa:sign-in:{key}" for keys in counted for key in keys.both()))
        client.close()


@pytest.mark.parametrize(
    ("store", "command"),
    [
        ("database", "set-password"),
        pytest.param("redis", "set-password", marks=pytest.mark.redis),
        ("database", "unblock"),
    ],
)
def test_an_operator_lifts_a_locked_out_persons_block_and_the_guessers_address_stays_throttled(
    tmp_path: Path, store: str, command: str, forget_redis_counts: Callable[[str, str], None]
) -> None:
    email = f"locked.out.{uuid.uuid4().hex[:8]}@example.com"
    guesser, person = some_address(), some_address()
    forget_redis_counts(email, guesser)
    with served_installation(tmp_path, email, **store_environment(store)) as (served, _):
        locked_for = lock_out(served.base_url, email, guesser, at_least=10)
        asked_at = time.monotonic()
        password = NEW_PASSWORD if command == "set-password" else ADMIN_PASSWORD
        refused_before = sign_in_from(served.base_url, email, password, person)

        extra = ["--password", NEW_PASSWORD] if command == "set-password" else []
        lifted = run_equa(served.env, "users", command, email, *extra)
        # The serving process trusts what it last heard of the block this long; the command takes longer anyway.
        time.sleep(max(0.0, asked_at + KNOWN_BLOCK_TRUST_SECONDS - time.monotonic()))
        person_after = sign_in_from(served.base_url, email, password, person)
        guesser_after = sign_in_from(served.base_url, email, password, guesser)

    assert refused_before.status_code == 429
    assert lifted.returncode == 0, lifted.stderr
    assert "sign-in block lifted" in lifted.stdout
    assert email not in lifted.stderr
    assert person_after.status_code == 200, person_after.text
    # The guesser's address still waits out the block the same guesses set on the account (so that block, too,
    # was still running: only the command ended it).
    assert guesser_after.status_code == 429
    assert 0 < int(guesser_after.headers["Retry-After"]) <= locked_for


def test_unblock_says_when_there_was_no_block_and_names_an_unknown_address(tmp_path: Path) -> None:
    env = {
        "EQUA_DATA_DIR": str(tmp_path / "data"),
        "EQUA_SECRET_KEY": SECRET_KEY,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    runner = CliRunner()
    assert runner.invoke(equa_cli, ["db", "upgrade"], env=env).exit_code == 0
    created = runner.invoke(
        equa_cli, ["users", "create", "calm@example.com", "--password", NEW_PASSWORD], env=env
    )
    assert created.exit_code == 0, created.output

    not_blocked = runner.invoke(equa_cli, ["users", "unblock", "Calm@Example.com"], env=env)
    unknown = runner.invoke(equa_cli, ["users", "unblock", "nobody@example.com"], env=env)

    assert not_blocked.exit_code == 0, not_blocked.output
    assert not_blocked.stdout.strip() == "calm@example.com: no sign-in block (failed sign-ins forgotten)"
    assert unknown.exit_code == 1
    assert "No user has the address nobody@example.com" in unknown.stderr


async def sign_in(application: FastAPI, email: str, password: str, address: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=application, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        return await http.post("/api/v1/session", json={"email": email, "password": password})


async def count_failures(application: FastAPI, email: str, address: str) -> None:
    """Ten failed sign-ins at `email` from `address` as the app counts them: a 32 s block on both."""
    throttle: SignInThrottler = application.state.sign_in_throttle
    for _ in range(10):
        await throttle.failed(throttle.keys_for(email, address))


@pytest.mark.parametrize("through", ["page", "api"])
async def test_a_newcomer_who_sets_a_password_through_an_invitation_is_not_held_back_by_earlier_guesses(
    through: str,
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: Callable[..., Awaitable[User]],
    make_org: Callable[..., Awaitable[Organization]],
    bearer: Callable[[User], Awaitable[dict[str, str]]],
) -> None:
    admin = await make_user()
    organization = await make_org(admin)
    newcomer = f"newcomer-{uuid.uuid4().hex[:6]}@example.com"
    invited = await client.post(
        f"/api/v1/organizations/{organization.id}/members",
        json={"email": newcomer},
        headers=await bearer(admin),
    )
    assert invited.status_code == 201, invited.text
    path = re.sub(r"^https?://[^/]+", "", invited.json()["invitationUrl"])
    await count_failures(app, newcomer, "192.0.2.66")
    assert (await sign_in(app, newcomer, "a guess", "192.0.2.67")).status_code == 429

    if through == "page":
        form = {"display_name": "New Comer", "password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
        accepted = await client.post(path, data=form)
    else:
        body = {"displayName": "New Comer", "password": NEW_PASSWORD}
        accepted = await client.post(path.replace("/invitations/", "/api/v1/invitations/"), json=body)
    from_elsewhere = await sign_in(app, newcomer, NEW_PASSWORD, "192.0.2.68")
    from_the_guesser = await sign_in(app, newcomer, NEW_PASSWORD, "192.0.2.66")

    assert accepted.status_code == (303 if through == "page" else 201), accepted.text
    assert from_elsewhere.status_code == 200, from_elsewhere.text
    assert from_the_guesser.status_code == 429


async def test_an_account_that_existed_before_the_invitation_keeps_its_block(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: Callable[..., Awaitable[User]],
    make_org: Callable[..., Awaitable[Organization]],
    bearer: Callable[[User], Awaitable[dict[str, str]]],
) -> None:
    # Whoever holds an invitation link for someone else's address must not be able to wash out their count.
    admin = await make_user()
    organization = await make_org(admin)
    someone = await make_user(password=NEW_PASSWORD)
    invited = await client.post(
        f"/api/v1/organizations/{organization.id}/members",
        json={"email": someone.email},
        headers=await bearer(admin),
    )
    path = re.sub(r"^https?://[^/]+", "", invited.json()["invitationUrl"])
    await count_failures(app, someone.email, "192.0.2.70")

    chosen = "chosen by another"
    tried = await client.post(
        path, data={"display_name": "Not Them", "password": chosen, "password_again": chosen}
    )
    still = await sign_in(app, someone.email, NEW_PASSWORD, "192.0.2.90")

    assert tried.status_code == 409
    assert still.status_code == 429


class WallClock:
    """The real time plus however far a test moved it on (the stores date blocks in epoch seconds)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class CountingStore(DatabaseThrottleStore):
    """The database store, counting the questions asked of it."""

    questions = 0

    async def blocked_until(self, keys: list[str]) -> dict[str, float]:
        self.questions += 1
        return await super().blocked_until(keys)


async def test_a_flood_against_a_blocked_account_asks_the_store_once_per_period_and_notices_a_lift(
    make_settings: Callable[..., Settings], clean_database: str
) -> None:
    application = create_app(make_settings(login_max_wait_seconds=600))
    async with LifespanManager(application):
        clock = WallClock()
        store = CountingStore(application.state.session_factory)
        serving = SignInThrottler(store, Backoff(2, 600), "secret", clock=clock)
        keys = serving.keys_for("flooded@example.com", "192.0.2.1")
        for _ in range(6):  # 2 free failures, then 4 more: a 16 s block, by the store's own clock
            await serving.failed(keys)
        store.questions = 0

        waits_within = [await serving.seconds_to_wait(keys) for _ in range(50)]
        asked_within = store.questions
        clock.offset += KNOWN_BLOCK_TRUST_SECONDS
        waits_after = [await serving.seconds_to_wait(keys) for _ in range(50)]
        asked_after = store.questions - asked_within

        # Another process (an operator's command) lifts the block in the shared store.
        other = SignInThrottler(
            DatabaseThrottleStore(application.state.session_factory), Backoff(2, 600), "secret"
        )
        left = await other.lift_account_block("Flooded@example.com")
        still_trusted = await serving.seconds_to_wait(keys)
        clock.offset += KNOWN_BLOCK_TRUST_SECONDS
        other_address = serving.keys_for("flooded@example.com", "192.0.2.2")
        after_the_period = await serving.seconds_to_wait(other_address)
        same_address = await serving.seconds_to_wait(keys)

    assert min(waits_within) > 0 and asked_within == 0
    assert min(waits_after) > 0 and asked_after == 1
    assert left > 0
    assert still_trusted > 0  # within the period, memory still answers
    assert after_the_period == 0  # the lift reached this process without anyone waiting out the block
    assert same_address > 0  # the address that guessed keeps its own count
