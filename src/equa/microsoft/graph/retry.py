"""The retry policy and the one retry loop: which answers are retried, how long to wait, and when to give up."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, TypeVar

import httpx

from equa.microsoft.graph.metrics import GRAPH_RETRIES
from equa.microsoft.graph.usage import count_retries

if TYPE_CHECKING:
    from equa.microsoft.graph.errors import GraphError
    from equa.microsoft.graph.throttle import ThrottleGate

# The client's logger: a retry is logged as part of the request it repeats.
log = logging.getLogger("equa.microsoft.graph.client")
T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({429, 503, 504})

# The request never left this process, so sending it again cannot repeat a side effect.
_NOT_SENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def is_safe_to_repeat(method: str, url: str) -> bool:
    """Whether sending this request twice leaves Microsoft 365 as sending it once would.

    GET/PUT/DELETE are idempotent; PATCH sets properties or binds members (a repeat ends in the same state, at
    worst answering "already exists"); POST .../$ref adds a reference with the same property. Other POSTs (group
    creation, $batch with writes) are not.
    """
    method = method.upper()
    if method in ("GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"):
        return True
    return method == "POST" and httpx.URL(url).path.rstrip("/").endswith("/$ref")


def may_have_reached_graph(error: Exception) -> bool:
    """Whether a request that failed on the network may still have been received (and counted) by Graph."""
    return not isinstance(error, _NOT_SENT_ERRORS)


def should_retry_network_error(error: Exception, *, safe_to_repeat: bool) -> bool:
    if isinstance(error, _NOT_SENT_ERRORS):
        return True
    return safe_to_repeat and isinstance(error, httpx.TransportError)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: at most max_attempts sends and max_total_wait seconds of sleeping across them."""

    max_attempts: int = 6
    max_total_wait: float = 120.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))], for attempt 1, 2, ..."""
        ceiling = min(self.backoff_cap, self.backoff_base * (2 ** max(0, attempt - 1)))
        return (rng or random).uniform(0.0, ceiling)

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt`: the server's Retry-After wins when given."""
        if retry_after is not None:
            return retry_after
        return self.backoff(attempt, rng)

    def may_retry(self, attempt: int, waited: float, next_delay: float) -> bool:
        """True when another attempt fits in both the attempt budget and the wait budget."""
        return attempt < self.max_attempts and waited + next_delay <= self.max_total_wait


@dataclass
class Attempts:
    """One retry loop's count so far: attempts made, and seconds spent waiting between (or for) them."""

    attempt: int = 0
    waited: float = 0.0


@dataclass(frozen=True)
class TryAgain:
    """An attempt that failed in a way another attempt may fix; the retry loop decides whether one fits."""

    reason: str  # the graph_retries_total label
    error: GraphError | None  # what the caller gets (marked as given up) when the budget is spent
    retry_after: float | None = None  # the server's wait; None: jittered backoff
    throttled: bool = False  # a 429: the whole tenant waits, not just this caller
    items: int = 1  # retries this stands for ($batch items)
    counted: bool = True  # counted in the run's Graph usage (a sign-in outage is not a Graph retry)
    at_once: bool = False  # again at once, without counting an attempt (after refreshing a rejected token)
    note: str | None = None  # logged with the delay before the next attempt
    given_up_note: str | None = None  # logged as a warning when the budget is spent


async def retrying(
    attempt_once: Callable[[Attempts], Awaitable[T | TryAgain]],
    give_up: Callable[[TryAgain, Attempts], T],
    *,
    policy: RetryPolicy,
    gate: ThrottleGate,
    tenant: str,
    rng: random.Random | None = None,
) -> T:
    """The one retry loop of the Graph client, for single requests and $batch items alike.

    `attempt_once` makes one attempt and returns its result, or a TryAgain saying why another attempt may help;
    the loop waits (the server's Retry-After, else jittered backoff) while the policy's attempt and wait budgets
    allow, and hands the last TryAgain to `give_up` when they do not.
    """
    tries = Attempts()
    while True:
        tries.attempt += 1
        outcome = await attempt_once(tries)
        if not isinstance(outcome, TryAgain):
            return outcome
        if outcome.at_once:
            # Not a failure of the request (a token to refresh): again now, and it costs no attempt.
            GRAPH_RETRIES.labels(outcome.reason).inc(outcome.items)
            count_retries(outcome.items)
            tries.attempt -= 1
            continue
        delay = policy.delay(tries.attempt, outcome.retry_after, rng)
        if not policy.may_retry(tries.attempt, tries.waited, delay):
            return give_up(outcome, tries)
        GRAPH_RETRIES.labels(outcome.reason).inc(outcome.items)
        if outcome.counted:
            count_retries(outcome.items)
        if outcome.note:
            log.info("%s, retrying in %.2f s", outcome.note, delay)
        if outcome.throttled:
            # Graph throttles the whole tenant: hold every caller of it, then wait for our turn like them.
            await gate.block(tenant, delay)
            tries.waited += await gate.wait_turn(tenant)
        else:
            await asyncio.sleep(delay)
            tries.waited += delay
