"""equa.pagination: the one cursor codec and the one keyset page every listing of our own rows goes through.

The listings (sync runs, a run's outcomes, flagged members, the audit trail) only say how their rows are ordered;
walking pages, keeping the signed page size and refusing a cursor that is not the list's own is done here once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from equa.errors import AppError
from equa.pagination import BY_CREATED_AND_ID, BY_ID, BY_SEQ, Cursors, Keyset, cursor_key, keyset_page

KEY = cursor_key("a secret key long enough for the tests of cursors")


@dataclass(frozen=True)
class Row:
    id: uuid.UUID
    created_at: datetime
    seq: int


def _rows(count: int) -> list[Row]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    # Pairs share a timestamp, so the id has to break the tie for no row to be skipped or shown twice.
    return [Row(uuid.uuid4(), start + timedelta(seconds=index // 2), index) for index in range(count)]


def _newest_first(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda row: (row.created_at, row.id), reverse=True)


class Store:
    """A list of rows answered like the repositories answer: up to n rows after a keyset position."""

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows
        self.asked: list[int] = []

    async def newest_first(self, after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[Row]:
        self.asked.append(limit)
        ordered = _newest_first(self.rows)
        if after is not None:
            ordered = [row for row in ordered if (row.created_at, row.id) < after]
        return ordered[:limit]

    async def by_seq(self, after: int | None, limit: int) -> list[Row]:
        self.asked.append(limit)
        return [row for row in sorted(self.rows, key=lambda r: r.seq) if after is None or row.seq > after][
            :limit
        ]


async def _walk(cursors: Cursors, store: Store, limit: int) -> list[list[Row]]:
    pages: list[list[Row]] = []
    cursor: str | None = None
    while True:
        rows, cursor = await keyset_page(
            cursors, cursor, limit=limit, max_size=50, keyset=BY_CREATED_AND_ID, fetch=store.newest_first
        )
        pages.append(rows)
        if cursor is None:
            return pages
        assert len(pages) < 100, "the pages never end"


async def test_walking_the_pages_gives_every_row_once_in_order() -> None:
    rows = _rows(23)
    store = Store(rows)
    pages = await _walk(Cursors(KEY, "runs", "org-1"), store, limit=5)
    assert [len(page) for page in pages] == [5, 5, 5, 5, 3]
    assert [row for page in pages for row in page] == _newest_first(rows)
    # One row more than the page is asked for: the last page is known without counting.
    assert set(store.asked) == {6}


async def test_a_full_last_page_has_no_next_cursor() -> None:
    pages = await _walk(Cursors(KEY, "runs", "org-1"), Store(_rows(10)), limit=5)
    assert [len(page) for page in pages] == [5, 5]


async def test_the_page_size_is_kept_within_bounds_and_the_cursor_keeps_it() -> None:
    cursors = Cursors(KEY, "outcomes", "run-1")
    store = Store(_rows(120))
    first, cursor = await keyset_page(
        cursors, None, limit=500, max_size=50, keyset=BY_SEQ, fetch=store.by_seq
    )
    assert len(first) == 50 and cursor is not None
    # The next page has the size the cursor was signed with, whatever limit is asked for now.
    second, _ = await keyset_page(cursors, cursor, limit=3, max_size=50, keyset=BY_SEQ, fetch=store.by_seq)
    assert [row.seq for row in second] == list(range(50, 100))
    smallest, _ = await keyset_page(cursors, None, limit=0, max_size=50, keyset=BY_SEQ, fetch=store.by_seq)
    assert [row.seq for row in smallest] == [0]


async def test_an_empty_cursor_is_the_first_page() -> None:
    store = Store(_rows(4))
    rows, cursor = await keyset_page(
        Cursors(KEY, "runs", "org-1"),
        "",
        limit=10,
        max_size=50,
        keyset=BY_CREATED_AND_ID,
        fetch=store.newest_first,
    )
    assert rows == _newest_first(store.rows) and cursor is None


@pytest.mark.parametrize(
    ("position", "keyset"),
    [
        (("not a time", str(uuid.uuid4())), BY_CREATED_AND_ID),
        (("2026-01-01T00:00:00+00:00",), BY_CREATED_AND_ID),
        (("seven",), BY_SEQ),
        (("1", "2"), BY_SEQ),
        (("not-a-uuid",), BY_ID),
    ],
)
async def test_a_signed_cursor_whose_position_is_not_the_lists_key_answers_422(
    position: tuple[str, ...], keyset: Keyset[Row, object]
) -> None:
    cursors = Cursors(KEY, "runs", "org-1")
    store = Store(_rows(3))
    cursor = cursors.sign(size=5, position=position)
    with pytest.raises(AppError) as refused:
        await keyset_page(cursors, cursor, limit=5, max_size=50, keyset=keyset, fetch=store.newest_first)
    assert refused.value.status == 422
    assert refused.value.code == "validation_failed"
    assert store.asked == [], "nothing is read for a cursor that is refused"


@pytest.mark.parametrize(
    "other",
    [
        Cursors(KEY, "runs", "org-2"),
        Cursors(KEY, "audit", "org-1"),
        Cursors(cursor_key("another secret"), "runs", "org-1"),
    ],
)
async def test_a_cursor_of_another_list_owner_or_installation_answers_422(other: Cursors) -> None:
    store = Store(_rows(12))
    _, cursor = await keyset_page(
        other, None, limit=5, max_size=50, keyset=BY_CREATED_AND_ID, fetch=store.newest_first
    )
    assert cursor is not None
    with pytest.raises(AppError) as refused:
        await keyset_page(
            Cursors(KEY, "runs", "org-1"),
            cursor,
            limit=5,
            max_size=50,
            keyset=BY_CREATED_AND_ID,
            fetch=store.newest_first,
        )
    assert refused.value.status == 422


async def test_an_edited_cursor_cannot_raise_the_page_size() -> None:
    cursors = Cursors(KEY, "runs", "org-1")
    store = Store(_rows(200))
    oversized = cursors.sign(size=51, position=(str(5),))
    with pytest.raises(AppError):
        await keyset_page(cursors, oversized, limit=5, max_size=50, keyset=BY_SEQ, fetch=store.by_seq)
    data, mac = cursors.sign(size=5, position=("5",)).split(".")
    with pytest.raises(AppError):
        await keyset_page(cursors, f"{data}x.{mac}", limit=5, max_size=50, keyset=BY_SEQ, fetch=store.by_seq)
