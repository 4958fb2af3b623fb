"""Persistence: declarative Base, engine and per-request session, migrations."""

from equa.db.base import Base, TimestampMixin, UTCDateTime, utcnow
from equa.db.engine import create_engine_for, create_session_factory
from equa.db.session import DbSession, get_session

__all__ = [
    "Base",
    "DbSession",
    "TimestampMixin",
    "UTCDateTime",
    "create_engine_for",
    "create_session_factory",
    "get_session",
    "utcnow",
]
