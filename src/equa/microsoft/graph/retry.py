"""The retry policy: which answers are retried, how long to wait, and when to give up."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

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
