"""`equa serve` as an operator runs it, on a fresh SQLite installation, for tests of what only the served process
does (uvicorn's proxy headers and access log)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chaos"))

from service_harness import SECRET_KEY, SeededOrganization, ServedApp, seed_organization_sync

ADMIN_PASSWORD = "harness passphrase 1234"  # the one service_harness.seed_organization gives its admin


@contextmanager
def served_installation(
    data_dir: Path, admin_email: str, **settings: str
) -> Iterator[tuple[ServedApp, SeededOrganization]]:
    """An installation with one organization and its admin, served by `equa serve` with `settings` (EQUA_* names)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite+aiosqlite:///{data_dir / 'equa.db'}"
    organization = seed_organization_sync(database_url, admin_email=admin_email, team=[])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MS_", "EQUA_"))}
    env.update(
        {
            "EQUA_DATABASE_URL": database_url,
            "EQUA_DATA_DIR": str(data_dir),
            "EQUA_SECRET_KEY": SECRET_KEY,
            **settings,
        }
    )
    served = ServedApp(env, data_dir / "serve.log")
    try:
        yield served, organization
    finally:
        served.stop()
