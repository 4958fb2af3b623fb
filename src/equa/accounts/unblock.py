"""Lifting an account's sign-in block from an operator's command, in the store the serving processes count in."""

from __future__ import annotations

from equa.accounts.throttle import KNOWN_BLOCK_TRUST_SECONDS, throttler_for, wait_phrase
from equa.db.engine import create_engine_for_settings, create_session_factory
from equa.settings import Settings


async def lift_sign_in_block(settings: Settings, email: str) -> int:
    """Clear the account's failed sign-ins (its guessers' addresses keep theirs); the seconds its block had left.

    The store and the keys come from the same settings as `equa serve`'s (EQUA_REDIS_URL or the database, keyed
    with the installation's secret), so the count cleared is the one the serving processes read.
    """
    engine = create_engine_for_settings(settings)
    throttler = throttler_for(settings, create_session_factory(engine))
    try:
        return await throttler.lift_account_block(email)
    finally:
        await throttler.store.aclose()
        await engine.dispose()


def lifted_block_report(address: str, seconds_left: int) -> str:
    """What the operator reads after a lift."""
    if not seconds_left:
        return f"{address}: no sign-in block (failed sign-ins forgotten)"
    return (
        f"{address}: sign-in block lifted (it had {wait_phrase(seconds_left)} to run); they can sign in within "
        f"{KNOWN_BLOCK_TRUST_SECONDS:g} s (the addresses that guessed stay throttled)"
    )
