"""Request and response bodies of the accounts API (camelCase JSON)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from equa.accounts.models import DISPLAY_NAME_MAX_LENGTH, TOKEN_NAME_MAX_LENGTH, ApiToken, User
from equa.accounts.tokens import token_expires_at


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


DisplayName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=DISPLAY_NAME_MAX_LENGTH)
]
TokenName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TOKEN_NAME_MAX_LENGTH)
]


class UserOut(CamelModel):
    id: uuid.UUID
    email: str
    display_name: str
    is_platform_admin: bool
    has_password: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User, *, platform_admin: bool) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            display_name=user.display_name,
            is_platform_admin=platform_admin,
            has_password=user.password_hash is not None,
            created_at=user.created_at,
        )


class LoginIn(CamelModel):
    # Not EmailStr: a sign-in form answers "wrong email or password", never "this is not an address".
    email: Annotated[str, StringConstraints(min_length=1, max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class SessionOut(CamelModel):
    user: UserOut
    csrf_token: str


class TokenCreateIn(CamelModel):
    name: TokenName


class TokenOut(CamelModel):
    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    expires_at: datetime | None = Field(
        description="When the token stops working (EQUA_API_TOKEN_MAX_AGE_DAYS); null: it never expires."
    )

    @classmethod
    def of(cls, token: ApiToken, max_age: timedelta | None) -> TokenOut:
        return cls(
            id=token.id,
            name=token.name,
            prefix=token.prefix,
            created_at=token.created_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
            expires_at=token_expires_at(token, max_age),
        )


class TokenCreatedOut(TokenOut):
    token: str = Field(description="The token itself. It is shown only in this response.")
