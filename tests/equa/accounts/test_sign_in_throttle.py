"""Sign-in throttling: per account and per client address, and password hashing that never blocks the event loop."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from argon2 import PasswordHasher
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import func, select

from equa.accounts.models import SignInThrottle, User
from equa.accounts.passwords import use_password_hasher
from equa.accounts.throttle import Backoff, DatabaseThrottleStore, RedisThrottleStore, SignInThrottler
from equa.app import create_app
from equa.settings import Settings

PASSWORD = "right-password-1"


@asynccontextmanager
async def client_from(app: FastAPI, address: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def sign_in(app: FastAPI, email: str, password: str, address: str = "203.0.113.1") -> httpx.Response:
    async with client_from(app, address) as http:
        return await http.post("/api/v1/session", json={"email": email, "password": password})


async def test_an_account_waits_after_five_failures_even_from_new_addresses_and_with_the_right_password(
    app: FastAPI, make_user: Callable[..., Awaitable[User]]
) -> None:
    user = await make_user(password=PASSWORD)
    for attempt in range(5):
        bad = await sign_in(app, user.email, "wrong", address=f"198.51.100.{attempt}")
        assert bad.status_code == 401

    refused = await sign_in(app, user.email, PASSWORD, address="198.51.100.200")

    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "sign_in_throttled"
    assert int(refused.headers["Retry-After"]) >= 1
    assert "Wait 1 second" in refused.json()["detail"]


async def test_an_address_waits_after_five_failures_on_any_accounts(
    app: FastAPI, make_user: Callable[..., Awaitable[User]]
) -> None:
    user = await make_user(password=PASSWORD)
    for attempt in range(5):
        bad = await sign_in(app, f"nobody-{attempt}@example.com", "guess", address="192.0.2.7")
        assert bad.status_code == 401

    from_that_address = await sign_in(app, user.email, PASSWORD, address="192.0.2.7")
    from_elsewhere = await sign_in(app, user.email, PASSWORD, address="192.0.2.8")

    assert from_that_address.status_code == 429
    assert from_elsewhere.status_code == 200


async def test_the_wait_doubles_with_each_further_failure_up_to_the_maximum() -> None:
    backoff = Backoff(free_failures=5, max_wait_seconds=60)
    waits = [backoff.wait_after(failures) for failures in range(1, 13)]
    assert waits == [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60]


async def test_a_success_clears_the_account_count(
    app: FastAPI, make_user: Callable[..., Awaitable[User]]
) -> None:
    user = await make_user(password=PASSWORD)
    statuses = []
    for round_ in range(2):
        for attempt in range(4):
            bad = await sign_in(app, user.email, "wrong", address=f"198.51.100.{round_ * 10 + attempt}")
            statuses.append(bad.status_code)
        good = await sign_in(app, user.email, PASSWORD, address=f"198.51.100.{100 + round_}")
        statuses.append(good.status_code)

    assert statuses == [401, 401, 401, 401, 200] * 2


async def test_once_the_wait_is_over_the_right_password_works(
    make_settings: Callable[..., Settings], clean_database: str
) -> None:
    application = create_app(make_settings(login_free_failures=1, login_max_wait_seconds=1))
    async with LifespanManager(application):
        application_user = await _user_in(application, PASSWORD)
        assert (await sign_in(application, application_user, "wrong")).status_code == 401
        assert (await sign_in(application, application_user, PASSWORD)).status_code == 429
        await asyncio.sleep(1.1)
        assert (await sign_in(application, application_user, PASSWORD)).status_code == 200


async def _user_in(application: FastAPI, password: str) -> str:
    from equa.accounts.service import create_user

    email = f"waiter-{uuid.uuid4().hex[:6]}@example.com"
    async with application.state.session_factory() as session:
        await create_user(session, email, None, password)
        await session.commit()
    return email


async def test_the_sign_in_page_says_how_long_to_wait(
    app: FastAPI, client: httpx.AsyncClient, make_user: Callable[..., Awaitable[User]]
) -> None:
    user = await make_user(password=PASSWORD)
    page = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    form = {"email": user.email, "password": "wrong", "csrf_token": token.group(1)}
    for _ in range(5):
        assert (await client.post("/login", data=form)).status_code == 401

    refused = await client.post("/login", data={**form, "password": PASSWORD})

    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert "Too many failed sign-ins. Wait 1 second, then try again." in refused.text
    assert "equa_session" not in refused.headers.get("set-cookie", "")


class SlowHasher(PasswordHasher):
    """Blocks its thread for a while (or until `gate` opens), and records which threads ran it and how many at once."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.gate = gate
        self.lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0
        self.threads: set[str] = set()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.threads.add(threading.current_thread().name)
        try:
            if self.gate is not None:
                self.gate.wait(timeout=10)
            else:
                time.sleep(0.3)
            return super().verify(hash, password)
        finally:
            with self.lock:
                self.running -= 1


async def test_password_checks_run_off_the_event_loop_with_bounded_concurrency(
    make_settings: Callable[..., Settings], clean_database: str
) -> None:
    # The checks hold their threads until the gate opens: /healthz is asked while two of them are still running,
    # which it can only answer if they run beside the event loop, not on it.
    gate = threading.Event()
    hasher = SlowHasher(gate)
    application = create_app(make_settings(password_hash_concurrency=2))
    async with LifespanManager(application):
        email = await _user_in(application, PASSWORD)
        use_password_hasher(hasher)
        try:
            flood = [
                asyncio.create_task(sign_in(application, email, "wrong", address=f"198.51.100.{n}"))
                for n in range(4)
            ]
            await _until(lambda: hasher.running == 2)
            async with client_from(application, "192.0.2.1") as http:
                health = await http.get("/healthz")
            checks_running_meanwhile = hasher.running
            gate.set()
            statuses = [r.status_code for r in await asyncio.gather(*flood)]
        finally:
            gate.set()
            use_password_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))

    assert health.status_code == 200
    assert checks_running_meanwhile == 2  # /healthz did not wait behind the checks
    assert statuses == [401] * 4
    assert hasher.most_at_once == 2  # four checks asked for, two threads allowed
    assert threading.main_thread().name not in hasher.threads


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.01)


async def test_the_database_counts_are_shared_by_every_process_of_the_installation(
    make_settings: Callable[..., Settings], clean_database: str
) -> None:
    # Two applications on one database stand for two `equa serve` processes: each keeps its own known blocks, so
    # the second can only refuse by reading the counts the first wrote.
    first = create_app(make_settings())
    second = create_app(make_settings())
    async with LifespanManager(first), LifespanManager(second):
        email = await _user_in(first, PASSWORD)
        for attempt in range(5):
            assert (await sign_in(first, email, "wrong", address=f"198.51.100.{attempt}")).status_code == 401

        refused = await sign_in(second, email, PASSWORD, address="198.51.100.99")

    assert refused.status_code == 429
    assert refused.json()["code"] == "sign_in_throttled"


@pytest.mark.redis
async def test_with_equa_redis_url_the_app_counts_in_redis_not_in_the_database(
    make_settings: Callable[..., Settings], clean_database: str
) -> None:
    url = os.environ.get("EQUA_TEST_REDIS_URL")
    if not url:
        pytest.skip("EQUA_TEST_REDIS_URL is not set: no Redis to count sign-in failures in")
    import redis.asyncio as redis_asyncio

    application = create_app(make_settings(redis_url=url))
    redis = redis_asyncio.from_url(url)
    async with LifespanManager(application):
        email = await _user_in(application, PASSWORD)
        keys = application.state.sign_in_throttle.keys_for(email, "203.0.113.1")
        try:
            for _ in range(5):
                assert (await sign_in(application, email, "wrong")).status_code == 401
            counted = await redis.hget(f"equa:sign-in:{keys.account}", "failures")
            async with application.state.session_factory() as session:
                rows = await session.scalar(select(func.count()).select_from(SignInThrottle))
            refused = await sign_in(application, email, PASSWORD, address="198.51.100.99")
        finally:
            await redis.delete(f"equa:sign-in:{keys.account}", f"equa:sign-in:{keys.address}")
            await redis.aclose()

    assert counted == b"5"
    assert rows == 0
    assert refused.status_code == 429


@pytest.mark.redis
async def test_the_redis_store_shares_the_counts_between_processes() -> None:
    url = os.environ.get("EQUA_TEST_REDIS_URL")
    if not url:
        pytest.skip("EQUA_TEST_REDIS_URL is not set: no Redis to share the sign-in counts through")
    prefix = f"equa-test:sign-in:{uuid.uuid4().hex}"
    unused = DatabaseThrottleStore(None)  # type: ignore[arg-type]  # Redis answers: never consulted
    backoff = Backoff(free_failures=2, max_wait_seconds=30)
    throttlers = [
        SignInThrottler(RedisThrottleStore(url, unused, key_prefix=prefix), backoff, "secret")
        for _ in range(3)
    ]
    first, second, third = throttlers
    keys = first.keys_for("someone@example.com", "192.0.2.1")
    try:
        await first.failed(keys)
        assert await second.seconds_to_wait(keys) == 0
        await second.failed(keys)
        assert await first.seconds_to_wait(keys) == 1
        await first.failed(keys)
        assert await third.seconds_to_wait(keys) == 2
        await third.succeeded(keys)
        other_address = third.keys_for("someone@example.com", "192.0.2.2")
        assert await third.seconds_to_wait(other_address) == 0
        assert await third.seconds_to_wait(keys) == 2  # the address still waits
    finally:
        for store in (t.store for t in throttlers):
            assert isinstance(store, RedisThrottleStore)
            await store.clear(keys.account)
            await store.clear(keys.address)
            await store.aclose()


async def test_a_burst_of_parallel_guesses_is_not_all_hashed_before_the_first_failure_counts(
    make_settings: Callable[..., Settings], clean_database: str
) -> None:
    hasher = SlowHasher()
    application = create_app(make_settings(password_hash_concurrency=4))
    async with LifespanManager(application):
        email = await _user_in(application, PASSWORD)
        use_password_hasher(hasher)
        try:
            burst = [sign_in(application, email, f"guess {n}", address=f"198.51.100.{n}") for n in range(12)]
            statuses = sorted(r.status_code for r in await asyncio.gather(*burst))
        finally:
            use_password_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))

    assert statuses == [401] * 5 + [429] * 7  # as many checks at once as there are free failures
