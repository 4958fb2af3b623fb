"""Persistence: declarative Base, engine and session factory, migrations."""

from equa.db.base import Base, TimestampMixin, UTCDateTime, utcnow
from equa.db.engine import create_engine_for, create_session_factory

__all__ = [
    "Base",
    "TimestampMixin",
    "UTCDateTime",
    "create_engine_for",
    "create_session_factory",
    "utcnow",
]
