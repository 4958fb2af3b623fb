"""The scheduler's leader lock in Redis: any number of schedulers may run, exactly one of them schedules.

The leader holds a key with its own random value and a time to live of EQUA_SCHEDULER_LOCK_SECONDS, renewed every
third of that. A leader that dies or loses Redis stops renewing; within the time to live another scheduler takes
the key and leads. A leader that cannot renew stops scheduling before its key can have expired, so two never
schedule at once. (Even if they did, the database still allows one active run per organization.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

log = logging.getLogger("equa.microsoft.scheduler")

DEFAULT_KEY = "equa:scheduler:leader"

# Renew or release only the key this scheduler set: compare and act in one step on the server.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class SchedulerLeadership:
    """Takes and keeps the leader lock in the background; `leading` says whether this scheduler may schedule."""

    def __init__(self, redis_url: str, lock_seconds: float, *, key: str = DEFAULT_KEY) -> None:
        import redis.asyncio as redis_asyncio

        # Short timeouts: an answer that comes later than a sixth of the lock's life is no use to a renewal.
        timeout = max(1.0, lock_seconds / 6)
        self._redis: Any = redis_asyncio.from_url(
            redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        # A bound on each whole command, reconnects and retries included: the socket timeouts bound one read, and a
        # connection left half-read by a cancelled command must not hold a scheduler (or its shutdown) forever.
        self._command_timeout = 3 * timeout
        self.key = key
        self.lock_seconds = lock_seconds
        self.identity = uuid.uuid4().hex
        self._valid_until = 0.0  # monotonic time until which this process is sure to hold the key
        self._task: asyncio.Task[None] | None = None
        self._was_leading = False

    @property
    def leading(self) -> bool:
        return time.monotonic() < self._valid_until

    async def _attempt(self) -> None:
        started = time.monotonic()
        milliseconds = int(self.lock_seconds * 1000)
        try:
            # Renew first: after a Redis blip the key may still be ours though this process stopped trusting it.
            held = bool(
                await self._command(self._redis.eval(_RENEW, 1, self.key, self.identity, milliseconds))
            )
            if not held:
                held = bool(
                    await self._command(self._redis.set(self.key, self.identity, nx=True, px=milliseconds))
                )
        except Exception as error:  # Redis down: keep leading only while the key surely still is ours
            log.warning("scheduler lock: Redis unavailable (%s)", type(error).__name__)
            self._report()
            return
        # Counted from before the request: the key's time to live began no earlier than that.
        self._valid_until = started + self.lock_seconds * 0.9 if held else 0.0
        self._report()

    async def _command(self, call: Any) -> Any:
        return await asyncio.wait_for(call, self._command_timeout)

    def _report(self) -> None:
        leading = self.leading
        if leading != self._was_leading:
            if leading:
                log.info("this scheduler leads (lock %s)", self.key)
            else:
                log.info("another scheduler leads; this one stands by (lock %s)", self.key)
        self._was_leading = leading

    async def _keep(self) -> None:
        while True:
            await self._attempt()
            await asyncio.sleep(self.lock_seconds / 3)

    async def start(self) -> None:
        """Try once at once (so a lone scheduler leads from its first tick), then keep trying in the background."""
        await self._attempt()
        self._task = asyncio.create_task(self._keep(), name="scheduler-leadership")

    async def stop(self) -> None:
        """Stop renewing and hand the lock over at once, so a standby scheduler need not wait for it to expire."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(self._task, self._command_timeout)
            self._task = None
        self._valid_until = 0.0
        with contextlib.suppress(Exception):
            await self._command(self._redis.eval(_RELEASE, 1, self.key, self.identity))
        with contextlib.suppress(Exception):
            await self._command(self._redis.aclose())
