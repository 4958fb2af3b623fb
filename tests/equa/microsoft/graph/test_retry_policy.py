"""Retry policy maths: Retry-After parsing, full-jitter backoff, budgets, and which requests may be repeated."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from equa.microsoft.graph.retry import (
    RetryPolicy,
    is_safe_to_repeat,
    parse_retry_after,
    should_retry_network_error,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        (" 10 ", 10.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
    ],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(30.0)
    past = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


def test_server_retry_after_wins_over_backoff() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_cap=30)
    assert policy.delay(5, 2.0) == 2.0


def test_full_jitter_stays_within_the_exponential_ceiling() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_cap=4.0)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        samples = [policy.backoff(attempt, rng) for _ in range(300)]
        assert all(0.0 <= s <= ceiling for s in samples)
        # Full jitter spreads callers over the whole window, not just near its top.
        assert min(samples) < ceiling * 0.2
        assert max(samples) > ceiling * 0.8


def test_budgets_bound_attempts_and_total_wait() -> None:
    policy = RetryPolicy(max_attempts=3, max_total_wait=10.0)
    assert policy.may_retry(1, 0.0, 2.0)
    assert policy.may_retry(2, 5.0, 5.0)
    assert not policy.may_retry(3, 0.0, 0.1)  # attempts used up
    assert not policy.may_retry(1, 8.0, 2.5)  # the wait would exceed the budget


@pytest.mark.parametrize(
    ("method", "url", "safe"),
    [
        ("GET", "https://g/v1.0/groups", True),
        ("DELETE", "https://g/v1.0/groups/1/members/2/$ref", True),
        ("PATCH", "https://g/v1.0/groups/1", True),
        ("POST", "https://g/v1.0/groups/1/members/$ref", True),
        ("POST", "https://g/v1.0/groups", False),
        ("POST", "https://g/v1.0/$batch", False),
    ],
)
def test_which_requests_may_be_repeated(method: str, url: str, safe: bool) -> None:
    assert is_safe_to_repeat(method, url) is safe


def test_network_errors_before_sending_are_always_retried() -> None:
    request = httpx.Request("POST", "https://g/v1.0/groups")
    assert should_retry_network_error(httpx.ConnectError("refused", request=request), safe_to_repeat=False)
    dropped = httpx.RemoteProtocolError("closed", request=request)
    assert not should_retry_network_error(dropped, safe_to_repeat=False)
    assert should_retry_network_error(dropped, safe_to_repeat=True)
