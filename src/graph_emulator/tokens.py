"""RS256 signing key, access-token issue and verification, and client-assertion checks."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

GRAPH_AUDIENCE = "https://graph.microsoft.com"
GRAPH_AUDIENCES = {GRAPH_AUDIENCE, f"{GRAPH_AUDIENCE}/", "00000003-0000-0000-c000-000000000000"}
TOKEN_LIFETIME = 3599


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class InvalidToken(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TokenService:
    """Issues app-only tokens like Entra ID v1 access tokens for Graph, and validates them on every call."""

    def __init__(self) -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_key = self.private_key.public_key()
        self.kid = b64url(hashlib.sha1(str(uuid.uuid4()).encode()).digest())  # noqa: S324 - a key id, not security
        self.issued: set[str] = set()  # uti of every live token; revocation empties it
        self._verified: dict[str, dict[str, Any]] = {}

    def jwks(self) -> dict[str, Any]:
        jwk = RSAAlgorithm.to_jwk(self.public_key, as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", "x5t": self.kid, "alg": "RS256"})
        return {"keys": [jwk]}

    def issue(
        self, tenant_id: str, app_id: str, app_name: str, sp_id: str, roles: list[str], issuer: str
    ) -> tuple[str, int]:
        now = int(time.time())
        uti = b64url(uuid.uuid4().bytes)
        claims: dict[str, Any] = {
            "aud": GRAPH_AUDIENCE,
            "iss": issuer,
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME,
            "aio": b64url(uuid.uuid4().bytes),
            "app_displayname": app_name,
            "appid": app_id,
            "appidacr": "1",
            "idp": issuer,
            "idtyp": "app",
            "oid": sp_id,
            "sub": sp_id,
            "tid": tenant_id,
            "uti": uti,
            "ver": "1.0",
        }
        if roles:
            claims["roles"] = sorted(roles)
        token = jwt.encode(
            claims, self.private_key, algorithm="RS256", headers={"kid": self.kid, "x5t": self.kid}
        )
        self.issued.add(uti)
        return token, TOKEN_LIFETIME

    def revoke_all(self) -> None:
        self.issued.clear()
        self._verified.clear()

    def verify(self, token: str) -> dict[str, Any]:
        claims = self._verified.get(token)
        if claims is None:
            if token.count(".") != 2:
                raise InvalidToken("IDX14100: JWT is not well formed, there are no dots (.).")
            try:
                claims = jwt.decode(
                    token,
                    self.public_key,
                    algorithms=["RS256"],
                    options={"verify_aud": False, "verify_exp": False},
                )
            except jwt.PyJWTError:
                raise InvalidToken("Access token validation failure. Invalid signature.") from None
            if claims.get("aud") not in GRAPH_AUDIENCES:
                raise InvalidToken("Access token validation failure. Invalid audience.")
            if len(self._verified) > 10000:
                self._verified.clear()
            self._verified[token] = claims
        if claims.get("uti") not in self.issued:
            raise InvalidToken("Access token validation failure.")
        if claims["exp"] < time.time():
            raise InvalidToken("Lifetime validation failed, the token is expired.")
        return claims


def certificate_thumbprint(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import hashes

    return cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - x5t is SHA-1 by definition


def x5t_to_hex(x5t: str) -> str:
    padded = x5t + "=" * (-len(x5t) % 4)
    return base64.urlsafe_b64decode(padded).hex().upper()
