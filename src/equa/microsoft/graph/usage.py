"""Graph traffic of one piece of work (a sync run, say): requests, $batch sub-requests, 429 answers, retries.

The GraphClient is shared by everything a process does, and its Prometheus counters add all of it up. A caller that
wants its own numbers wraps its work in `measure_usage()`; the client adds what it sends on the caller's behalf to
every measurement open in the current context. Context variables are copied into the tasks a coroutine starts, so
work fanned out with asyncio.gather counts too. Token requests go to the identity platform, not Graph, and are not
counted.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class GraphUsage:
    """What the Graph client sent while a measurement was open."""

    requests: int = 0  # HTTP requests that reached Graph, retries included
    batch_subrequests: int = 0  # run by Graph (those of an envelope refused as a whole are not)
    throttled: int = 0  # 429 answers, to a request or to a $batch sub-request
    retries: int = 0  # requests sent again, and $batch sub-requests sent again


# A tuple, never mutated in place: a nested measurement must not leak into the context of its caller.
_open: contextvars.ContextVar[tuple[GraphUsage, ...]] = contextvars.ContextVar("equa_graph_usage", default=())


@contextlib.contextmanager
def measure_usage() -> Iterator[GraphUsage]:
    """Count the Graph traffic of the work done inside the block (and of the tasks it starts) into a GraphUsage.

    Measurements nest: an outer one also counts what an inner one does.
    """
    usage = GraphUsage()
    token = _open.set((*_open.get(), usage))
    try:
        yield usage
    finally:
        _open.reset(token)


def _add(*, requests: int = 0, batch_subrequests: int = 0, throttled: int = 0, retries: int = 0) -> None:
    for usage in _open.get():
        usage.requests += requests
        usage.batch_subrequests += batch_subrequests
        usage.throttled += throttled
        usage.retries += retries


def count_request(status: int | None) -> None:
    """One HTTP request reached Graph; `status` is its answer (None when the connection broke before one)."""
    _add(requests=1, throttled=1 if status == 429 else 0)


def count_batch_answers(sent: int, throttled: int) -> None:
    """Graph ran `sent` sub-requests of a $batch envelope, `throttled` of them answered 429."""
    _add(batch_subrequests=sent, throttled=throttled)


def count_retries(count: int = 1) -> None:
    """Requests (or $batch sub-requests) about to be sent again."""
    _add(retries=count)
