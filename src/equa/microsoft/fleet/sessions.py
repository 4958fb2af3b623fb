"""Database sessions shared fairly by a cycle's tenants.

A cycle serves every tenant at once, and a fleet has far more tenants than the pool has connections. Each tenant
opens a session only around its database work, never across a Graph call, but a hundred tenants asking at once
would still queue on the pool and time out there (`QueuePool limit ... reached`), failing tenants for the cycle.
Waiting here instead, in order, costs nothing: a tenant waiting on Graph (a throttled one) holds no slot, so it
never delays another.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

# What the fleet's modules open sessions with: an async_sessionmaker, or SharedSessions in front of one.
SessionOpener = Callable[[], AbstractAsyncContextManager[AsyncSession]]


class SharedSessions:
    """Opens sessions of `factory`, at most `limit` at once; the others wait their turn."""

    def __init__(self, factory: async_sessionmaker[AsyncSession], limit: int) -> None:
        self._factory = factory
        self._slots = asyncio.Semaphore(max(1, limit))

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[AsyncSession]:
        async with self._slots, self._factory() as session:
            yield session

    def __call__(self) -> AbstractAsyncContextManager[AsyncSession]:
        return self._open()
