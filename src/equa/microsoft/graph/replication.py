"""Tolerating replication lag: an object Microsoft 365 just created can answer 404 for a few seconds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from equa.microsoft.graph.errors import GraphNotFound

log = logging.getLogger("equa.microsoft.graph.replication")

T = TypeVar("T")


def _always(_: GraphNotFound) -> bool:
    return True


async def while_replicating(
    call: Callable[[], Awaitable[T]],
    delays: Sequence[float],
    *,
    retry_if: Callable[[GraphNotFound], bool] = _always,
) -> T:
    """Run `call`; while it raises GraphNotFound, wait each of `delays` in turn and call again.

    Bounded: len(delays) + 1 calls at most, and the last GraphNotFound reaches the caller (an object that is really
    gone stays 404). `retry_if` keeps a 404 that replication cannot explain from being retried. No delays: one call.
    """
    for delay in delays:
        try:
            return await call()
        except GraphNotFound as missing:
            if not retry_if(missing):
                raise
            log.info("not visible yet, retrying in %.1f s (replication lag)", delay)
            await asyncio.sleep(delay)
    return await call()
