"""The `state` of an admin consent round trip: signed, bound to the organization and the admin, expiring.

The signed text says which round trip it is (`jti`, a row of microsoft_consent_states), for which organization
(`org`) and which admin (`sub`), until when (`exp`). The callback checks the signature, the time and the binding, then
marks the row used, so a state works once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

STATE_LIFETIME = timedelta(minutes=15)
_PURPOSE = "equa-microsoft-consent"
_ALGORITHM = "HS256"


@dataclass(frozen=True)
class ConsentClaims:
    state_id: uuid.UUID
    organization_id: uuid.UUID
    user_id: uuid.UUID


class BadState(Exception):
    """The state is missing, unreadable, tampered with or expired (`reason` says which, for the message).

    An expired state was signed here: its `claims` say which organization's page to go back to."""

    def __init__(self, reason: str, claims: ConsentClaims | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.claims = claims


def sign_state(
    secret: str, state_id: uuid.UUID, organization_id: uuid.UUID, user_id: uuid.UUID, expires_at: datetime
) -> str:
    claims = {
        "jti": str(state_id),
        "org": str(organization_id),
        "sub": str(user_id),
        "exp": int(expires_at.timestamp()),
        "aud": _PURPOSE,
    }
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def read_state(secret: str, state: str | None, now: datetime) -> ConsentClaims:
    """The claims of a state this service signed and that has not expired; BadState otherwise."""
    if not state:
        raise BadState("missing")
    try:
        claims = jwt.decode(
            state,
            secret,
            algorithms=[_ALGORITHM],
            audience=_PURPOSE,
            options={"require": ["jti", "org", "sub", "exp"], "verify_exp": False},
        )
        expires = int(claims["exp"])
        parsed = ConsentClaims(uuid.UUID(claims["jti"]), uuid.UUID(claims["org"]), uuid.UUID(claims["sub"]))
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        raise BadState("invalid") from None
    # Checked here against the injected clock rather than by PyJWT against the wall clock.
    if now.timestamp() >= expires:
        raise BadState("expired", parsed)
    return parsed
