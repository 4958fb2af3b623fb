"""Short-lived reuse, within one process, of the rows that every GET request reads before doing anything.

Each API read first resolves the caller (API token and user), then their membership of the organization, and the
status page also reads the last sync run. On SQLite through aiosqlite every statement is several round trips to a
worker thread, and under load each round trip waits for a turn of the busy event loop, so these few primary-key
reads cost more than the rest of the request. This cache keeps them for `ttl_seconds` (EQUA_READ_CACHE_SECONDS).

Correctness rules:
- Only requests that change nothing use it (the callers check); a write always reads the database.
- Any change this process makes to a table, through the ORM or an ORM `update()`/`delete()`, invalidates at once
  every entry that depends on that table (per-table generation numbers, bumped at flush and again at commit, so a
  read between the two cannot keep old data). A revoked token or a demoted admin is refused on the next request.
- A change made by another process (a second API process, a worker) is seen after at most `ttl_seconds`.
- Entries are detached copies of column values, never a session's own objects: a request merges a copy into its
  session (`merge(load=False)`, no SQL), so no request can see or change another request's objects.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import event, inspect
from sqlalchemy.orm import Mapper, ORMExecuteState, Session, UOWTransaction, make_transient_to_detached

T = TypeVar("T")

# Bounds memory when many tokens or organizations are read: the oldest entries go first.
MAX_ENTRIES = 10_000


def _tables_of_mappers(mappers: Iterable[Mapper[Any]]) -> set[str]:
    names: set[str] = set()
    for mapper in mappers:
        name = getattr(mapper.persist_selectable, "name", None)
        if name:
            names.add(name)
    return names


def _tables_of(instances: Iterable[Any]) -> set[str]:
    # By class first: a sync flushes thousands of rows of a handful of classes at once.
    return _tables_of_mappers(inspect(cls) for cls in {type(instance) for instance in instances})


def detached_copy(instance: T) -> T:
    """A new detached object with the same identity and column values as `instance`, unloaded relationships."""
    mapper = inspect(instance).mapper
    values = {column.key: getattr(instance, column.key) for column in mapper.column_attrs}
    copy = mapper.class_(**values)
    make_transient_to_detached(copy)
    return copy  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Entry:
    value: Any
    expires: float
    generations: tuple[tuple[str, int], ...]


class ReadCache:
    """Values keyed by anything hashable, each valid until its deadline or a change to a table it depends on."""

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        # Deadlines are read from this clock only: a test passes its own and moves it instead of sleeping.
        self.clock = clock
        self._entries: dict[Hashable, _Entry] = {}
        # key -> the read in progress; requests that miss the same key meanwhile wait for it instead of each
        # reading (when an entry expires under load, dozens of requests would otherwise miss at once).
        # Each with the generations it started from: a waiter whose tables changed since then reads for itself.
        self._filling: dict[Hashable, tuple[asyncio.Future[Any], tuple[tuple[str, int], ...]]] = {}
        # table name -> generation, bumped by every session of the process while the cache watches them.
        self._generations: dict[str, int] = {}
        self._touched_key = f"equa.touched_tables.{id(self)}"

    def watch_sessions(self) -> Callable[[], None]:
        """Invalidate on every ORM write of the process from now on; returns the function that stops watching.

        Every session, not only the app's: a CLI command or a test writing through its own session in this
        process must invalidate too. Called by the app's lifespan, so importing this module hooks nothing.
        """
        hooks: list[tuple[str, Callable[..., None]]] = [
            ("after_flush", self._after_flush),
            ("do_orm_execute", self._on_bulk_write),
            ("after_commit", self._after_transaction),
            ("after_rollback", self._after_transaction),
        ]
        # What was cached before, while nothing watched, may have changed unseen (an app started again after a
        # command changed its rows): start empty, and end empty.
        self.clear()
        for name, hook in hooks:
            event.listen(Session, name, hook)

        def stop() -> None:
            for name, hook in hooks:
                event.remove(Session, name, hook)
            self.clear()

        return stop

    def _bump(self, tables: Iterable[str]) -> None:
        for table in tables:
            self._generations[table] = self._generations.get(table, 0) + 1

    def _touched(self, session: Session, tables: set[str]) -> None:
        session.info.setdefault(self._touched_key, set()).update(tables)
        self._bump(tables)

    def _after_flush(self, session: Session, _context: UOWTransaction) -> None:
        # new/dirty/deleted still hold what was just flushed (they are cleared after this hook).
        tables = _tables_of([*session.new, *session.dirty, *session.deleted])
        if tables:
            self._touched(session, tables)

    def _on_bulk_write(self, state: ORMExecuteState) -> None:
        if not (state.is_update or state.is_delete):
            return
        tables = _tables_of_mappers(state.all_mappers)
        if tables:
            self._touched(state.session, tables)

    def _after_transaction(self, session: Session) -> None:
        tables = session.info.pop(self._touched_key, None)
        if tables:
            self._bump(tables)

    @property
    def enabled(self) -> bool:
        return self.ttl_seconds > 0

    def get(self, key: Hashable) -> tuple[bool, Any]:
        """(found, value); a found value may be None (a cached absence)."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        if self.clock() >= entry.expires or any(
            self._generations.get(table, 0) != generation for table, generation in entry.generations
        ):
            self._entries.pop(key, None)
            return False, None
        return True, entry.value

    def generations(self, tables: Iterable[str]) -> tuple[tuple[str, int], ...]:
        """Read before the database is: a change committed during the read then invalidates what `put` stores."""
        return tuple((table, self._generations.get(table, 0)) for table in tables)

    def put(self, key: Hashable, value: Any, generations: tuple[tuple[str, int], ...]) -> None:
        if not self.enabled:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = _Entry(value, self.clock() + self.ttl_seconds, generations)

    def clear(self) -> None:
        self._entries.clear()


_FILL_FAILED = object()


async def read_through(
    cache: ReadCache | None,
    key: Hashable,
    tables: Iterable[str],
    load: Callable[[], Awaitable[T]],
    snapshot: Callable[[Any], Any],  # called with a non-None result only
    attach: Callable[[Any], Awaitable[T]],
    *,
    cache_none: bool = False,
) -> T:
    """`load()` from the database, or what a recent load of `key` found, re-attached to the caller's session.

    `snapshot` turns a load's result into detached copies for the cache; `attach` merges such copies into the
    caller's session. A None result is cached only with `cache_none` (an absence that is itself the answer).
    """
    if cache is None:
        return await load()
    found, cached = cache.get(key)
    if found:
        return await attach(cached)
    tables = tuple(tables)
    in_progress = cache._filling.get(key)
    if in_progress is not None:
        future, started_from = in_progress
        shared = await asyncio.shield(future)
        # A change committed since that read began (a revoked token, say) may not be in what it found.
        unchanged = cache.generations(tables) == started_from
        if unchanged and shared is not _FILL_FAILED and (shared is not None or cache_none):
            return await attach(shared)
        return await load()  # read for ourselves
    filled: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    generations = cache.generations(tables)
    cache._filling[key] = (filled, generations)
    shared = _FILL_FAILED
    try:
        result = await load()
        shared = None if result is None else snapshot(result)
        if shared is not None or cache_none:
            cache.put(key, shared, generations)
        return result
    finally:
        cache._filling.pop(key, None)
        filled.set_result(shared)
