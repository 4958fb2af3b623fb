"""Opaque, signed page cursors.

A cursor carries only what the next page needs: a keyset position (for lists of our own rows) or Microsoft Graph's
skip token (for lists read from Graph), the page size, and for a search its term. Lists of our own rows are read
through `keyset_page`, the one place that turns a cursor into a position, asks for one row more than the page and
signs the next page's cursor; each list only says how its rows are ordered (a `Keyset`). It is signed with HMAC-SHA256
under a key derived from EQUA_SECRET_KEY and bound to one list of one owner (say, the group members of one
organization), so a client can neither forge nor edit one, nor carry it to another list. The next Graph request is
built by us from these fields alone: nothing a client sends reaches Graph's query string. A cursor that fails any
check answers 422.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

from fastapi import Request

from equa.errors import AppError

MAC_BYTES = 16


def invalid_cursor(field_name: str = "cursor") -> AppError:
    return AppError(
        422,
        "validation_failed",
        f"{field_name}: is not a cursor this list gave out",
        "Start again from the first page (no cursor).",
        extra={"errors": [{"field": field_name, "message": "is not a cursor this list gave out"}]},
    )


@dataclass(frozen=True)
class Cursor:
    size: int
    position: tuple[str, ...] = ()
    skip_token: str | None = None
    search: str | None = None


@dataclass(frozen=True)
class Cursors:
    """Signs and reads the cursors of one list (`kind`) of one owner (`scope`)."""

    key: bytes = field(repr=False)
    kind: str
    scope: str

    def sign(
        self,
        *,
        size: int,
        position: tuple[str, ...] = (),
        skip_token: str | None = None,
        search: str | None = None,
    ) -> str:
        payload: dict[str, Any] = {"n": size}
        if position:
            payload["p"] = list(position)
        if skip_token is not None:
            payload["t"] = skip_token
        if search:
            payload["q"] = search
        data = _b64encode(json.dumps(payload, separators=(",", ":")).encode())
        return f"{data}.{_b64encode(self._mac(data))}"

    def read(self, cursor: str, *, max_size: int) -> Cursor:
        data, dot, mac = cursor.partition(".")
        if not dot:
            raise invalid_cursor()
        try:
            given = _b64decode(mac)
            if not hmac.compare_digest(given, self._mac(data)):
                raise invalid_cursor()
            payload = json.loads(_b64decode(data))
            size = payload["n"]
            position = tuple(payload.get("p", ()))
            skip_token = payload.get("t")
            search = payload.get("q")
        except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
            raise invalid_cursor() from None
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= max_size:
            raise invalid_cursor()
        if not all(isinstance(p, str) for p in position):
            raise invalid_cursor()
        if skip_token is not None and not isinstance(skip_token, str):
            raise invalid_cursor()
        if search is not None and not isinstance(search, str):
            raise invalid_cursor()
        return Cursor(size, position, skip_token, search)

    def _mac(self, data: str) -> bytes:
        message = f"{self.kind}\n{self.scope}\n{data}".encode()
        return hmac.new(self.key, message, hashlib.sha256).digest()[:MAC_BYTES]


Row = TypeVar("Row")
Key = TypeVar("Key")


@dataclass(frozen=True)
class Keyset(Generic[Row, Key]):
    """How a list is ordered: `position` writes a row's sort key as cursor text, `key` reads it back.

    `key` raises ValueError (or TypeError) on text that is no such key; the caller answers invalid_cursor.
    """

    position: Callable[[Row], tuple[str, ...]]
    key: Callable[[tuple[str, ...]], Key]


def _stamp_and_id(position: tuple[str, ...]) -> tuple[datetime, uuid.UUID]:
    stamp, row_id = position
    return datetime.fromisoformat(stamp), uuid.UUID(row_id)


def _one_id(position: tuple[str, ...]) -> uuid.UUID:
    (row_id,) = position
    return uuid.UUID(row_id)


def _one_seq(position: tuple[str, ...]) -> int:
    (seq,) = position
    return int(seq)


# Newest first, by (created_at, id): audit events, sync runs.
BY_CREATED_AND_ID: Keyset[Any, tuple[datetime, uuid.UUID]] = Keyset(
    position=lambda row: (row.created_at.isoformat(), str(row.id)), key=_stamp_and_id
)
# By id: flagged members.
BY_ID: Keyset[Any, uuid.UUID] = Keyset(position=lambda row: (str(row.id),), key=_one_id)
# By sequence number: a run's outcomes, in the order they were recorded.
BY_SEQ: Keyset[Any, int] = Keyset(position=lambda row: (str(row.seq),), key=_one_seq)


async def keyset_page(
    cursors: Cursors,
    cursor: str | None,
    *,
    limit: int,
    max_size: int,
    keyset: Keyset[Row, Key],
    fetch: Callable[[Key | None, int], Awaitable[list[Row]]],
) -> tuple[list[Row], str | None]:
    """One page of a list of our own rows, and the cursor of the next page (None at the end).

    Without a cursor (or an empty one) the first page of `limit` rows (kept within 1..max_size); with one, the page
    after the position it carries, of the size it was signed with. `fetch(after, n)` returns up to n rows after
    `after` (None: from the start) in the keyset's order; one row more than the page is asked for, so the last page
    is known without a count. A cursor that is not one this list gave out answers invalid_cursor (422).
    """
    limit = max(1, min(limit, max_size))
    after: Key | None = None
    if cursor:
        read = cursors.read(cursor, max_size=max_size)
        limit = read.size
        try:
            after = keyset.key(read.position)
        except (ValueError, TypeError):
            raise invalid_cursor() from None
    rows = await fetch(after, limit + 1)
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, cursors.sign(size=limit, position=keyset.position(rows[-1]))


def cursor_key(secret: str) -> bytes:
    """The cursor signing key, derived from the installation's secret key (never the session key itself)."""
    return hmac.new(secret.encode(), b"equa.pagination.cursor", hashlib.sha256).digest()


def cursors_for(request: Request, kind: str, scope: object) -> Cursors:
    secret = request.app.state.settings.session_secret.get_secret_value()
    return Cursors(cursor_key(secret), kind, str(scope))


def skip_token_of(next_link: str | None) -> str | None:
    """Graph's $skiptoken out of an @odata.nextLink; the rest of the link is not kept."""
    if not next_link:
        return None
    for name, values in parse_qs(urlsplit(next_link).query).items():
        if name.lower() == "$skiptoken" and values:
            return values[0]
    return None


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
