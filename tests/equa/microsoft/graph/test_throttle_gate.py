"""Throttle gates: a 429 holds back every caller of the tenant, across processes when Redis is shared."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from equa.microsoft.graph.throttle import InProcessThrottleGate, RedisThrottleGate, ThrottleGate


@pytest.fixture
async def redis_gates() -> AsyncIterator[tuple[RedisThrottleGate, RedisThrottleGate]]:
    url = os.environ.get("EQUA_TEST_REDIS_URL")
    if not url:
        pytest.skip("EQUA_TEST_REDIS_URL is not set: no Redis to share the throttle gate through")
    prefix = f"equa-test:{uuid.uuid4().hex}"
    # Two gates on separate connections stand for two worker processes.
    first = RedisThrottleGate(url, max_in_flight=2, key_prefix=prefix)
    second = RedisThrottleGate(url, max_in_flight=2, key_prefix=prefix)
    yield first, second
    await first.aclose()
    await second.aclose()


async def _blocked_elsewhere_waits(blocker: ThrottleGate, waiter: ThrottleGate) -> None:
    await blocker.block("tenant-a", 0.5)
    await blocker.block("tenant-a", 0.1)  # a shorter Retry-After never shortens the hold
    started = time.monotonic()
    waited = await waiter.wait_turn("tenant-a")
    assert time.monotonic() - started >= 0.45
    assert waited >= 0.45
    assert await waiter.wait_turn("tenant-b") < 0.05  # other tenants are not held


async def _in_flight_is_capped(gates: list[ThrottleGate], limit: int) -> None:
    active = 0
    peak = 0

    async def call(gate: ThrottleGate) -> None:
        nonlocal active, peak
        async with gate.slot("tenant-a"):
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.05)
            active -= 1

    await asyncio.gather(*(call(gates[i % len(gates)]) for i in range(12)))
    assert peak == limit


async def test_in_process_gate_holds_the_tenant_and_caps_in_flight() -> None:
    gate = InProcessThrottleGate(max_in_flight=3)
    await _blocked_elsewhere_waits(gate, gate)
    await _in_flight_is_capped([gate], 3)


@pytest.mark.redis
async def test_redis_gate_is_shared_between_processes(
    redis_gates: tuple[RedisThrottleGate, RedisThrottleGate],
) -> None:
    first, second = redis_gates
    await _blocked_elsewhere_waits(first, second)
    await _in_flight_is_capped([first, second], 2)


async def test_redis_gate_falls_back_to_the_process_when_redis_does_not_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Port 1 refuses connections: Redis is down (or unreachable) from the start.
    gate = RedisThrottleGate(
        "redis://127.0.0.1:1/0", max_in_flight=3, key_prefix=f"equa-test:{uuid.uuid4().hex}"
    )
    try:
        with caplog.at_level("WARNING", logger="equa.microsoft.graph.throttle"):
            # The same guarantees, kept by this process alone: a 429 it saw holds its callers, the cap holds.
            await _blocked_elsewhere_waits(gate, gate)
            await _in_flight_is_capped([gate], 3)
        warnings = [r.getMessage() for r in caplog.records if "Redis does not answer" in r.getMessage()]
        assert len(warnings) == 1  # said once, not on every request
    finally:
        await gate.aclose()
