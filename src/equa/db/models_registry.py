"""Imports every module that defines tables, so Base.metadata is complete (Alembic, schema tests)."""

from __future__ import annotations


def import_all_models() -> None:
    # One line per package that owns tables; add yours here.
    import equa.accounts.models
    import equa.microsoft.fleet.models
    import equa.microsoft.models
    import equa.microsoft.tenants.models
    import equa.organizations.models  # noqa: F401
