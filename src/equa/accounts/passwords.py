"""Password hashing with argon2id, off the event loop.

An argon2 hash costs tens of milliseconds of CPU and 64 MiB; run on the event loop, a burst of sign-ins stalls every
other request of the process. The hashes run in a small dedicated thread pool instead (argon2 releases the GIL), whose
size bounds how many run at once (EQUA_PASSWORD_HASH_CONCURRENCY); the rest wait their turn without blocking.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

DEFAULT_CONCURRENCY = 1

_hasher = PasswordHasher()
_executor: ThreadPoolExecutor | None = None
_concurrency = DEFAULT_CONCURRENCY


def use_password_hasher(hasher: PasswordHasher) -> None:
    """Swap the hasher (tests use cheap parameters; production keeps argon2-cffi's strong defaults)."""
    global _hasher
    _hasher = hasher
    _dummy_hash.cache_clear()


def set_hash_concurrency(concurrency: int) -> None:
    """How many hashes may run at once in this process (from EQUA_PASSWORD_HASH_CONCURRENCY)."""
    global _executor, _concurrency
    if concurrency == _concurrency and _executor is not None:
        return
    previous, _executor, _concurrency = _executor, None, max(1, concurrency)
    if previous is not None:
        previous.shutdown(wait=False)


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=_concurrency, thread_name_prefix="equa-password")
    return _executor


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_pool(), _hasher.hash, password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("no user has this password, it only costs the same time")


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches. Without a hash, spend the same time so timing does not reveal accounts."""
    return await asyncio.get_running_loop().run_in_executor(_pool(), _verify, password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
