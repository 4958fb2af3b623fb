"""Sign-in throttling: per account and per client address, exponential backoff after a few failures.

Each account and each client address has a counter of failed sign-ins. The first EQUA_LOGIN_FREE_FAILURES cost
nothing; from then on every failure makes the next try wait twice as long as the one before (1 s, 2 s, 4 s...),
up to EQUA_LOGIN_MAX_WAIT. A try during the wait is refused before the password is even checked, so a flood costs
no hashing. A successful sign-in clears the account's counter; a counter also starts over after a quiet spell
(twice the longest wait), so an office behind one address is not held back by yesterday's typos.

The counters live in the database, or in Redis when EQUA_REDIS_URL is set, so every process of an installation
shares them. Keys are keyed hashes of the address and the client address: the store names nobody.

An operator lifts an account's block by setting a new password (`equa users set-password`) or with `equa users
unblock`; accepting an invitation, which sets the newcomer's password, lifts it too. Only the account's count is
cleared: the client addresses that guessed stay throttled.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn, Protocol

from fastapi import BackgroundTasks, FastAPI, Request
from sqlalchemy import case, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equa.accounts.models import SignInThrottle, normalize_email
from equa.db.base import utcnow
from equa.errors import AppError
from equa.settings import Settings

log = logging.getLogger("equa.accounts.throttle")

FIRST_WAIT_SECONDS = 1.0
KNOWN_BLOCKS_LIMIT = 10_000
# How long a serving process refuses from memory what it last learned of a block before it asks the store again:
# the delay before it notices that an operator lifted the block, and the most often a flood against one blocked
# account or from one blocked address reaches the store.
KNOWN_BLOCK_TRUST_SECONDS = 2.0
REFUSAL_DELAY_SECONDS = 0.5


@dataclass(frozen=True)
class Backoff:
    free_failures: int
    max_wait_seconds: float

    @property
    def forget_after_seconds(self) -> float:
        """Failures older than this no longer count (a quiet spell longer than any wait)."""
        return max(2 * self.max_wait_seconds, 60.0)

    def wait_after(self, failures: int) -> float:
        """Seconds the next try must wait after `failures` consecutive failures."""
        if failures < self.free_failures:
            return 0.0
        exponent = min(failures - self.free_failures, 60)
        return min(self.max_wait_seconds, FIRST_WAIT_SECONDS * 2.0**exponent)


class ThrottleStore(Protocol):
    async def blocked_until(self, keys: list[str]) -> dict[str, float]:
        """For each of `keys` that has a count: the epoch second until which it is blocked (0: not blocked)."""
        ...

    async def record_failure(self, key: str, backoff: Backoff) -> float:
        """Count one failure; returns the epoch second until which `key` is now blocked (0: not blocked)."""
        ...

    async def clear(self, key: str) -> None: ...

    async def aclose(self) -> None: ...


class DatabaseThrottleStore:
    """Counters in the sign_in_throttles table, each change in its own short transaction.

    The request's own transaction is rolled back when sign-in fails, so it cannot carry the failure.
    """

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = session_factory

    async def blocked_until(self, keys: list[str]) -> dict[str, float]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(SignInThrottle.key, SignInThrottle.blocked_until).where(SignInThrottle.key.in_(keys))
            )
        return {key: until.timestamp() if until else 0.0 for key, until in rows}

    async def record_failure(self, key: str, backoff: Backoff) -> float:
        now = utcnow()
        forget_before = now - timedelta(seconds=backoff.forget_after_seconds)
        async with self._sessions() as session, session.begin():
            await session.execute(_insert_ignoring_duplicate(session, key, now))
            # One UPDATE both counts and locks the row, so concurrent failures from several processes all count.
            failures = await session.scalar(
                update(SignInThrottle)
                .where(SignInThrottle.key == key)
                .values(
                    failures=case(
                        (SignInThrottle.last_failure_at < forget_before, 1),
                        else_=SignInThrottle.failures + 1,
                    ),
                    last_failure_at=now,
                )
                .returning(SignInThrottle.failures)
            )
            wait = backoff.wait_after(int(failures or 0))
            if wait <= 0:
                return 0.0
            blocked_until = now + timedelta(seconds=wait)
            await session.execute(
                update(SignInThrottle).where(SignInThrottle.key == key).values(blocked_until=blocked_until)
            )
            return blocked_until.timestamp()

    async def clear(self, key: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(delete(SignInThrottle).where(SignInThrottle.key == key))

    async def aclose(self) -> None:
        return None


def _insert_ignoring_duplicate(session: AsyncSession, key: str, now: datetime) -> Any:
    values = {"key": key, "failures": 0, "blocked_until": None, "last_failure_at": now}
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(SignInThrottle).values(**values).on_conflict_do_nothing(index_elements=["key"])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(SignInThrottle).values(**values).on_conflict_do_nothing(index_elements=["key"])


# Count a failure and set the block, atomically; ARGV: now_ms, forget_ms, free, first_wait_ms, max_wait_ms.
_FAILURE_SCRIPT = """
local now = tonumber(ARGV[1])
local state = redis.call('HMGET', KEYS[1], 'failures', 'last')
local failures = tonumber(state[1]) or 0
local last = tonumber(state[2])
if last and now - last > tonumber(ARGV[2]) then failures = 0 end
failures = failures + 1
local blocked = 0
local free = tonumber(ARGV[3])
if failures >= free then
  blocked = now + math.min(tonumber(ARGV[5]), tonumber(ARGV[4]) * 2 ^ math.min(failures - free, 60))
end
redis.call('HSET', KEYS[1], 'failures', failures, 'last', now, 'blocked', blocked)
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) + tonumber(ARGV[5])))
return blocked
"""


class RedisThrottleStore:
    """Counters in Redis hashes that expire on their own once the quiet spell has passed.

    While Redis does not answer, the database keeps the counters (with a warning), so sign-in stays both open
    and throttled.
    """

    def __init__(self, redis_url: str, fallback: ThrottleStore, *, key_prefix: str = "equa:sign-in") -> None:
        import redis.asyncio as redis_asyncio

        self._redis: Any = redis_asyncio.from_url(redis_url)
        self._fallback = fallback
        self._prefix = key_prefix
        self._script = self._redis.register_script(_FAILURE_SCRIPT)

    def _key(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    def _unavailable(self, error: Exception) -> None:
        log.warning(
            "sign-in throttle: Redis unavailable (%s); counting in the database", type(error).__name__
        )

    async def blocked_until(self, keys: list[str]) -> dict[str, float]:
        try:
            values = [await self._redis.hget(self._key(key), "blocked") for key in keys]
        except Exception as error:
            self._unavailable(error)
            return await self._fallback.blocked_until(keys)
        return {
            key: float(value) / 1000 for key, value in zip(keys, values, strict=True) if value is not None
        }

    async def record_failure(self, key: str, backoff: Backoff) -> float:
        try:
            blocked_ms = await self._script(
                keys=[self._key(key)],
                args=[
                    int(time.time() * 1000),
                    int(backoff.forget_after_seconds * 1000),
                    backoff.free_failures,
                    int(FIRST_WAIT_SECONDS * 1000),
                    int(backoff.max_wait_seconds * 1000),
                ],
            )
        except Exception as error:
            self._unavailable(error)
            return await self._fallback.record_failure(key, backoff)
        return float(blocked_ms) / 1000

    async def clear(self, key: str) -> None:
        try:
            await self._redis.delete(self._key(key))
        except Exception as error:
            self._unavailable(error)
            await self._fallback.clear(key)

    async def aclose(self) -> None:
        await self._redis.aclose()


@dataclass(frozen=True)
class SignInKeys:
    account: str
    address: str

    def both(self) -> list[str]:
        return [self.account, self.address]


class MustWait(Exception):
    """This sign-in must wait `seconds` before it is tried."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"wait {seconds} s")
        self.seconds = seconds


@dataclass
class KnownBlock:
    until: float  # epoch second the block ends
    checked_at: float  # when the store last said so (or this process counted the failure that set it)


class SignInThrottler:
    """The policy in front of a store: who must wait, and how long.

    Blocks this process has seen are remembered here, so a flood against a blocked account or from a blocked
    address is refused without hashing and without a round trip to the store. A block can end early, though: an
    operator lifts it (a new password, `equa users unblock`), possibly through another process. So what this process
    learned of a block is trusted for KNOWN_BLOCK_TRUST_SECONDS only; the first try after that asks the store again
    (the tries meanwhile are still refused from memory), which costs a flood at most one round trip per key per
    period and lets a lifted account in within that period. The memory only ever refuses early: a try it does not
    refuse always asks the store, so it never lets in anyone the store would hold back.
    """

    def __init__(
        self, store: ThrottleStore, backoff: Backoff, secret: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.backoff = backoff
        self._secret = secret.encode()
        self._clock = clock
        self._known_blocks: OrderedDict[str, KnownBlock] = OrderedDict()
        self._in_flight: dict[str, int] = {}

    def _remember_block(self, key: str, until: float) -> None:
        """A block this process just set by counting a failure: concurrent failures only lengthen it."""
        now = self._clock()
        if until <= now:
            return
        known = self._known_blocks.get(key)
        self._learn(key, max(until, known.until if known else 0.0), now)

    def _learn(self, key: str, until: float, now: float) -> None:
        if until <= now:
            self._known_blocks.pop(key, None)
            return
        self._known_blocks[key] = KnownBlock(until, now)
        self._known_blocks.move_to_end(key)
        while len(self._known_blocks) > KNOWN_BLOCKS_LIMIT:
            self._known_blocks.popitem(last=False)

    def _known_block(self, keys: SignInKeys) -> float:
        """The latest end of a block of these keys that memory still vouches for (0: ask the store)."""
        now = self._clock()
        latest = 0.0
        for key in keys.both():
            known = self._known_blocks.get(key)
            if known is None:
                continue
            if known.until <= now:
                del self._known_blocks[key]
            elif now - known.checked_at < KNOWN_BLOCK_TRUST_SECONDS:
                latest = max(latest, known.until)
        return latest

    def _asking_the_store(self, keys: SignInKeys) -> None:
        # This try asks the store for everyone: the tries that follow it meanwhile trust memory again, so a flood
        # sends one question per period, not one per try. (Called with no await before the question.)
        now = self._clock()
        for key in keys.both():
            known = self._known_blocks.get(key)
            if known is not None:
                known.checked_at = now

    async def _blocked_until_in_store(self, keys: SignInKeys) -> float:
        self._asking_the_store(keys)
        found = await self.store.blocked_until(keys.both())
        now = self._clock()
        until = 0.0
        for key in keys.both():
            # The store is the truth: a block it no longer has was lifted (or ended), not merely forgotten.
            key_until = found.get(key, 0.0)
            self._learn(key, key_until, now)
            until = max(until, key_until)
        return until

    def _whole_seconds_until(self, until: float) -> int:
        remaining = until - self._clock()
        return math.ceil(remaining) if remaining > 0 else 0

    def _hash(self, kind: str, value: str) -> str:
        digest = hmac.new(self._secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
        return f"{kind}:{digest}"

    def account_key(self, email: str) -> str:
        return self._hash("a", normalize_email(email))

    def keys_for(self, email: str, client_address: str | None) -> SignInKeys:
        return SignInKeys(
            account=self.account_key(email), address=self._hash("c", client_address or "unknown")
        )

    async def seconds_to_wait(self, keys: SignInKeys) -> int:
        """Whole seconds before this account may try again from this address (0: it may now)."""
        return self._whole_seconds_until(self._known_block(keys) or await self._blocked_until_in_store(keys))

    @asynccontextmanager
    async def attempt(self, keys: SignInKeys) -> AsyncIterator[None]:
        """Around one password check; raises MustWait when the account or the address must wait first.

        At most as many checks of one account (or from one address) run at once as there are free failures:
        a burst of parallel guesses would otherwise all be hashed before the first failure is counted. The
        check and the count happen with no await between them, so a burst cannot slip through together.
        """
        known = self._whole_seconds_until(self._known_block(keys))
        if known:
            await self._refuse(known)
        if any(self._in_flight.get(key, 0) >= self.backoff.free_failures for key in keys.both()):
            await self._refuse(math.ceil(FIRST_WAIT_SECONDS))
        for key in keys.both():
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
        released = False
        try:
            wait = self._whole_seconds_until(await self._blocked_until_in_store(keys))
            if wait:
                self._release(keys)
                released = True
                await self._refuse(wait)
            yield
        finally:
            if not released:
                self._release(keys)

    def _release(self, keys: SignInKeys) -> None:
        for key in keys.both():
            left = self._in_flight.get(key, 1) - 1
            if left > 0:
                self._in_flight[key] = left
            else:
                self._in_flight.pop(key, None)

    async def _refuse(self, seconds: int) -> NoReturn:
        # A refusal costs us little, but a client that retries at once would get thousands a second and keep a
        # core busy: each is answered after a short pause, which costs a sleeping coroutine, not CPU.
        await asyncio.sleep(REFUSAL_DELAY_SECONDS)
        raise MustWait(seconds)

    async def failed(self, keys: SignInKeys) -> None:
        for key in keys.both():
            self._remember_block(key, await self.store.record_failure(key, self.backoff))

    async def succeeded(self, keys: SignInKeys) -> None:
        # Only the account's counter: clearing the address's would let someone with an account of their own
        # wash out the address's count between guesses at other people's passwords.
        await self._clear_account(keys.account)

    async def lift_account_block(self, email: str) -> int:
        """Clear the account's failure count (not its guessers' addresses'); the seconds its block had left."""
        key = self.account_key(email)
        until = (await self.store.blocked_until([key])).get(key, 0.0)
        await self._clear_account(key)
        return self._whole_seconds_until(until)

    async def _clear_account(self, key: str) -> None:
        self._known_blocks.pop(key, None)
        await self.store.clear(key)


def sign_in_throttled(seconds: int) -> AppError:
    return AppError(
        429,
        "sign_in_throttled",
        f"Too many failed sign-ins for this account or from this address. Wait {wait_phrase(seconds)}.",
        f"Try again in {wait_phrase(seconds)}; if you forgot your password, ask an administrator to set a new one.",
        headers={"Retry-After": str(seconds)},
        extra={"retryAfterSeconds": seconds},
    )


def wait_phrase(seconds: int) -> str:
    """`45 seconds`, `3 minutes`: how long to wait, rounded up to what a person would read."""
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minutes"


def throttler_for(settings: Settings, session_factory: async_sessionmaker[AsyncSession]) -> SignInThrottler:
    """The installation's throttle: its counters in Redis when EQUA_REDIS_URL is set, else in the database, and
    keyed with the installation's secret, so every process (and `equa users ...`) reads and clears the same ones.
    The caller closes `throttler.store`."""
    store: ThrottleStore = DatabaseThrottleStore(session_factory)
    if settings.redis_url:
        store = RedisThrottleStore(settings.redis_url, fallback=store)
    return SignInThrottler(
        store,
        Backoff(settings.login_free_failures, settings.login_max_wait_seconds),
        settings.session_secret.get_secret_value(),
    )


async def open_sign_in_throttle(app: FastAPI, stack: AsyncExitStack) -> None:
    """Lifespan hook: the throttle on app.state, backed by Redis when the installation has one."""
    throttler = throttler_for(app.state.settings, app.state.session_factory)
    stack.push_async_callback(throttler.store.aclose)
    app.state.sign_in_throttle = throttler


def sign_in_throttle(request: Request) -> SignInThrottler:
    throttler: SignInThrottler = request.app.state.sign_in_throttle
    return throttler


def lift_newcomers_block(request: Request, background: BackgroundTasks, email: str) -> None:
    """A newcomer who accepted an invitation just chose the account's password: failed sign-ins at the address
    before the account existed (their own tries, or someone's guesses) no longer hold them back.

    Only for an account the acceptance created: lifting the block of one that existed already would let whoever
    holds a link wash out a stranger's count. Run after the request's commit (a background task), because a SQLite
    store cannot write beside the request's open write transaction.
    """
    background.add_task(sign_in_throttle(request).lift_account_block, email)


def client_address(request: Request) -> str | None:
    """The caller's address as uvicorn reports it (the proxy's X-Forwarded-For when EQUA_FORWARDED_ALLOW_IPS
    trusts the proxy)."""
    return request.client.host if request.client else None
